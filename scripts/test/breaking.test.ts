import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleSpec } from '../lib/bundle.ts';
import { compareContracts, judge, majorOf, renderVerdict, type Finding, type Json, type JsonObject } from '../lib/breaking.ts';
import { binDir, repoRoot } from '../lib/paths.ts';

const run = promisify(execFile);

let released: JsonObject;
beforeAll(async () => {
  released = JSON.parse(await readFile(join(repoRoot, 'spec', 'released', 'openapi.json'), 'utf8')) as JsonObject;
});

// The tests reach into specs by path; `any` keeps those changes short, and each is checked by the
// findings it must produce.
type Spec = any;

/** The released contract, changed by `change`. */
function changed(change: (spec: Spec) => void): JsonObject {
  const spec = structuredClone(released);
  change(spec);
  return spec;
}

/** A contract with one operation and one webhook, for rules easier to see on a small spec. */
function fixture(parts: { request?: Json; response?: Json; event?: Json; parameters?: Json[]; eventParameters?: Json[]; path?: string; version?: string } = {}): JsonObject {
  const body = (schema: Json | undefined) => ({ required: true, content: { 'application/json': { schema: schema ?? { type: 'object' } } } });
  return {
    openapi: '3.1.0',
    info: { title: 'Fixture', version: parts.version ?? '1.0.0' },
    paths: {
      [parts.path ?? '/things/{thingId}']: {
        post: {
          operationId: 'makeThing',
          parameters: parts.parameters ?? [{ name: 'thingId', in: 'path', required: true, schema: { type: 'string' } }],
          requestBody: body(parts.request),
          responses: { '200': { description: 'Made.', content: { 'application/json': { schema: parts.response ?? { type: 'object' } } } } },
        },
      },
    },
    webhooks: {
      ThingMade: {
        post: {
          parameters: parts.eventParameters ?? [],
          requestBody: body(parts.event),
          responses: { '204': { description: 'Received.' }, '410': { description: 'Gone: stop sending.' } },
        },
      },
    },
  };
}

const object = (properties: Record<string, Json>, extra: JsonObject = {}): JsonObject => ({ type: 'object', properties, ...extra });

function expectBreaking(before: JsonObject, after: JsonObject, expected: Finding[]): void {
  const verdict = judge(before, after);
  expect(verdict.breaking).toEqual(expected);
  expect(verdict.passes).toBe(false);
}

function expectAdditive(before: JsonObject, after: JsonObject, expected: Finding[]): void {
  const verdict = judge(before, after);
  expect(verdict.breaking).toEqual([]);
  expect(verdict.additive).toEqual(expected);
  expect(verdict.passes).toBe(true);
}

const breaking = (rule: string, where: string, field: string | undefined, message: string): Finding => ({ rule, severity: 'breaking', where, ...(field === undefined ? {} : { field }), message });
const additive = (rule: string, where: string, field: string | undefined, message: string): Finding => ({ rule, severity: 'additive', where, ...(field === undefined ? {} : { field }), message });

describe('the released contract', () => {
  it('has no changes against itself, and a version with a major', () => {
    expect(compareContracts(released, structuredClone(released))).toEqual([]);
    expect(majorOf((released.info as JsonObject).version as string)).toBeTypeOf('number');
  });

  it('is not broken by the spec under spec/', async () => {
    const current = JSON.parse((await bundleSpec(repoRoot)).json) as JsonObject;
    const verdict = judge(released, current);
    expect(verdict.breaking.map((finding) => `${finding.where}: ${finding.message}`)).toEqual([]);
    expect(verdict.passes).toBe(true);
  });
});

