import type { OpenAPI3 } from 'openapi-typescript';
import type { EventFacts, OperationFacts } from '../../packages/contract/src/facts.ts';

export type { EventFacts, OperationFacts };

type Json = Record<string, unknown>;

/** The documentation of an operation or event, for the doc comments of generated code. */
export interface Docs {
  summary?: string;
  description?: string;
}

const methods = ['get', 'put', 'post', 'delete', 'patch'];
const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

export class SpecError extends Error {}

/** Follows `$ref`s within the bundled spec. */
export function resolve(spec: OpenAPI3, node: unknown): Json {
  let current = node as Json;
  const seen = new Set<string>();
  while (typeof current?.$ref === 'string') {
    const ref = current.$ref as string;
    if (seen.has(ref)) throw new SpecError(`$ref cycle at ${ref}`);
    seen.add(ref);
    current = ref
      .slice(2)
      .split('/')
      .reduce<Json>((object, key) => object?.[key.replace(/~1/g, '/').replace(/~0/g, '~')] as Json, spec as unknown as Json);
    if (current === undefined) throw new SpecError(`$ref ${ref} points at nothing`);
  }
  return current;
}

const componentName = (node: unknown) => {
  const ref = (node as Json | undefined)?.$ref;
  return typeof ref === 'string' && ref.startsWith('#/components/schemas/') ? ref.slice('#/components/schemas/'.length) : undefined;
};

/** The JSON pointers of the properties marked `x-contacted-uri` under a schema (through $refs, allOf and nested objects). */
function contactedUris(spec: OpenAPI3, schema: unknown, at = '', seen = new Set<unknown>()): string[] {
  if (seen.has(schema)) return [];
  seen.add(schema);
  const resolved = resolve(spec, schema);
  if (resolved['x-contacted-uri'] === true) return [at];
  const found: string[] = [];
  for (const part of (resolved.allOf ?? []) as unknown[]) found.push(...contactedUris(spec, part, at, seen));
  for (const [name, property] of Object.entries((resolved.properties ?? {}) as Json)) {
    found.push(...contactedUris(spec, property, `${at}/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`, seen));
  }
  return found;
}

/** Whether a JSON pointer names a required property of a schema (one level, through $refs and allOf). */
function hasRequiredProperty(spec: OpenAPI3, schema: unknown, pointer: string): boolean {
  const name = pointer.slice(1);
  if (name.includes('/')) return false;
  const resolved = resolve(spec, schema);
  if (((resolved.required ?? []) as string[]).includes(name) && name in ((resolved.properties ?? {}) as Json)) return true;
  return ((resolved.allOf ?? []) as unknown[]).some((part) => hasRequiredProperty(spec, part, pointer));
}

