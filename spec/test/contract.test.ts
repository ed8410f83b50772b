import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { resolve, spec, type Json, type JsonObject } from './spec-ajv.ts';

const paths = spec.paths as JsonObject;
const components = spec.components as JsonObject;
const schemas = components.schemas as JsonObject;

interface OperationContract {
  method: string;
  path: string;
  tag: string;
  success: string;
  requestSchema?: string;
  responseSchema?: string;
}

// The six operations of the seed document, exactly: paths, methods, bodies and success statuses.
const operations: Record<string, OperationContract> = {
  createCall: { method: 'post', path: '/calls', tag: 'Calls', success: '200', requestSchema: 'CreateCallRequest', responseSchema: 'CreateCallResponse' },
  hangupCall: { method: 'post', path: '/calls/{callId}/Hangup', tag: 'Calls', success: '202' },
  playAudio: { method: 'post', path: '/calls/{callId}/PlayAudio', tag: 'Media', success: '202', requestSchema: 'PlayAudioRequest', responseSchema: 'PlayAudioResponse' },
  cancelMediaProcessing: { method: 'post', path: '/calls/{callId}/CancelMediaProcessing', tag: 'Media', success: '202', requestSchema: 'CancelMediaProcessingRequest', responseSchema: 'PlayAudioResponse' },
  inviteParticipants: { method: 'post', path: '/calls/{callId}/participants', tag: 'Participants', success: '202', requestSchema: 'InviteParticipantsRequest' },
  removeParticipant: { method: 'delete', path: '/calls/{callId}/participants/{participantId}', tag: 'Participants', success: '202' },
};

const events = ['CallLegStateChanged', 'ParticipantsUpdated', 'DtmfReceived', 'PlayAudioResult', 'InviteParticipantResult'];

function operation(id: string): JsonObject {
  const { path, method } = operations[id]!;
  return (resolve(paths[path]) as JsonObject)[method] as JsonObject;
}

function schemaRef(content: Json | undefined, type = 'application/json'): string | undefined {
  const media = (content as JsonObject | undefined)?.[type] as JsonObject | undefined;
  return ((media?.schema as JsonObject | undefined)?.$ref as string | undefined)?.replace('#/components/schemas/', '');
}

describe('the six operations', () => {
  it('are the only operations, at the seed paths', () => {
    const found = Object.entries(paths).flatMap(([path, item]) =>
      Object.keys(resolve(item) as JsonObject)
        .filter((key) => key !== 'parameters')
        .map((method) => `${method} ${path} ${((resolve(item) as JsonObject)[method] as JsonObject).operationId as string}`),
    );
    expect(found.sort()).toEqual(Object.entries(operations).map(([id, o]) => `${o.method} ${o.path} ${id}`).sort());
  });

  it.each(Object.keys(operations))('%s has its tag, summary, description, success status and bodies', (id) => {
    const op = operation(id);
    const contract = operations[id]!;
    expect(op.operationId).toBe(id);
    expect(op.tags).toEqual([contract.tag]);
    expect((op.summary as string).length).toBeGreaterThan(5);
    expect((op.description as string).length).toBeGreaterThan(80);
    const responses = op.responses as JsonObject;
    expect(Object.keys(responses).filter((s) => s.startsWith('2'))).toEqual([contract.success]);
    const success = resolve(responses[contract.success]) as JsonObject;
    expect(schemaRef(success.content)).toBe(contract.responseSchema);
    if (!contract.responseSchema) expect(success.content).toBeUndefined();
    const body = op.requestBody ? (resolve(op.requestBody) as JsonObject) : undefined;
    expect(schemaRef(body?.content)).toBe(contract.requestSchema);
    if (body) expect(body.required).toBe(true);
  });

  it.each(Object.keys(operations))('%s documents every error status with the error body and an example', (id) => {
    const op = operation(id);
    const hasPathId = operations[id]!.path.includes('{');
    const repeatable = id === 'createCall' ? ['409', '412', '422'] : [];
    const expected = ['400', '401', ...(hasPathId ? ['404'] : []), '405', ...repeatable, '413', '429', '500', '503'].sort();
    const responses = op.responses as JsonObject;
    expect(Object.keys(responses).filter((s) => !s.startsWith('2')).sort()).toEqual(expected);
    for (const status of expected) {
      const response = resolve(responses[status]) as JsonObject;
      const content = response.content as JsonObject;
      expect(Object.keys(content), `${id} ${status}`).toEqual(['application/json']);
      expect(schemaRef(content), `${id} ${status}`).toBe('CommunicationError');
      expect(Object.keys(((content['application/json'] as JsonObject).examples ?? {}) as JsonObject).length, `${id} ${status}`).toBeGreaterThan(0);
    }
    const allow = (resolve(responses['405']) as JsonObject).headers as JsonObject;
    expect((resolve(allow.Allow) as JsonObject).required).toBe(true);
    // The statuses after which a client waits before it tries again say how long.
    for (const status of ['429', '503', ...(id === 'createCall' ? ['409'] : [])]) {
      const headers = (resolve(responses[status]) as JsonObject).headers as JsonObject;
      expect((resolve(headers['Retry-After']) as JsonObject).required, `${id} ${status}`).toBe(true);
    }
    for (const status of repeatable) {
      const headers = (resolve(responses[status]) as JsonObject).headers as JsonObject;
      expect(headers['Repeatability-Result'], `${id} ${status}`).toBeDefined();
    }
  });

  it('createCall takes the repeatability headers', () => {
    const params = (operation('createCall').parameters as Json[]).map((p) => resolve(p) as JsonObject);
    expect(params.map((p) => `${p.in as string} ${p.name as string}`)).toEqual(['header Repeatability-Request-ID', 'header Repeatability-First-Sent']);
    expect((params[0]!.schema as JsonObject).format).toBe('uuid');
  });
});