describe('operations', () => {
  it('an operation removed is breaking', () => {
    expectBreaking(released, changed((spec) => delete spec.paths['/calls/{callId}/Hangup']), [
      breaking('operation-removed', 'hangupCall', undefined, 'operation POST /calls/{callId}/Hangup was removed (clients calling it get 404 or 405)'),
    ]);
  });

  it('an operation whose path changed, its operationId kept, is breaking', () => {
    const after = changed((spec) => {
      spec.paths['/calls/{callId}/EndCall'] = spec.paths['/calls/{callId}/Hangup'];
      delete spec.paths['/calls/{callId}/Hangup'];
    });
    expectBreaking(released, after, [
      breaking('operation-moved', 'hangupCall', undefined, 'operation moved from POST /calls/{callId}/Hangup to POST /calls/{callId}/EndCall (clients call the old method and path)'),
    ]);
  });

  it('an operation whose method changed is breaking', () => {
    const after = changed((spec) => {
      const item = spec.paths['/calls/{callId}/Hangup'];
      item.put = item.post;
      delete item.post;
    });
    expectBreaking(released, after, [
      breaking('operation-moved', 'hangupCall', undefined, 'operation moved from POST /calls/{callId}/Hangup to PUT /calls/{callId}/Hangup (clients call the old method and path)'),
    ]);
  });

  it('a renamed operationId is the operation removed and another added', () => {
    const verdict = judge(released, changed((spec) => (spec.paths['/calls/{callId}/Hangup'].post.operationId = 'endCall')));
    expect(verdict.breaking).toEqual([
      breaking('operation-removed', 'hangupCall', undefined, 'operation POST /calls/{callId}/Hangup was removed: its operationId is now endCall (generated clients name their methods after it)'),
    ]);
    expect(verdict.additive).toEqual([additive('operation-added', 'endCall', undefined, 'operation POST /calls/{callId}/Hangup was added')]);
    expect(verdict.passes).toBe(false);
  });

  it('a path parameter renamed in the template changes no request', () => {
    const before = fixture();
    const after = fixture({ path: '/things/{id}', parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }] });
    expect(compareContracts(before, after)).toEqual([]);
  });

  it('a documented response status removed is breaking', () => {
    expectBreaking(released, changed((spec) => delete spec.paths['/calls'].post.responses['409']), [
      breaking('response-status-removed', 'createCall 409', undefined, 'response 409 was removed (clients handle it)'),
    ]);
  });
});

describe('security', () => {
  it('a requirement narrowed to one scheme is breaking for clients using the other', () => {
    expectBreaking(released, changed((spec) => (spec.paths['/calls'].post.security = [{ hmacAuth: [] }])), [
      breaking('security-changed', 'createCall', undefined, 'security changed from hmacAuth or bearerAuth to hmacAuth (clients authenticating with bearerAuth now get 401)'),
    ]);
  });

  it('a requirement added to an operation is breaking', () => {
    expectBreaking(released, changed((spec) => (spec.paths['/calls'].post.security = [{ hmacAuth: [], bearerAuth: [] }])), [
      breaking('security-changed', 'createCall', undefined, 'security changed from hmacAuth or bearerAuth to hmacAuth and bearerAuth (clients authenticating with hmacAuth or bearerAuth now get 401)'),
    ]);
  });

  it('a security scheme sent another way is breaking', () => {
    expectBreaking(released, changed((spec) => (spec.components.securitySchemes.hmacAuth.name = 'X-Authorization')), [
      breaking('security-scheme-changed', 'security scheme hmacAuth', undefined, 'changed: name "Authorization" → "X-Authorization" (clients sending credentials as before now get 401)'),
    ]);
  });

  it('another way to authenticate is additive', () => {
    expectAdditive(released, changed((spec) => (spec.paths['/calls'].post.security = [{ hmacAuth: [] }, { bearerAuth: [] }, {}])), [
      additive('security-loosened', 'createCall', undefined, 'security changed from hmacAuth or bearerAuth to hmacAuth or bearerAuth or no authentication'),
    ]);
  });
});

