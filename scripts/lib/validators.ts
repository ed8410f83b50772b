import { transformSync } from 'esbuild';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { createSpecAjv, specId } from './ajv.ts';
import { generatedHeader } from './generated.ts';

// Words that document a schema and do not constrain it: left out of the validators' code.
const annotations = new Set(['description', 'title', 'summary', 'examples', 'example', 'externalDocs']);

function stripAnnotations(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripAnnotations);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    // Property names are data, not keywords: keep a property called "description".
    if ((annotations.has(key) || key.startsWith('x-')) && typeof value !== 'object') continue;
    if (key === 'examples' || key === 'example') continue;
    out[key] = stripAnnotations(value);
  }
  return out;
}

/**
 * Ajv standalone validators, compiled now rather than at start-up, as an ES module: one export per
 * entry of `exports`, named by its key, validating the schema at the JSON pointer of its value
 * (`#/components/schemas/X`), or a schema of its own whose `$ref`s point into the spec.
 */
export function generateValidators(spec: object, exports: Record<string, string | object>): string {
  const ajv = createSpecAjv(stripAnnotations(spec) as object, { code: { source: true, esm: true } });
  const refs: Record<string, string> = {};
  for (const [name, target] of Object.entries(exports)) {
    if (typeof target === 'string') refs[name] = `${specId}${target}`;
    else {
      ajv.addSchema(stripAnnotations(target) as object, name);
      refs[name] = name;
    }
  }
  let code = standaloneCode.default(ajv, refs);
  // Ajv's ES-module output still `require`s its runtime helpers; they become imports here.
  const modules = new Map<string, string>();
  code = code.replace(/require\("([^"]+)"\)/g, (_match, specifier: string) => {
    if (!modules.has(specifier)) modules.set(specifier, `runtime${modules.size}`);
    return modules.get(specifier)!;
  });
  // Node hands an ES module the CommonJS exports object as `default`; bundlers hand the
  // `exports.default` of a module marked __esModule. Either way, take the exports object.
  const imports = [...modules]
    .map(
      ([specifier, name]) =>
        `import * as ${name}Module from '${specifier}.js';\nconst ${name} = ${name}Module.default?.__esModule ? ${name}Module.default : ${name}Module;`,
    )
    .join('\n');
  // Printed one statement a line (esbuild's printer, nothing renamed or dropped), so that a
  // change of the spec reads as a change of a few lines in review.
  const printed = transformSync(`${imports}\n${code.replace(/^"use strict";/, '')}`, { loader: 'js', format: 'esm', legalComments: 'none' }).code;
  return `${generatedHeader('//', 'spec/dist/openapi.json')}// @ts-nocheck\n${printed}`;
}
