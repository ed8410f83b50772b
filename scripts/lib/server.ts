import type { OpenAPI3 } from 'openapi-typescript';
import { generatedHeader } from './generated.ts';
import { generateValidators } from './validators.ts';

type Json = Record<string, unknown>;

export interface RouteInfo {
  operationId: string;
  method: string;
  /** The path as the spec writes it, `/calls/{callId}/Hangup`. */
  path: string;
  /** The path as Hono routes it, `/calls/:callId/Hangup`. */
  honoPath: string;
  pathParams: string[];
  headers: string[];
  hasBody: boolean;
  statuses: number[];
  successStatus: number;
}

const methods = ['get', 'put', 'post', 'delete', 'patch'];

function resolve(spec: OpenAPI3, node: unknown): Json {
  let current = node as Json;
  while (typeof current?.$ref === 'string') {
    current = (current.$ref as string)
      .slice(2)
      .split('/')
      .reduce<Json>((object, key) => object[key.replace(/~1/g, '/').replace(/~0/g, '~')] as Json, spec as unknown as Json);
  }
  return current;
}

/** The spec's operations, as the server stub routes them. */
export function routesOf(spec: OpenAPI3): RouteInfo[] {
  const routes: RouteInfo[] = [];
  for (const [path, rawItem] of Object.entries(spec.paths ?? {})) {
    const item = resolve(spec, rawItem);
    for (const method of methods) {
      const operation = item[method] as Json | undefined;
      if (!operation) continue;
      const parameters = [...((item.parameters ?? []) as unknown[]), ...((operation.parameters ?? []) as unknown[])].map((p) => resolve(spec, p));
      const statuses = Object.keys(operation.responses as Json).map(Number);
      routes.push({
        operationId: operation.operationId as string,
        method: method.toUpperCase(),
        path,
        honoPath: path.replace(/\{([^}]+)\}/g, ':$1'),
        pathParams: parameters.filter((p) => p.in === 'path').map((p) => p.name as string),
        headers: parameters.filter((p) => p.in === 'header').map((p) => p.name as string),
        hasBody: operation.requestBody !== undefined,
        statuses,
        successStatus: statuses.find((s) => s >= 200 && s < 300)!,
      });
    }
  }
  return routes;
}

/** An object schema of an operation's parameters in one place (path or header), its `$ref`s into the spec. */
function parameterSchema(spec: OpenAPI3, path: string, method: string, place: 'path' | 'header'): object | undefined {
  const item = resolve(spec, spec.paths![path]);
  const operation = item[method.toLowerCase()] as Json;
  const raw = [...((item.parameters ?? []) as Json[]), ...((operation.parameters ?? []) as Json[])];
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const parameter of raw) {
    const resolved = resolve(spec, parameter);
    if (resolved.in !== place) continue;
    // Header names arrive in lower case; path parameters as the spec names them.
    const name = place === 'header' ? (resolved.name as string).toLowerCase() : (resolved.name as string);
    const pointer = typeof parameter.$ref === 'string' ? `openapi.json${parameter.$ref}/schema` : undefined;
    properties[name] = pointer ? { $ref: pointer } : resolved.schema;
    if (resolved.required) required.push(name);
  }
  if (Object.keys(properties).length === 0) return undefined;
  return { type: 'object', properties, required };
}

/** The server stub's generated route table and validators. */
export function generateServer(spec: OpenAPI3): Record<string, string> {
  const routes = routesOf(spec);
  const validators: Record<string, string | object> = {};
  for (const route of routes) {
    const operation = resolve(spec, spec.paths![route.path])[route.method.toLowerCase()] as Json;
    if (route.hasBody) {
      const body = resolve(spec, operation.requestBody);
      const schema = ((body.content as Json)['application/json'] as Json).schema as Json;
      validators[`${route.operationId}Body`] = typeof schema.$ref === 'string' ? schema.$ref : { $ref: `openapi.json#/paths/${route.path.replace(/~/g, '~0').replace(/\//g, '~1')}/${route.method.toLowerCase()}/requestBody/content/application~1json/schema` };
    }
    const params = parameterSchema(spec, route.path, route.method, 'path');
    if (params) validators[`${route.operationId}Params`] = params;
    const headers = parameterSchema(spec, route.path, route.method, 'header');
    if (headers) validators[`${route.operationId}Headers`] = headers;
  }
  const table = routes.map((route) => ({
    ...route,
    validators: {
      body: `${route.operationId}Body` in validators ? `${route.operationId}Body` : null,
      params: `${route.operationId}Params` in validators ? `${route.operationId}Params` : null,
      headers: `${route.operationId}Headers` in validators ? `${route.operationId}Headers` : null,
    },
  }));
  const routesCode = `${generatedHeader('//', 'spec/dist/openapi.json')}
/** Every operation of the spec: how it is routed, what it takes, and the statuses it may answer. */
export const routes = ${JSON.stringify(table, null, 2)} as const;

export type Route = (typeof routes)[number];
export type OperationId = Route['operationId'];
`;
  return {
    'routes.gen.ts': routesCode,
    'validators.gen.ts': generateValidators(spec, validators),
  };
}