describe('responses', () => {
  it('a response field removed is breaking', () => {
    const after = changed((spec) => {
      spec.components.schemas.CreateCallResponse.properties = {};
      spec.components.schemas.CreateCallResponse.required = [];
    });
    expectBreaking(released, after, [breaking('response-field-removed', 'createCall 200', '/callLegId', 'response field /callLegId was removed (clients read it)')]);
  });

  it('a response field renamed is breaking, and says what it looks renamed to', () => {
    const after = changed((spec) => {
      const schema = spec.components.schemas.CreateCallResponse;
      schema.properties = { callId: schema.properties.callLegId };
      schema.required = ['callId'];
    });
    const verdict = judge(released, after);
    expect(verdict.breaking).toEqual([
      breaking('response-field-removed', 'createCall 200', '/callLegId', 'response field /callLegId was removed, apparently renamed to /callId (clients read it)'),
    ]);
    expect(verdict.additive).toEqual([additive('response-field-added', 'createCall 200', '/callId', 'response field /callId was added')]);
    expect(verdict.passes).toBe(false);
  });

  it('a required response field made optional is breaking, wherever the schema answers', () => {
    expectBreaking(released, changed((spec) => (spec.components.schemas.PlayAudioResponse.required = ['id'])), [
      breaking('response-field-optional', 'playAudio 202', '/status', 'response field /status became optional (clients expect it always present)'),
      breaking('response-field-optional', 'cancelMediaProcessing 202', '/status', 'response field /status became optional (clients expect it always present)'),
    ]);
  });

  it('a response field found through oneOf, allOf and items is named by its pointer', () => {
    const before = fixture({ response: object({ items: { type: 'array', items: { oneOf: [{ title: 'A', allOf: [object({ id: { type: 'string' } }, { required: ['id'] })] }] } } }) });
    const after = fixture({ response: object({ items: { type: 'array', items: { oneOf: [{ title: 'A', allOf: [object({})] }] } } }) });
    expectBreaking(before, after, [breaking('response-field-removed', 'makeThing 200', '/items/*/id', 'response field /items/*/id of A was removed (clients read it)')]);
  });

  it('a response type changed or widened is breaking, narrowed additive', () => {
    const response = (id: Json) => fixture({ response: object({ id }) });
    expectBreaking(response({ type: 'string' }), response({ type: 'integer' }), [
      breaking('response-type-changed', 'makeThing 200', '/id', 'response field /id: type changed from string to integer (clients parse it as the old type)'),
    ]);
    expectBreaking(response({ type: 'string' }), response({ type: ['string', 'null'] }), [
      breaking('response-type-widened', 'makeThing 200', '/id', 'response field /id: type widened from string to string or null (clients parse it as the old type)'),
    ]);
    expectAdditive(response({ type: 'number' }), response({ type: 'integer' }), [additive('response-type-narrowed', 'makeThing 200', '/id', 'response field /id: type narrowed from number to integer')]);
  });

  it('a value added to a closed response enum is breaking; to an open one, additive', () => {
    const status = (values: string[], extra: JsonObject = {}) => fixture({ response: object({ status: { type: 'string', enum: values, ...extra } }) });
    expectBreaking(status(['running', 'done']), status(['running', 'done', 'paused']), [
      breaking('response-enum-value-added', 'makeThing 200', '/status', 'response field /status: enum value "paused" was added (the enum is closed: clients switching on it meet a value they do not know)'),
    ]);
    const open = { 'x-ms-enum': { name: 'Status', modelAsString: true } };
    expectAdditive(status(['running', 'done'], open), status(['running', 'done', 'paused'], open), [
      additive('response-open-enum-value-added', 'makeThing 200', '/status', 'response field /status: enum value "paused" was added'),
    ]);
    // Clients built against the release treat it as closed, whatever the new contract says.
    expect(judge(status(['running', 'done']), status(['running', 'done', 'paused'], open)).breaking.map((f) => f.rule)).toEqual(['response-enum-value-added']);
  });

  it('a response bound loosened is breaking, tightened additive', () => {
    const name = (maxLength: number) => fixture({ response: object({ name: { type: 'string', maxLength } }) });
    expectBreaking(name(64), name(128), [
      breaking('response-bound-loosened', 'makeThing 200', '/name', 'response field /name: maxLength increased from 64 to 128 (clients may rely on the old bound, e.g. in storage sized to it)'),
    ]);
    expectAdditive(name(64), name(32), [additive('response-bound-tightened', 'makeThing 200', '/name', 'response field /name: maxLength decreased from 64 to 32')]);
  });

  it('a response header removed is breaking', () => {
    expectBreaking(released, changed((spec) => delete spec.paths['/calls'].post.responses['200'].headers), [
      breaking('response-header-removed', 'createCall 200', 'header Repeatability-Result', 'response header Repeatability-Result was removed (clients read it)'),
    ]);
  });

  it('a response media type removed is breaking', () => {
    const after = changed((spec) => {
      const content = spec.paths['/calls'].post.responses['200'].content;
      content['application/vnd.call+json'] = content['application/json'];
      delete content['application/json'];
    });
    const verdict = judge(released, after);
    expect(verdict.breaking).toEqual([breaking('response-media-type-removed', 'createCall 200', undefined, 'response media type application/json was removed (clients parse it)')]);
    expect(verdict.additive).toEqual([additive('response-media-type-added', 'createCall 200', undefined, 'response media type application/vnd.call+json was added')]);
  });

  it('a recursive schema is compared once, where it first appears (CommunicationError.details)', () => {
    const verdict = judge(released, changed((spec) => delete spec.components.schemas.CommunicationError.properties.target));
    expect(verdict.breaking).toContainEqual(breaking('response-field-removed', 'createCall 400', '/target', 'response field /target was removed (clients read it)'));
    // One finding per status that answers a CommunicationError, none below /details.
    const responses = (released.components as Spec).responses;
    const answersError = (response: Spec) => responses[response.$ref?.split('/').pop()]?.content?.['application/json']?.schema?.$ref === '#/components/schemas/CommunicationError';
    const errors = Object.values(released.paths as Spec).flatMap((item: Spec) =>
      Object.values(item)
        .filter((operation: Spec) => operation.operationId)
        .flatMap((operation: Spec) => Object.entries(operation.responses).filter(([, response]) => answersError(response)).map(([status]) => `${operation.operationId} ${status}`)),
    );
    expect(errors.length).toBeGreaterThan(40);
    expect(verdict.breaking.map((finding) => `${finding.where} ${finding.field}`)).toEqual(errors.map((where) => `${where} /target`));
  });

  it('a recursive request schema ends its comparison too', () => {
    const node = (maxLength: number): JsonObject => ({
      ...fixture(),
      components: { schemas: { Node: object({ name: { type: 'string', maxLength }, children: { type: 'array', items: { $ref: '#/components/schemas/Node' } } }) } },
    });
    const withNode = (maxLength: number) => {
      const spec = node(maxLength) as Spec;
      spec.paths['/things/{thingId}'].post.requestBody.content['application/json'].schema = { $ref: '#/components/schemas/Node' };
      return spec as JsonObject;
    };
    expectBreaking(withNode(64), withNode(32), [
      breaking('request-bound-tightened', 'makeThing', '/name', 'request field /name: maxLength decreased from 64 to 32 (clients sending values within the old bound now get 400)'),
    ]);
  });

  it('a field moved between the parts of an allOf is no change', () => {
    const before = fixture({ response: { allOf: [object({ a: { type: 'string' } }), object({ b: { type: 'string' } }, { required: ['b'] })] } });
    const after = fixture({ response: { allOf: [object({ a: { type: 'string' }, b: { type: 'string' } }, { required: ['b'] }), object({})] } });
    expect(compareContracts(before, after)).toEqual([]);
  });
});

