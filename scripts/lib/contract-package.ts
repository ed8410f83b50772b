import type { OpenAPI3 } from 'openapi-typescript';
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

  const table = `${header}import type { EventFacts, OperationFacts } from '../facts.ts';
import type { components } from './openapi.gen.ts';

/**
 * Every operation of the spec, by operationId: how it is routed, what it takes, what it may
 * answer, and how it behaves (repeatable, idempotent, the URIs it contacts, where its callbacks go).
 */
export const operationTable = {
${operations.map(({ facts, docs }) => `${comment(docs.summary, '  ')}  ${JSON.stringify(facts.operationId)}: ${JSON.stringify(facts, null, 2).replace(/\n/g, '\n  ')},`).join('\n')}
} as const satisfies Record<string, OperationFacts>;

/** Every callback event of the spec (its webhooks), by name. */
export const eventTable = {
${events.map(({ facts, docs }) => `${comment(docs.summary, '  ')}  ${JSON.stringify(facts.name)}: ${JSON.stringify(facts, null, 2).replace(/\n/g, '\n  ')},`).join('\n')}
} as const satisfies Record<string, EventFacts>;

/** Each event, by name, as the spec's schema types it. */
export interface EventSchemas {
${events.map(({ facts, docs }) => `${comment(docs.summary, '  ')}  ${facts.name}: components['schemas'][${JSON.stringify(facts.schema)}];`).join('\n')}
}

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