describe('request bodies', () => {
  const requestSchemas = ['CreateCallRequest', 'PlayAudioRequest', 'CancelMediaProcessingRequest', 'InviteParticipantsRequest'];

  it.each(requestSchemas)('%s refuses unknown fields', (name) => {
    expect((schemas[name] as JsonObject).additionalProperties).toBe(false);
  });

  it.each(requestSchemas)('%s bounds every string and array it can hold', (name) => {
    const unbounded: string[] = [];
    const seen = new Set<string>();
    const walk = (node: Json | undefined, where: string) => {
      if (!node || typeof node !== 'object' || Array.isArray(node)) return;
      if (typeof node.$ref === 'string') {
        if (seen.has(node.$ref)) return;
        seen.add(node.$ref);
      }
      const schema = resolve(node) as JsonObject;
      if (schema.type === 'string' && schema.enum === undefined && schema.const === undefined && schema.maxLength === undefined) unbounded.push(where);
      if (schema.type === 'array' && schema.maxItems === undefined) unbounded.push(where);
      if (schema.type === 'object' && schema.additionalProperties !== false) unbounded.push(`${where} (open object)`);
      for (const [key, child] of Object.entries((schema.properties ?? {}) as JsonObject)) walk(child, `${where}.${key}`);
      walk(schema.items, `${where}[]`);
      for (const branch of (schema.oneOf ?? []) as Json[]) walk(branch, `${where}|`);
    };
    walk({ $ref: `#/components/schemas/${name}` }, name);
    expect(unbounded).toEqual([]);
  });
});

describe('callback events', () => {
  it.each(events)('%s is a schema, a webhook and part of the createCall callback', (name) => {
    const event = schemas[`${name}Event`] as JsonObject;
    const [envelope, specific] = event.allOf as JsonObject[];
    expect(envelope!.$ref).toBe('#/components/schemas/CloudEvent');
    const properties = specific!.properties as JsonObject;
    expect((properties.type as JsonObject).const).toBe(`Microsoft.Communication.${name}`);
    expect((properties.data as JsonObject).$ref).toBe(`#/components/schemas/${name}EventData`);

    const webhook = (resolve((spec.webhooks as JsonObject)[name]) as JsonObject).post as JsonObject;
    expect(webhook.security).toEqual([]);
    expect(schemaRef((resolve(webhook.requestBody) as JsonObject).content, 'application/cloudevents+json')).toBe(`${name}Event`);
    const headers = (webhook.parameters as Json[]).map((p) => (resolve(p) as JsonObject).name);
    expect(headers).toEqual(['webhook-id', 'webhook-timestamp', 'webhook-signature']);
    // What a receiver may answer, and what the client's createCallbackHandler answers: 204, 400 for
    // a malformed event, 401 for a bad signature, 500 when a handler threw; 410 and 429 as receivers choose.
    expect(Object.keys(webhook.responses as JsonObject).sort()).toEqual(['204', '400', '401', '410', '429', '500']);

    const union = schemas.CallAutomationEvent as JsonObject;
    expect((union.oneOf as JsonObject[]).map((b) => b.$ref)).toContain(`#/components/schemas/${name}Event`);
  });

  it('are the only webhooks', () => {
    expect(Object.keys(spec.webhooks as JsonObject).sort()).toEqual([...events].sort());
  });

  it("are posted to createCall's callbackUri, unsigned by the API's scheme", () => {
    const callbacks = operation('createCall').callbacks as JsonObject;
    const callback = resolve(callbacks.callEvents) as JsonObject;
    expect(Object.keys(callback)).toEqual(['{$request.body#/callbackUri}']);
    const post = (callback['{$request.body#/callbackUri}'] as JsonObject).post as JsonObject;
    expect(post.security).toEqual([]);
    expect(schemaRef((resolve(post.requestBody) as JsonObject).content, 'application/cloudevents+json')).toBe('CallAutomationEvent');
  });

  it('use the state and tone vocabularies of the contract', () => {
    expect((schemas.CallState as JsonObject).enum).toEqual(['idle', 'incoming', 'establishing', 'established', 'hold', 'unhold', 'transferring', 'redirecting', 'terminating', 'terminated']);
    expect((schemas.Tone as JsonObject).enum).toEqual([...Array.from({ length: 10 }, (_, i) => `tone${i}`), 'star', 'pound', 'a', 'b', 'c', 'd', 'flash']);
    expect((schemas.OperationStatus as JsonObject).enum).toEqual(['notStarted', 'running', 'completed', 'failed']);
  });
});

describe('authentication', () => {
  const schemes = components.securitySchemes as JsonObject;

  it('declares the HMAC scheme and a bearer scheme, either of which authenticates', () => {
    expect(spec.security).toEqual([{ hmacAuth: [] }, { bearerAuth: [] }]);
    expect(schemes.hmacAuth).toMatchObject({ type: 'apiKey', in: 'header', name: 'Authorization' });
    expect(schemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it("the Authentication section's worked example is a correct signature", () => {
    const text = (spec.info as JsonObject).description as string;
    expect(text).toContain('## Authentication');
    const key = /Access key `([^`]+)`/.exec(text)![1]!;
    const stringToSign = /string to sign: (.+)/.exec(text)![1]!.replaceAll('\\n', '\n');
    const signature = /signature: +(\S+)/.exec(text)![1]!;
    const [, , lastLine] = stringToSign.split('\n');
    expect(lastLine!.split(';')[2]).toBe(createHash('sha256').update('').digest('base64'));
    expect(createHmac('sha256', Buffer.from(key, 'base64')).update(stringToSign).digest('base64')).toBe(signature);
  });
});