describe('requests', () => {
  it('a new required request field is breaking', () => {
    const after = changed((spec) => {
      const schema = spec.components.schemas.CreateCallRequest;
      schema.properties.priority = { type: 'string', maxLength: 16 };
      schema.required.push('priority');
    });
    expectBreaking(released, after, [breaking('request-field-required', 'createCall', '/priority', 'request field /priority is new and required (clients not sending it now get 400)')]);
  });

  it('an optional request field made required is breaking', () => {
    expectBreaking(released, changed((spec) => spec.components.schemas.CreateCallRequest.required.push('subject')), [
      breaking('request-field-required', 'createCall', '/subject', 'request field /subject became required (clients not sending it now get 400)'),
    ]);
  });

  it('a header parameter made required is breaking', () => {
    expectBreaking(released, changed((spec) => (spec.components.parameters.RepeatabilityRequestId.required = true)), [
      breaking('request-parameter-required', 'createCall', 'header Repeatability-Request-ID', 'request header Repeatability-Request-ID became required (clients not sending it now get 400)'),
    ]);
  });

  it('a new required query parameter is breaking, a new optional one additive', () => {
    const query = (required: boolean) => changed((spec) => (spec.paths['/calls/{callId}/PlayAudio'].post.parameters = [{ name: 'mode', in: 'query', required, schema: { type: 'string' } }]));
    expectBreaking(released, query(true), [breaking('request-parameter-required', 'playAudio', 'query mode', 'request query mode is new and required (clients not sending it now get 400)')]);
    expectAdditive(released, query(false), [additive('request-parameter-added', 'playAudio', 'query mode', 'request query mode was added')]);
  });

  it('a request field removed from a body that refuses unknown fields is breaking; from an open body, additive', () => {
    expectBreaking(released, changed((spec) => delete spec.components.schemas.PlayAudioRequest.properties.resourceId), [
      breaking('request-field-removed', 'playAudio', '/resourceId', 'request field /resourceId was removed (the body refuses unknown fields: clients still sending it now get 400)'),
    ]);
    expectAdditive(fixture({ request: object({ note: { type: 'string' } }) }), fixture({ request: object({}) }), [
      additive('request-field-ignored', 'makeThing', '/note', 'request field /note was removed; the service ignores it now'),
    ]);
  });

  it.each([
    ['maxLength', { type: 'string', maxLength: 256 }, { type: 'string', maxLength: 100 }, 'maxLength decreased from 256 to 100'],
    ['maxItems', { type: 'array', maxItems: 20 }, { type: 'array', maxItems: 10 }, 'maxItems decreased from 20 to 10'],
    ['maximum', { type: 'integer', maximum: 100 }, { type: 'integer', maximum: 50 }, 'maximum decreased from 100 to 50'],
    ['minLength', { type: 'string', minLength: 1 }, { type: 'string', minLength: 8 }, 'minLength increased from 1 to 8'],
    ['minItems', { type: 'array', minItems: 0 }, { type: 'array', minItems: 1 }, 'minItems increased from 0 to 1'],
    ['minimum', { type: 'integer', minimum: 0 }, { type: 'integer', minimum: 1 }, 'minimum increased from 0 to 1'],
    ['a new maxLength', { type: 'string' }, { type: 'string', maxLength: 64 }, 'maxLength 64 added'],
    ['uniqueItems', { type: 'array' }, { type: 'array', uniqueItems: true }, 'uniqueItems added'],
  ] as Array<[string, Json, Json, string]>)('a request bound tightened is breaking: %s', (_, before, after, what) => {
    expectBreaking(fixture({ request: object({ value: before }) }), fixture({ request: object({ value: after }) }), [
      breaking('request-bound-tightened', 'makeThing', '/value', `request field /value: ${what} (clients sending values within the old bound now get 400)`),
    ]);
  });

  it.each([
    ['maxLength', { type: 'string', maxLength: 100 }, { type: 'string', maxLength: 256 }, 'maxLength increased from 100 to 256'],
    ['minimum', { type: 'integer', minimum: 1 }, { type: 'integer', minimum: 0 }, 'minimum decreased from 1 to 0'],
    ['maxItems removed', { type: 'array', maxItems: 2 }, { type: 'array' }, 'maxItems 2 removed'],
  ] as Array<[string, Json, Json, string]>)('a request bound loosened is additive: %s', (_, before, after, what) => {
    expectAdditive(fixture({ request: object({ value: before }) }), fixture({ request: object({ value: after }) }), [additive('request-bound-loosened', 'makeThing', '/value', `request field /value: ${what}`)]);
  });

  it('a request bound tightened in the real spec is reported at its field', () => {
    expectBreaking(released, changed((spec) => (spec.components.schemas.CreateCallRequest.properties.subject.maxLength = 100)), [
      breaking('request-bound-tightened', 'createCall', '/subject', 'request field /subject: maxLength decreased from 256 to 100 (clients sending values within the old bound now get 400)'),
    ]);
  });

  it('a request pattern added or changed is breaking', () => {
    const code = (extra: JsonObject) => fixture({ request: object({ code: { type: 'string', ...extra } }) });
    expectBreaking(code({}), code({ pattern: '^[A-Z]+$' }), [
      breaking('request-pattern-added', 'makeThing', '/code', 'request field /code: pattern /^[A-Z]+$/ added (clients sending values that do not match it now get 400)'),
    ]);
    expectBreaking(code({ pattern: '^[A-Za-z]+$' }), code({ pattern: '^[A-Z]+$' }), [
      breaking('request-pattern-changed', 'makeThing', '/code', 'request field /code: pattern changed from /^[A-Za-z]+$/ to /^[A-Z]+$/ (clients sending values that matched the old one now get 400)'),
    ]);
  });

  it('a request format added is breaking', () => {
    const id = (extra: JsonObject) => fixture({ request: object({ id: { type: 'string', ...extra } }) });
    expectBreaking(id({}), id({ format: 'uuid' }), [breaking('request-format-added', 'makeThing', '/id', 'request field /id: format uuid added (clients sending values not in that format now get 400)')]);
  });

  it('a request enum value removed is breaking, added additive', () => {
    const modalities = (values: string[]) => fixture({ request: object({ modalities: { type: 'array', items: { type: 'string', enum: values } } }) });
    expectBreaking(modalities(['audio', 'video']), modalities(['audio']), [
      breaking('request-enum-value-removed', 'makeThing', '/modalities/*', 'request field /modalities/*: enum value "video" was removed (clients sending it now get 400)'),
    ]);
    expectAdditive(modalities(['audio']), modalities(['audio', 'video']), [additive('request-enum-value-added', 'makeThing', '/modalities/*', 'request field /modalities/*: enum value "video" was added')]);
  });

  it('a request type narrowed is breaking', () => {
    const note = (type: Json) => fixture({ request: object({ note: { type } }) });
    expectBreaking(note(['string', 'null']), note('string'), [
      breaking('request-type-narrowed', 'makeThing', '/note', 'request field /note: type narrowed from string or null to string (clients sending the other types now get 400)'),
    ]);
  });

  it('a request body that now refuses unknown fields is breaking', () => {
    expectBreaking(fixture({ request: object({ a: { type: 'string' } }) }), fixture({ request: object({ a: { type: 'string' } }, { additionalProperties: false }) }), [
      breaking('request-unknown-fields-refused', 'makeThing', '/', 'request body: now refuses fields it does not list (additionalProperties: false) (clients sending fields it does not list now get 400)'),
    ]);
  });

  it('a form of a request union removed is breaking', () => {
    const target = (forms: Json[]) => fixture({ request: object({ target: { oneOf: forms } }) });
    const phone = { title: 'Phone', ...object({ phone: { type: 'string' } }) };
    const user = { title: 'User', ...object({ user: { type: 'string' } }) };
    expectBreaking(target([phone, user]), target([phone]), [breaking('request-variant-removed', 'makeThing', '/target', 'request field /target: form User was removed (clients sending that form now get 400)')]);
  });

  it('a request default changed is breaking', () => {
    expectBreaking(released, changed((spec) => (spec.components.schemas.PlayAudioRequest.properties.loop.default = true)), [
      breaking('request-default-changed', 'playAudio', '/loop', 'request field /loop: default changed from false to true (clients omitting it get another value than before)'),
    ]);
  });
});

