import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { operationTable } from '@call-automation/contract';
import { createSpecAjv } from '@call-automation/contract/spec-ajv';
import type { Ajv2020, ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface Operation {
  operationId: string;
  method: string;
  /** As the spec writes it: `/calls/{callId}/Hangup`. */
  path: string;
  pathParams: string[];
  hasBody: boolean;
  /** The documented statuses. */
  statuses: number[];
  successStatus: number;
  /** The spec's first example of the request body, when it has one. */
  exampleBody?: JsonObject;
}

/** The contract the suite checks: the bundled spec, its operations, and validators for what a server answers. */
export class Contract {
  readonly spec: JsonObject;
  readonly operations: Operation[];
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();

  constructor(specPath: string | URL = createRequire(import.meta.url).resolve('@call-automation/contract/openapi.json')) {
    this.spec = JSON.parse(readFileSync(specPath, 'utf8')) as JsonObject;
    this.ajv = createSpecAjv(this.spec);
    // The operations as the spec's table gives them, with each one's first example body.
    this.operations = Object.values(operationTable).map((entry) => {
      const item = this.resolve((this.spec.paths as JsonObject)[entry.path]) as JsonObject;
      const operation = item[entry.method.toLowerCase()] as JsonObject;
      const body = operation.requestBody ? (this.resolve(operation.requestBody) as JsonObject) : undefined;
      const media = (body?.content as JsonObject | undefined)?.['application/json'] as JsonObject | undefined;
      const example = Object.values((media?.examples ?? {}) as JsonObject)[0] as JsonObject | undefined;
      return {
        operationId: entry.operationId,
        method: entry.method,
        path: entry.path,
        pathParams: [...entry.pathParams],
        hasBody: entry.body !== null,
        statuses: [...entry.statuses],
        successStatus: entry.successStatus,
        exampleBody: example ? ((this.resolve(example) as JsonObject).value as JsonObject) : undefined,
      };
    });
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
