import { describe, expect, it } from 'vitest';
import { describeErrors, pointerEscape, resolve, spec, validatorAt, type Json, type JsonObject } from './spec-ajv.ts';

interface ExampleCase {
  where: string;
  schemaPointer: string;
  value: Json;
}

const methods = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/** Every named example of every media type in the spec (paths, webhooks, callbacks, components), with its schema. */
function collectExamples(): ExampleCase[] {
  const cases: ExampleCase[] = [];
  const visitContent = (content: Json | undefined, pointer: string, where: string) => {
    const media = resolve(content) as JsonObject | undefined;
    for (const [type, object] of Object.entries(media ?? {})) {
      const mediaObject = object as JsonObject;
      const examples = (mediaObject.examples ?? {}) as JsonObject;
      for (const [name, example] of Object.entries(examples)) {
        const value = (resolve(example) as JsonObject).value as Json;
        cases.push({ where: `${where} ${type} example "${name}"`, schemaPointer: `${pointer}/${pointerEscape(type)}/schema`, value });
      }
    }
  };
  const visitOperations = (pathItems: JsonObject, base: string, label: string) => {
    for (const [path, item] of Object.entries(pathItems)) {
      const pathItem = resolve(item) as JsonObject;
      for (const method of methods) {
        const operation = pathItem[method] as JsonObject | undefined;
        if (!operation) continue;
        const opPointer = `${base}/${pointerEscape(path)}/${method}`;
        const name = `${label} ${method.toUpperCase()} ${path}`;
        const body = operation.requestBody as JsonObject | undefined;
        if (body) visitContent((resolve(body) as JsonObject).content, `${opPointer}/requestBody/content`, `${name} request`);
        for (const [status, response] of Object.entries((operation.responses ?? {}) as JsonObject)) {
          const resolved = resolve(response) as JsonObject;
          const responsePointer = (response as JsonObject).$ref ? `${(response as JsonObject).$ref as string}` : `${opPointer}/responses/${status}`;
          visitContent(resolved.content, `${responsePointer.replace(/^openapi\.json/, '')}/content`, `${name} ${status}`);
        }
        for (const [callbackName, callback] of Object.entries((operation.callbacks ?? {}) as JsonObject)) {
          const ref = (callback as JsonObject).$ref as string | undefined;
          visitOperations(resolve(callback) as JsonObject, ref ?? `${opPointer}/callbacks/${callbackName}`, `callback ${callbackName}`);
        }
      }
    }
  };
  visitOperations(spec.paths as JsonObject, '#/paths', 'operation');
  visitOperations(spec.webhooks as JsonObject, '#/webhooks', 'webhook');
  return cases;
}

const cases = collectExamples();

describe('every example in the spec validates against its schema', () => {
  it('finds the examples of all six operations, their errors and the five events', () => {
    // 9 request-body examples of the operations, 4 success examples, 6 shared error
    // responses, the callback's 5 events, and the webhooks' 7.
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases.map((c) => [c.where, c] as const))('%s', (_where, c) => {
    const validate = validatorAt(c.schemaPointer);
    const valid = validate(c.value);
    expect(describeErrors(validate.errors)).toEqual([]);
    expect(valid).toBe(true);
  });
});

describe('every operation has named examples', () => {
  const operations = Object.values(spec.paths as JsonObject).flatMap((item) =>
    methods.flatMap((m) => ((item as JsonObject)[m] ? [(item as JsonObject)[m] as JsonObject] : [])),
  );

  it.each(operations.map((op) => [op.operationId as string, op] as const))('%s: request body and every response with content', (_id, op) => {
    const body = op.requestBody ? (resolve(op.requestBody) as JsonObject) : undefined;
    for (const media of Object.values((body?.content ?? {}) as JsonObject)) {
      expect(Object.keys(((media as JsonObject).examples ?? {}) as JsonObject).length).toBeGreaterThan(0);
    }
    for (const [status, response] of Object.entries(op.responses as JsonObject)) {
      const content = (resolve(response) as JsonObject).content as JsonObject | undefined;
      for (const media of Object.values(content ?? {})) {
        const named = Object.keys(((media as JsonObject).examples ?? {}) as JsonObject);
        expect(named, `${op.operationId as string} ${status}`).not.toEqual([]);
      }
    }
  });
});

describe('event examples', () => {
  it('name their call in source, as calls/{callLegId}', () => {
    const events = cases.filter((c) => c.where.includes('cloudevents'));
    expect(events.length).toBeGreaterThanOrEqual(12);
    for (const event of events) {
      const value = event.value as JsonObject;
      expect(value.source, event.where).toBe(`calls/${(value.data as JsonObject).callLegId as string}`);
    }
  });
});