describe('webhooks, where the service writes and receivers read', () => {
  it('an event field removed is breaking, in the webhook and in the callback union', () => {
    expectBreaking(released, changed((spec) => delete spec.components.schemas.PlayAudioResultEventData.properties.operationContext), [
      breaking('event-field-removed', 'webhook PlayAudioResult', '/data/operationContext', 'event field /data/operationContext was removed (receivers read it)'),
      breaking('event-field-removed', 'createCall callback callEvents', '/data/operationContext', 'event field /data/operationContext of PlayAudioResultEvent was removed (receivers read it)'),
    ]);
  });

  it('an event loosened is breaking, tightened additive', () => {
    const event = (maxLength: number) => fixture({ event: object({ subject: { type: 'string', maxLength } }) });
    expectBreaking(event(256), event(512), [
      breaking('event-bound-loosened', 'webhook ThingMade', '/subject', 'event field /subject: maxLength increased from 256 to 512 (receivers may rely on the old bound, e.g. in storage sized to it)'),
    ]);
    expectAdditive(event(256), event(128), [additive('event-bound-tightened', 'webhook ThingMade', '/subject', 'event field /subject: maxLength decreased from 256 to 128')]);
  });

  it('an event field made optional, or a closed event enum grown, is breaking; a new event field additive', () => {
    const event = (required: string[], states: string[], extra: Record<string, Json> = {}) =>
      fixture({ event: object({ id: { type: 'string' }, state: { type: 'string', enum: states }, ...extra }, { required }) });
    expectBreaking(event(['id', 'state'], ['on']), event(['state'], ['on', 'held']), [
      breaking('event-field-optional', 'webhook ThingMade', '/id', 'event field /id became optional (receivers expect it always present)'),
      breaking('event-enum-value-added', 'webhook ThingMade', '/state', 'event field /state: enum value "held" was added (the enum is closed: receivers switching on it meet a value they do not know)'),
    ]);
    expectAdditive(event(['id'], ['on']), event(['id'], ['on'], { note: { type: 'string' } }), [additive('event-field-added', 'webhook ThingMade', '/note', 'event field /note was added')]);
  });

  it('an event header removed is breaking', () => {
    const header = { name: 'webhook-id', in: 'header', required: true, schema: { type: 'string' } };
    expectBreaking(fixture({ eventParameters: [header] }), fixture(), [breaking('event-parameter-removed', 'webhook ThingMade', 'header webhook-id', 'event header webhook-id was removed (receivers read it)')]);
  });

  it('a webhook removed is breaking', () => {
    expectBreaking(released, changed((spec) => delete spec.webhooks.DtmfReceived), [breaking('webhook-removed', 'webhook DtmfReceived', undefined, 'event was removed (receivers wait for it)')]);
  });

  it('a receiver answer the service relied on (410: stop sending) removed is breaking', () => {
    expectBreaking(released, changed((spec) => delete spec.webhooks.CallLegStateChanged.post.responses['410']), [
      breaking('event-response-status-removed', 'webhook CallLegStateChanged 410', undefined, 'response 410 was removed (receivers answer it and rely on what the service then does)'),
    ]);
    expectBreaking(released, changed((spec) => delete spec.components.callbacks.CallEvents['{$request.body#/callbackUri}'].post.responses['410']), [
      breaking('event-response-status-removed', 'createCall callback callEvents 410', undefined, 'response 410 was removed (receivers answer it and rely on what the service then does)'),
    ]);
  });
});

