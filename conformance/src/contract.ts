import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { operationTable, type OperationFacts as TableFacts } from '@call-automation/contract';
import { createSpecAjv } from '@call-automation/contract/spec-ajv';
import type { Ajv2020, ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/**
 * What the suite reads of one operation in the contract's operation table (the shape
 * `@call-automation/contract` generates, without what only servers need): a table written by hand
 * for another spec fits it too.
 */
export type OperationFacts = Omit<TableFacts, 'headers' | 'validators'>;

/** An operation table, by operationId. */
export type OperationTable = Readonly<Record<string, OperationFacts>>;

/** An operation as the suite checks it: its facts from the operation table, and its spec's first example body. */
export interface Operation extends OperationFacts {
  hasBody: boolean;
  /** The spec's first example of the request body, when it has one. */
  exampleBody?: JsonObject;
}

/**
 * The contract the suite checks: the bundled spec, its operations as the operation table gives
 * them, and validators for what a server answers. The table defaults to the one generated from
 * the bundled spec; another spec comes with its own table.
 */
export class Contract {
  readonly spec: JsonObject;
  readonly operations: Operation[];
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(specPath: string | URL = createRequire(import.meta.url).resolve('@call-automation/contract/openapi.json'), table: OperationTable = operationTable) {
    this.spec = JSON.parse(readFileSync(specPath, 'utf8')) as JsonObject;
    this.ajv = createSpecAjv(this.spec);
    // The operations as the table gives them, with each one's first example body.
    this.operations = Object.values(table).map((entry) => {
      const item = this.resolve((this.spec.paths as JsonObject | undefined)?.[entry.path]) as JsonObject | undefined;
      const operation = item?.[entry.method.toLowerCase()] as JsonObject | undefined;
      if (!operation) throw new Error(`The operation table's ${entry.operationId} (${entry.method} ${entry.path}) is not in the spec.`);
      const body = operation.requestBody ? (this.resolve(operation.requestBody) as JsonObject) : undefined;
      const media = (body?.content as JsonObject | undefined)?.['application/json'] as JsonObject | undefined;
      const example = Object.values((media?.examples ?? {}) as JsonObject)[0] as JsonObject | undefined;
      return {
        operationId: entry.operationId,
        method: entry.method,
        path: entry.path,
        pathParams: [...entry.pathParams],
        body: entry.body,
        hasBody: entry.body !== null,
        statuses: [...entry.statuses],
        successStatus: entry.successStatus,
        repeatable: entry.repeatable,
        idempotent: entry.idempotent,
        contactedUris: [...entry.contactedUris],
        callbackUri: entry.callbackUri,
        createdId: entry.createdId,
        linkedParam: entry.linkedParam,
        endsCall: entry.endsCall,
        exampleBody: example ? ((this.resolve(example) as JsonObject).value as JsonObject) : undefined,
      };
    });
  }

  /** The operations that create a call: their success answer carries the id (`createdId`) that fills `linkedParam`. */
  creators(): Operation[] {
    return this.operations.filter((o) => o.createdId !== null && o.linkedParam !== null);
  }

  /** The operation the suite creates its calls with: the first that creates one. */
  creator(): Operation {
    const found = this.creators()[0];
    if (!found) throw new Error('The operation table has no operation that creates a call (none with createdId and linkedParam).');
    return found;
  }

  /** The operations on a call: those whose path takes the id the creating operation answers. */
  onCall(creator: Operation = this.creator()): Operation[] {
    return this.operations.filter((o) => o.pathParams.includes(creator.linkedParam!));
  }

  /** The operation that ends a call (`endsCall`). */
  ender(creator: Operation = this.creator()): Operation {
    const found = this.onCall(creator).find((o) => o.endsCall);
    if (!found) throw new Error(`The operation table has no operation that ends a call (endsCall) on ${creator.linkedParam}.`);
    return found;
  }

  /**
   * The path parameters of an operation that no answer fills: no operation's `createdId` is
   * linked to them, so the suite has no real value for them (removeParticipant's participantId).
   */
  unlinkedParams(operation: Operation): string[] {
    const linked = new Set(this.creators().map((o) => o.linkedParam));
    return operation.pathParams.filter((p) => !linked.has(p));
  }

  /** Follows `$ref`s within the spec. */
  resolve(node: Json | undefined): Json | undefined {
    let current = node;
    while (current && typeof current === 'object' && !Array.isArray(current) && typeof current.$ref === 'string') {
      current = (current.$ref as string)
        .slice(2)
        .split('/')
        .reduce<Json | undefined>((o, k) => (o as JsonObject | undefined)?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], this.spec);
    }
    return current;
  }

  operation(operationId: string): Operation {
    const found = this.operations.find((o) => o.operationId === operationId);
    if (!found) throw new Error(`No operation ${operationId} in the spec.`);
    return found;
  }

  /** The response the spec documents for an operation and status, resolved. */
  response(operationId: string, status: number): JsonObject | undefined {
    const op = this.operation(operationId);
    const item = this.resolve((this.spec.paths as JsonObject)[op.path]) as JsonObject;
    const responses = (item[op.method.toLowerCase()] as JsonObject).responses as JsonObject;
    return this.resolve(responses[String(status)]) as JsonObject | undefined;
  }

  /** A validator for the schema at a JSON pointer (`#/components/schemas/X`). */
  validator(pointer: string): ValidateFunction {
    let validate = this.validators.get(pointer);
    if (!validate) {
      validate = this.ajv.getSchema(`openapi.json${pointer}`)!;
      this.validators.set(pointer, validate);
    }
    return validate;
  }

  /** A schema of the spec, resolved, by pointer. */
  schemaAt(pointer: string): JsonObject {
    return this.resolve({ $ref: pointer }) as JsonObject;
  }
}

export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '/'} ${e.message}`)
    .join('; ');
}
