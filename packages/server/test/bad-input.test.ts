import { createHmacAuth } from '@call-automation/client/raw';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../src/index.ts';
import { accessKey, phoneCall, serveMemory, type Served } from './fixture.ts';

let served: Served;
let errors: unknown[];
beforeAll(async () => {
  errors = [];
  served = await serveMemory({ onError: (error) => void errors.push(error) });
});
afterAll(() => served.server.close());

const signer = createHmacAuth(accessKey);
let unique = 0;

async function post(path: string, body: string, contentType = 'application/json') {
  const request = await signer.sign(new Request(`${served.url}${path}`, { method: 'POST', body, headers: { 'content-type': contentType } }));
  const response = await fetch(request);
  const text = await response.text();
  return { status: response.status, type: response.headers.get('content-type'), text };
}

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

// Each body differs from the others (a subject or a counter), so that no two share a signature.
const cases: Array<[string, string, () => string]> = [
  ['deeply nested JSON', '/calls', () => `{"targets":${nested(5000)},"n":${unique++}}`],
  ['very deeply nested JSON', '/calls', () => nested(60_000).slice(0, 60 * 1024)],
  ['a __proto__ key', '/calls', () => `{"__proto__":{"polluted":true},"subject":"p${unique++}"}`],
  ['a constructor.prototype key', '/calls', () => JSON.stringify({ ...phoneCall, constructor: { prototype: { polluted: true } }, subject: `c${unique++}` })],
  ['a huge array of targets', '/calls', () => JSON.stringify({ ...phoneCall, targets: Array(5000).fill({ phoneNumber: { value: '+1425' } }) })],
  ['a number where a string goes', '/calls', () => JSON.stringify({ ...phoneCall, callbackUri: 12 })],
  ['a null body', '/calls', () => 'null'],
  ['a string body', '/calls', () => `"just a string ${unique++}"`],
  ['a lone surrogate', '/calls', () => `{"subject":"\\ud800","n":${unique++}}`],
  ['NaN', '/calls', () => `{"subject":NaN,"n":${unique++}}`],
  ['a trailing comma', '/calls', () => `{"subject":"x","n":${unique++},}`],
  ['a BOM', '/calls', () => `\ufeff${JSON.stringify({ ...phoneCall, subject: `bom${unique++}` })}`],
  ['an odd id with a dot-dot', '/calls/..%2F..%2Fetc/PlayAudio', () => JSON.stringify({ audioFileUri: `https://m.contoso.com/${unique++}.wav` })],
  ['an over-long id', `/calls/${'a'.repeat(300)}/PlayAudio`, () => JSON.stringify({ audioFileUri: `https://m.contoso.com/${unique++}.wav` })],
  ['a unicode id', '/calls/%E2%98%8E/CancelMediaProcessing', () => JSON.stringify({ operationContext: `u${unique++}` })],
];