describe('additive changes', () => {
  it('pass, each listed; descriptions, examples, links and x- extensions are not compared', () => {
    const after = changed((spec) => {
      const createCall = spec.paths['/calls'].post;
      spec.paths['/calls/{callId}/Mute'] = { post: { ...structuredClone(spec.paths['/calls/{callId}/Hangup'].post), operationId: 'muteCall' } };
      spec.components.schemas.PlayAudioRequest.properties.volume = { type: 'integer', minimum: 0, maximum: 100 };
      spec.components.schemas.CreateCallResponse.properties.serverCallId = { type: 'string', maxLength: 128 };
      createCall.responses['408'] = { description: 'The request took too long.' };
      spec.webhooks.CallTransferred = structuredClone(spec.webhooks.DtmfReceived);
      spec.webhooks.CallTransferred.post.operationId = 'callTransferredEvent';
      spec.components.schemas.CreateCallRequest.properties.subject.maxLength = 512;
      createCall.description = 'Places a call.';
      createCall.responses['200'].content['application/json'].examples.created.value.callLegId = 'another';
      createCall['x-codegen-name'] = 'place';
      createCall.responses['200'].links = { hangup: { operationId: 'hangupCall', parameters: { callId: '$response.body#/callLegId' } } };
    });
    const verdict = judge(released, after);
    expect(verdict.breaking).toEqual([]);
    expect(verdict.passes).toBe(true);
    expect(verdict.additive.map((finding) => `${finding.rule} ${finding.where} ${finding.field ?? ''}`.trim())).toEqual([
      'request-bound-loosened createCall /subject',
      'response-field-added createCall 200 /serverCallId',
      'response-status-added createCall 408',
      'request-field-added playAudio /volume',
      'operation-added muteCall',
      'webhook-added webhook CallTransferred',
    ]);
  });
});

