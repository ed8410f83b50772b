/**
 * The Call Automation API's contract as code, generated from its spec: what every package (the
 * client, the server stub, the conformance suite) reads instead of keeping a list of its own.
 */
export { eventTable, operationRoutes, operationTable, patternHints } from './generated/operations.gen.ts';
export type { EventSchemas, RequestBodies } from './generated/operations.gen.ts';
export type { EventFacts, OperationFacts, OperationRoute } from './facts.ts';
export type * from './generated/openapi.gen.ts';
import { eventTable, operationRoutes, operationTable } from './generated/operations.gen.ts';

/** The operations of the spec, by operationId. */
export type OperationId = keyof typeof operationTable;
/** One operation's entry in the table. */
export type OperationEntry = (typeof operationTable)[OperationId];
/** One operation's route: the fields of its entry a client reads (`operationRoutes`). */
export type OperationRouteEntry = (typeof operationRoutes)[OperationId];
/** The callback events of the spec, by name. */
export type EventName = keyof typeof eventTable;
/** One event's entry in the table. */
export type EventEntry = (typeof eventTable)[EventName];

/** The value at a JSON pointer (`/callLegId`) in a parsed JSON document, or undefined. */
export function valueAt(document: unknown, pointer: string): unknown {
  if (pointer === '') return document;
  let current = document;
  for (const raw of pointer.slice(1).split('/')) {
    if (current === null || typeof current !== 'object') return undefined;
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    current = Object.hasOwn(current, key) ? (current as Record<string, unknown>)[key] : undefined;
  }
  return current;
}

/** What a generated validator reports of one violated rule (Ajv's error objects). */
export interface ValidationIssue {
  instancePath: string;
  schemaPath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

/** A generated validator: true when the value keeps the schema, else false with `errors` set. */
export type Validator = ((data: unknown) => boolean) & { errors?: ValidationIssue[] | null };
