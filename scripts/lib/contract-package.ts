import type { OpenAPI3 } from 'openapi-typescript';
import type { OperationFacts, OperationRoute } from '../../packages/contract/src/facts.ts';
import { eventsOf, operationsOf, resolve } from './contract.ts';
import { generatedHeader } from './generated.ts';
import { generateValidators } from './validators.ts';

type Json = Record<string, unknown>;

/** An object schema of an operation's parameters in one place (path or header), its `$ref`s into the spec. */
function parameterSchema(spec: OpenAPI3, path: string, method: string, place: 'path' | 'header'): object {
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
  return { type: 'object', properties, required };
}

/** The fields of an operation's facts its route keeps (`OperationRoute` in facts.ts), in this order. */
const routeFields = ['operationId', 'method', 'path', 'pathParams', 'body', 'repeatable', 'idempotent'] as const satisfies ReadonlyArray<keyof OperationRoute>;

/** An operation's route: its facts cut to the fields a client reads. */
const routeOf = (facts: OperationFacts): OperationRoute => Object.fromEntries(routeFields.map((field) => [field, facts[field]])) as OperationRoute;

const comment = (text: string | undefined, indent: string) =>
  text
    ? `${indent}/**\n${text
        .trim()
        .replace(/\*\//g, '*\\/')
        .split('\n')
        .map((line) => `${indent} *${line ? ` ${line}` : ''}`)
        .join('\n')}\n${indent} */\n`
    : '';

/**
 * The contract package's generated files: the table of operations and events every package
 * reads, the request and event validators, beside the types (openapi-typescript) and the spec.
 */
export function generateContract(spec: OpenAPI3): Record<string, string> {
  const operations = operationsOf(spec);
  const events = eventsOf(spec);
  const header = generatedHeader('//', 'spec/dist/openapi.json');

  const requestValidators: Record<string, string | object> = {};
  for (const { facts } of operations) {
    if (facts.validators.body) requestValidators[facts.validators.body] = `#/components/schemas/${facts.body}`;
    if (facts.validators.params) requestValidators[facts.validators.params] = parameterSchema(spec, facts.path, facts.method, 'path');
    if (facts.validators.headers) requestValidators[facts.validators.headers] = parameterSchema(spec, facts.path, facts.method, 'header');
  }
  const eventValidators = Object.fromEntries(events.map(({ facts }) => [facts.validator, `#/components/schemas/${facts.schema}`]));

  const hints = patternHints(spec);
  const table = `${header}import type { EventFacts, OperationFacts, OperationRoute } from '../facts.ts';
import type { components } from './openapi.gen.ts';

/**
 * Every operation of the spec, by operationId: how it is routed, what it takes, what it may
 * answer, and how it behaves (repeatable, idempotent, the URIs it contacts, where its callbacks go).
 */
export const operationTable = {
${operations.map(({ facts, docs }) => `${comment(docs.summary, '  ')}  ${JSON.stringify(facts.operationId)}: ${JSON.stringify(facts, null, 2).replace(/\n/g, '\n  ')},`).join('\n')}
} as const satisfies Record<string, OperationFacts>;

/**
 * Each operation's route, by operationId: the fields of the table a client reads to call it
 * (method, path, path parameters, whether it takes a body, whether it may go again). A client
 * bundled for browsers imports this rather than the table, whose other fields serve the server
 * and the conformance suite, so that the bundle leaves them out.
 */
export const operationRoutes = {
${operations.map(({ facts }) => `  ${JSON.stringify(facts.operationId)}: ${JSON.stringify(routeOf(facts), null, 2).replace(/\n/g, '\n  ')},`).join('\n')}
} as const satisfies Record<string, OperationRoute>;

/** Every callback event of the spec (its webhooks), by name. */
export const eventTable = {
${events.map(({ facts, docs }) => `${comment(docs.summary, '  ')}  ${JSON.stringify(facts.name)}: ${JSON.stringify(facts, null, 2).replace(/\n/g, '\n  ')},`).join('\n')}
} as const satisfies Record<string, EventFacts>;

/** Each event, by name, as the spec's schema types it. */
export interface EventSchemas {
${events.map(({ facts, docs }) => `${comment(docs.summary, '  ')}  ${facts.name}: components['schemas'][${JSON.stringify(facts.schema)}];`).join('\n')}
}

/**
 * What each pattern of the spec asks for, in words: the schema's description and first example,
 * by the schema's JSON pointer (a validator's error names it in its schemaPath). Error bodies
 * say "the number in E.164 form, e.g. +14251001000" rather than only the regular expression.
 */
export const patternHints: Readonly<Record<string, string>> = ${JSON.stringify(hints, null, 2)};

/** Each operation's request body, by operationId (undefined when it takes none). */
export interface RequestBodies {
${operations.map(({ facts }) => `  ${facts.operationId}: ${facts.body ? `components['schemas'][${JSON.stringify(facts.body)}]` : 'undefined'};`).join('\n')}
}
`;
  return {
    'operations.gen.ts': table,
    'request-validators.gen.ts': generateValidators(spec, requestValidators),
    'event-validators.gen.ts': generateValidators(spec, eventValidators),
  };
}

/** The description and first example of every schema under components that has a pattern, by its pointer. */
function patternHints(spec: OpenAPI3): Record<string, string> {
  const hints: Record<string, string> = {};
  const visit = (node: unknown, pointer: string) => {
    if (!node || typeof node !== 'object' || Array.isArray(node)) return;
    const schema = node as Json;
    if (typeof schema.pattern === 'string' && typeof schema.description === 'string') {
      const example = Array.isArray(schema.examples) && typeof schema.examples[0] === 'string' ? `, e.g. ${schema.examples[0]}` : '';
      // The first sentence says what is asked; the rest is for readers of the docs.
      const first = schema.description.replace(/\s+/g, ' ').trim().split(/\.(?:\s|$)/)[0]!;
      hints[pointer] = `${first}${example}`;
    }
    for (const [key, value] of Object.entries((schema.properties ?? {}) as Json)) visit(value, `${pointer}/properties/${key}`);
  };
  for (const [name, schema] of Object.entries((spec.components?.schemas ?? {}) as Json)) visit(schema, `#/components/schemas/${name}`);
  return hints;
}