describe('the escape hatch: a new major version', () => {
  const renamed = (version: string) =>
    changed((spec) => {
      const schema = spec.components.schemas.CreateCallResponse;
      schema.properties = { callId: schema.properties.callLegId };
      schema.required = ['callId'];
      spec.info.version = version;
    });

  it('passes the breaking changes it releases, still listing them', () => {
    const verdict = judge(released, renamed('2.0.0'));
    expect(verdict.majorBumped).toBe(true);
    expect(verdict.passes).toBe(true);
    expect(verdict.breaking.map((finding) => finding.rule)).toEqual(['response-field-removed']);
    const text = renderVerdict(verdict, 'spec/released/openapi.json');
    expect(text).toContain("Breaking changes accepted: info.version's major went from 1.0.0 (released) to 2.0.0");
    expect(text).toContain('  createCall 200: response field /callLegId was removed, apparently renamed to /callId (clients read it) [response-field-removed]');
  });

  it('accepts nothing with a minor or patch bump', () => {
    for (const version of ['1.1.0', '1.0.1', 'next']) {
      const verdict = judge(released, renamed(version));
      expect(verdict.majorBumped, version).toBe(false);
      expect(verdict.passes, version).toBe(false);
    }
  });

  it('reads the major of a version', () => {
    expect([majorOf('1.0.0'), majorOf('v2.3.4'), majorOf('10'), majorOf('next')]).toEqual([1, 2, 10, undefined]);
  });

  it('is what a failure says to do', () => {
    const text = renderVerdict(judge(released, renamed('1.0.0')), 'spec/released/openapi.json');
    expect(text.split('\n')).toEqual([
      '1 breaking change against the released contract (spec/released/openapi.json, 1.0.0):',
      '  createCall 200: response field /callLegId was removed, apparently renamed to /callId (clients read it) [response-field-removed]',
      '',
      'Additive, for the reviewer (1):',
      '  createCall 200: response field /callId was added [response-field-added]',
      '',
      'Clients and callback receivers built against 1.0.0 would break. Make the change additive (keep what was',
      'released beside what replaces it, make new fields optional), or release it deliberately: bump',
      "info.version's major in spec/openapi.yaml (1.0.0 → 2.0.0) and update spec/released/openapi.json (see its README.md).",
    ]);
  });
});

