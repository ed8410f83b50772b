import { Ajv2020, type Options } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/** The id under which the bundled spec is added to Ajv: schemas are addressed as `openapi.json#/components/schemas/X`. */
export const specId = 'openapi.json';

// The spec document is added whole, so that its `$ref`s resolve as written. Its top-level OpenAPI
// fields, OpenAPI-only schema keywords and specification extensions are declared, so that strict
// mode still rejects any unknown keyword inside a schema.
const openApiFields = ['openapi', 'info', 'servers', 'tags', 'security', 'paths', 'webhooks', 'components'];
const openApiKeywords = ['discriminator', 'example', 'xml', 'externalDocs'];

/** The specification extensions (`x-…`) a document uses: annotations for tools, not constraints. */
export function extensionsIn(node: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(node)) for (const item of node) extensionsIn(item, found);
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key.startsWith('x-')) found.add(key);
      extensionsIn(value, found);
    }
  }
  return found;
}

/**
 * Ajv configured for the spec's OpenAPI 3.1 schemas: JSON Schema 2020-12, every format enforced
 * (`int32` included), every error reported.
 */
export function createSpecAjv(spec: object, options: Options = {}): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, ...options });
  addFormats.default(ajv);
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  for (const keyword of [...openApiFields, ...openApiKeywords, ...extensionsIn(spec)]) ajv.addKeyword(keyword);
  ajv.addSchema(spec, specId);
  return ajv;
}
