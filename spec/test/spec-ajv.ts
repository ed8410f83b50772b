import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { createSpecAjv, specId } from '../../scripts/lib/ajv.ts';
import { repoRoot } from '../../scripts/lib/paths.ts';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** The bundled spec, as the packages generate from it. */
export const spec = JSON.parse(readFileSync(join(repoRoot, 'spec', 'dist', 'openapi.json'), 'utf8')) as JsonObject;

const ajv = createSpecAjv(spec);

/** A validator for the schema at a JSON pointer into the spec (`#/components/schemas/X`). */
export function validatorAt(pointer: string): ValidateFunction {
  const ref = `${specId}${pointer}`;
  const validate = ajv.getSchema(ref);
  if (!validate) throw new Error(`No schema at ${ref}`);
  return validate;
}

/** The validator of a named schema in `components/schemas`. */
export function schemaValidator(name: string): ValidateFunction {
  return validatorAt(`#/components/schemas/${name}`);
}

/**
 * Ajv's errors as `keyword at /pointer` lines, for readable assertions and failure messages.
 * A missing or unknown property is reported at the property's own pointer.
 */
export function describeErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const params = e.params as { missingProperty?: string; additionalProperty?: string };
    const property = params.missingProperty ?? params.additionalProperty;
    const path = property === undefined ? e.instancePath : `${e.instancePath}/${pointerEscape(property)}`;
    return `${e.keyword} at ${path || '/'}`;
  });
}

/** Follows a local `$ref` (`#/components/...`) to the object it names. */
export function resolve(node: Json | undefined): Json | undefined {
  let current = node;
  const seen = new Set<string>();
  while (current && typeof current === 'object' && !Array.isArray(current) && typeof current.$ref === 'string') {
    const ref = current.$ref;
    if (seen.has(ref)) throw new Error(`Circular $ref ${ref}`);
    seen.add(ref);
    current = pointerGet(spec, ref);
  }
  return current;
}

/** Reads a JSON pointer (`#/a/b~1c`) out of `root`. */
export function pointerGet(root: Json, pointer: string): Json | undefined {
  const segments = pointer.replace(/^#\/?/, '').split('/').filter(Boolean).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  let current: Json | undefined = root;
  for (const segment of segments) {
    if (current === null || typeof current !== 'object') return undefined;
    current = Array.isArray(current) ? current[Number(segment)] : current[segment];
  }
  return current;
}

/** Escapes a key for use in a JSON pointer. */
export function pointerEscape(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}