/** `pnpm check:breaking` on a copy of the repository's spec, changed as a contributor would. */
// Each test runs the gate's CLI (tsx, and a bundle of the spec) on a copy of its own, so the tests
// run side by side: most of their time is the processes' start.
describe.concurrent('pnpm check:breaking', () => {
  const script = join(repoRoot, 'scripts', 'check-breaking.ts');
  const copies: string[] = [];
  afterAll(() => Promise.all(copies.map((copy) => rm(copy, { recursive: true, force: true }))));

  /** A copy of the spec to change, and the gate run on it. */
  async function workspace() {
    const copy = await mkdtemp(join(tmpdir(), 'call-automation-breaking-'));
    copies.push(copy);
    await cp(join(repoRoot, 'spec'), join(copy, 'spec'), { recursive: true });
    await cp(join(repoRoot, 'redocly.yaml'), join(copy, 'redocly.yaml'));
    const edit = async (path: string, change: (text: string) => string): Promise<void> => {
      const file = join(copy, path);
      const before = await readFile(file, 'utf8');
      const after = change(before);
      expect(after, `${path} was not changed`).not.toBe(before);
      await writeFile(file, after);
    };
    return {
      copy,
      edit,
      gate: (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
        run(join(binDir, 'tsx'), [script, ...args], { env: { ...process.env, CALL_AUTOMATION_ROOT: copy } }).then(
          ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
          (error: { code: number; stdout: string; stderr: string }) => error,
        ),
      renameCallLegId: () => edit('spec/components/schemas/CreateCallResponse.yaml', (text) => text.replaceAll('callLegId', 'callId')),
      version: (to: string) => edit('spec/openapi.yaml', (text) => text.replace(/^ {2}version: .*$/m, `  version: ${to}`)),
    };
  }

  it('fails on callLegId renamed to callId in the spec, naming the removed response field and what to do', async () => {
    const { gate, renameCallLegId } = await workspace();
    await renameCallLegId();
    const { code, stderr } = await gate();
    expect(code).toBe(1);
    expect(stderr).toContain('createCall 200: response field /callLegId was removed, apparently renamed to /callId (clients read it) [response-field-removed]');
    expect(stderr).toContain("bump\ninfo.version's major in spec/openapi.yaml (1.0.0 → 2.0.0) and update spec/released/openapi.json");
  });

  it('passes an optional field added to PlayAudioRequest, listing it as additive', async () => {
    const { edit, gate } = await workspace();
    await edit('spec/components/schemas/PlayAudioRequest.yaml', (text) =>
      text.replace(
        '\nadditionalProperties: false',
        '\n  volume:\n    type: integer\n    description: The volume, in percent of the original.\n    minimum: 0\n    maximum: 100\nadditionalProperties: false',
      ),
    );
    const { code, stdout } = await gate();
    expect(code).toBe(0);
    expect(stdout).toContain('No breaking changes against the released contract (spec/released/openapi.json, 1.0.0).');
    expect(stdout).toContain('  playAudio: request field /volume was added [request-field-added]');
  });

  it('passes the rename with info.version 2.0.0, printing the breaking change it accepts', async () => {
    const { gate, renameCallLegId, version } = await workspace();
    await renameCallLegId();
    await version('2.0.0');
    const { code, stdout } = await gate();
    expect(code).toBe(0);
    expect(stdout).toContain('Breaking changes accepted');
    expect(stdout).toContain('[response-field-removed]');
  });

  it('--accept refuses to release a breaking change without a new major, and releases it with one', async () => {
    const { copy, gate, renameCallLegId, version } = await workspace();
    const snapshot = join(copy, 'spec', 'released', 'openapi.json');
    const before = await readFile(snapshot, 'utf8');
    await renameCallLegId();
    const refused = await gate('--accept');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('Not updating spec/released/openapi.json');
    expect(await readFile(snapshot, 'utf8')).toBe(before);

    await version('2.0.0');
    const accepted = await gate('--accept');
    expect(accepted.code).toBe(0);
    expect(accepted.stdout).toContain('Updated spec/released/openapi.json: 2.0.0 is the released contract now.');
    expect(await readFile(snapshot, 'utf8')).toBe((await bundleSpec(copy)).json);
    expect((await gate()).stdout).toContain('No changes against the released contract (spec/released/openapi.json, 2.0.0).');
  });

  it('--accept refuses a changed contract under the released version', async () => {
    const { edit, gate } = await workspace();
    await edit('spec/components/schemas/CreateCallRequest.yaml', (text) => text.replace('maxLength: 256', 'maxLength: 512'));
    const { code, stderr } = await gate('--accept');
    expect(code).toBe(1);
    expect(stderr).toContain('the contract changed but info.version is still 1.0.0');
  });

  it('fails without a released contract, saying how to make one', async () => {
    const { copy, gate } = await workspace();
    await rm(join(copy, 'spec', 'released', 'openapi.json'));
    const { code, stderr } = await gate();
    expect(code).toBe(1);
    expect(stderr).toContain('No released contract at spec/released/openapi.json');
  });
});