/** The operations of the spec, with what each package needs of them, and their docs. */
export function operationsOf(spec: OpenAPI3): Array<{ facts: OperationFacts; docs: Docs }> {
  const found: Array<{ facts: OperationFacts; docs: Docs }> = [];
  for (const [path, rawItem] of Object.entries(spec.paths ?? {})) {
    const item = resolve(spec, rawItem);
    for (const method of methods) {
      const operation = item[method] as Json | undefined;
      if (!operation) continue;
      const operationId = operation.operationId as string;
      const where = `${method.toUpperCase()} ${path} (${operationId})`;
      const parameters = [...((item.parameters ?? []) as unknown[]), ...((operation.parameters ?? []) as unknown[])].map((p) => resolve(spec, p));
      const responses = operation.responses as Json;
      const statuses = Object.keys(responses).map(Number);
      const successStatus = statuses.find((s) => s >= 200 && s < 300);
      if (successStatus === undefined) throw new SpecError(`${where} documents no 2xx answer`);
      const headers = parameters.filter((p) => p.in === 'header').map((p) => p.name as string);
      const requestBody = operation.requestBody === undefined ? undefined : resolve(spec, operation.requestBody);
      const bodySchema = ((requestBody?.content as Json | undefined)?.['application/json'] as Json | undefined)?.schema;
      if (requestBody && !bodySchema) throw new SpecError(`${where} takes a body that is not application/json`);
      const body = bodySchema === undefined ? null : (componentName(bodySchema) ?? null);
      if (bodySchema !== undefined && body === null) throw new SpecError(`${where}: its body's schema must be a $ref to components/schemas, so that it has a name`);

      const callbackKeys = Object.values((operation.callbacks ?? {}) as Json).flatMap((callback) => Object.keys(resolve(spec, callback)));
      const callbackPointers = callbackKeys.map((key) => /^\{\$request\.body#(\/[^}]*)\}$/.exec(key)?.[1]);
      if (callbackPointers.some((pointer) => pointer === undefined)) throw new SpecError(`${where}: a callback URL expression must be {$request.body#/field}`);
      if (new Set(callbackPointers).size > 1) throw new SpecError(`${where}: its callbacks go to more than one field`);

      const success = resolve(spec, responses[String(successStatus)]);
      const links = Object.values((success.links ?? {}) as Json).map((link) => resolve(spec, link));
      const linked = links.flatMap((link) =>
        Object.entries((link.parameters ?? {}) as Json).flatMap(([param, expression]) => {
          const pointer = typeof expression === 'string' ? /^\$response\.body#(\/.*)$/.exec(expression)?.[1] : undefined;
          return pointer ? [{ param, pointer }] : [];
        }),
      );
      const createdIds = new Set(linked.map((l) => l.pointer));
      const linkedParams = new Set(linked.map((l) => l.param));
      if (createdIds.size > 1 || linkedParams.size > 1) throw new SpecError(`${where}: its links pass more than one id on; the table holds one`);
      const createdId = [...createdIds][0] ?? null;
      const responseSchema = ((success.content as Json | undefined)?.['application/json'] as Json | undefined)?.schema;
      if (createdId && !hasRequiredProperty(spec, responseSchema, createdId)) {
        throw new SpecError(`${where}: its links read $response.body#${createdId}, which its ${successStatus} answer does not have as a required field`);
      }
      if (callbackPointers[0] && !createdId) throw new SpecError(`${where} has callbacks but no link saying which id of its answer they are about`);

      found.push({
        facts: {
          operationId,
          method: method.toUpperCase(),
          path,
          pathParams: parameters.filter((p) => p.in === 'path').map((p) => p.name as string),
          headers,
          body,
          statuses,
          successStatus,
          repeatable: headers.some((name) => name.toLowerCase() === 'repeatability-request-id'),
          idempotent: operation['x-idempotent'] === true || idempotentMethods.has(method.toUpperCase()),
          contactedUris: bodySchema === undefined ? [] : contactedUris(spec, bodySchema),
          callbackUri: callbackPointers[0] ?? null,
          createdId,
          linkedParam: [...linkedParams][0] ?? null,
          endsCall: operation['x-ends-call'] === true,
          validators: {
            body: body ? `${operationId}Body` : null,
            params: parameters.some((p) => p.in === 'path') ? `${operationId}Params` : null,
            headers: headers.length ? `${operationId}Headers` : null,
          },
        },
        docs: { summary: operation.summary as string | undefined, description: operation.description as string | undefined },
      });
    }
  }
  return found;
}

/** The webhooks of the spec: each event's name, CloudEvent type and schema, and its docs. */
export function eventsOf(spec: OpenAPI3): Array<{ facts: EventFacts; docs: Docs }> {
  const spec31 = spec as OpenAPI3 & { webhooks?: Json };
  return Object.entries(spec31.webhooks ?? {}).map(([name, rawItem]) => {
    const post = resolve(spec, rawItem).post as Json | undefined;
    if (!post) throw new SpecError(`webhook ${name} has no post`);
    const body = resolve(spec, post.requestBody);
    const schemaRef = ((body.content as Json)['application/cloudevents+json'] as Json | undefined)?.schema;
    const schema = componentName(schemaRef);
    if (!schema) throw new SpecError(`webhook ${name}: its body must be application/cloudevents+json with a $ref to components/schemas`);
    const type = eventTypeOf(spec, schemaRef);
    if (!type) throw new SpecError(`webhook ${name}: its schema ${schema} must fix \`type\` with a const`);
    return { facts: { name, type, schema, validator: `validate${name}Event` }, docs: { summary: post.summary as string | undefined, description: post.description as string | undefined } };
  });
}

/** The `type` const of an event schema (through $refs and allOf). */
function eventTypeOf(spec: OpenAPI3, schema: unknown): string | undefined {
  const resolved = resolve(spec, schema);
  const type = ((resolved.properties as Json | undefined)?.type as Json | undefined)?.const;
  if (typeof type === 'string') return type;
  for (const part of (resolved.allOf ?? []) as unknown[]) {
    const found = eventTypeOf(spec, part);
    if (found) return found;
  }
  return undefined;
}