describe('bad input', () => {
  it.each(cases)('%s gets a 4xx error body, never a 5xx', async (_name, path, body) => {
    const result = await post(path, body());
    expect(result.status).toBeGreaterThanOrEqual(400);
    expect(result.status).toBeLessThan(500);
    expect(result.type).toMatch(/^application\/json/);
    const parsed = JSON.parse(result.text) as { code: string; message: string };
    expect(typeof parsed.code).toBe('string');
    expect(parsed.message).not.toMatch(/\n\s+at /);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a byte-order mark is covered by the signature and refused as JSON', async () => {
    const result = await post('/calls', `\ufeff${JSON.stringify({ ...phoneCall, subject: 'bom-only' })}`);
    expect(result.status).toBe(400);
    expect(JSON.parse(result.text).code).toBe('InvalidJson');
  });

  it('invalid UTF-8 is refused with 400', async () => {
    const bytes = new Uint8Array([...new TextEncoder().encode('{"subject":"'), 0xff, 0xfe, ...new TextEncoder().encode('"}')]);
    const request = await signer.sign(new Request(`${served.url}/calls`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/json' } }));
    const response = await fetch(request);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 'InvalidJson', message: expect.stringContaining('UTF-8') });
  });

  it('left no unexpected error behind', () => {
    expect(errors).toEqual([]);
  });

  it('answers a handler that throws with 500, a correlation id and no internals', async () => {
    const broken = await serveMemory();
    broken.state.handlers.hangupCall = () => {
      throw new Error('database password is hunter2');
    };
    try {
      const created = await broken.client.createCall({ ...phoneCall, subject: 'broken' });
      const result = await broken.client.hangupCall(created.data!.callLegId);
      expect(result.response.status).toBe(500);
      expect(result.error?.code).toBe('InternalServerError');
      expect(result.error?.message).toMatch(/Correlation id [0-9a-f-]{36}/);
      expect(result.error?.message).not.toContain('hunter2');
      expect(result.error?.message).toContain(result.response.headers.get('x-ms-request-id')!);
    } finally {
      await broken.server.close();
    }
  });

  it('answers 500 with the error body when a handler answers a header HTTP cannot carry, and survives a failing onError', async () => {
    const reported: unknown[] = [];
    const odd = await serveMemory({
      onError: (error) => {
        reported.push(error);
        throw new Error('the error reporter is down');
      },
    });
    (odd.state.handlers as Record<string, unknown>).hangupCall = () => ({ status: 202, headers: { 'x-trace': 'one\r\nSet-Cookie: two' } });
    try {
      const created = await odd.client.createCall({ ...phoneCall, subject: 'odd header' });
      const result = await odd.client.hangupCall(created.data!.callLegId);
      expect(result.response.status).toBe(500);
      expect(result.error?.code).toBe('InternalServerError');
      expect(result.response.headers.get('set-cookie')).toBeNull();
      expect(String(reported[0])).toContain('a header HTTP cannot carry');
    } finally {
      await odd.server.close();
    }
  });

  it.each([
    ['an ApiError of a status the operation does not document', () => new ApiError(418, 'Teapot', 'short and stout')],
    ['an ApiError whose details do not serialise', () => new ApiError(404, 'CallNotFound', 'gone', { details: [{ code: 'x', message: 'y', n: 1n } as never] })],
    ['an ApiError with a header HTTP cannot carry', () => new ApiError(404, 'CallNotFound', 'gone', { headers: { 'x-a': 'a\r\nb' } })],
  ])('answers 500 with the error body to a handler that throws %s', async (_name, thrown) => {
    const reported: unknown[] = [];
    const odd = await serveMemory({ onError: (error) => void reported.push(error) });
    odd.state.handlers.hangupCall = () => {
      throw thrown();
    };
    try {
      const created = await odd.client.createCall({ ...phoneCall, subject: 'odd error' });
      const result = await odd.client.hangupCall(created.data!.callLegId);
      expect(result.response.status).toBe(500);
      expect(result.error?.code).toBe('InternalServerError');
      expect(reported).toHaveLength(1);
      // The server is still there.
      expect((await odd.client.createCall({ ...phoneCall, subject: 'after' })).response.status).toBe(200);
    } finally {
      await odd.server.close();
    }
  });

  it('answers one Content-Length when a handler sets its own', async () => {
    const odd = await serveMemory();
    (odd.state.handlers as Record<string, unknown>).hangupCall = () => ({ status: 202, headers: { 'Content-Length': '99', 'Content-Type': 'text/plain' } });
    try {
      const created = await odd.client.createCall({ ...phoneCall, subject: 'own length' });
      const result = await odd.client.hangupCall(created.data!.callLegId);
      expect(result.response.status).toBe(202);
      expect(result.response.headers.get('content-type')).toBe('text/plain');
    } finally {
      await odd.server.close();
    }
  });

  it('answers 500 when a handler answers a status the spec does not document', async () => {
    const wrong = await serveMemory();
    (wrong.state.handlers as Record<string, unknown>).hangupCall = () => ({ status: 204 });
    try {
      const created = await wrong.client.createCall({ ...phoneCall, subject: 'wrong' });
      expect((await wrong.client.hangupCall(created.data!.callLegId)).response.status).toBe(500);
    } finally {
      await wrong.server.close();
    }
  });
});
