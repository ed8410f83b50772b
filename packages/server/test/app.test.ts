import { createHmacAuth } from '@call-automation/client/raw';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, createCallAutomationService } from '../src/index.ts';
import { accessKey, memoryHandlers, phoneCall, rotatedKey, serveMemory, type Served } from './fixture.ts';

let served: Served;
beforeAll(async () => {
  served = await serveMemory();
});
afterAll(() => served.server.close());

// One signer, as in a client: it never gives two identical requests the same signature.
const signer = createHmacAuth(accessKey);

/** A request signed as the client signs it. */
async function signed(method: string, path: string, body?: string, options: { key?: string; headers?: Record<string, string>; now?: number } = {}) {
  const request = new Request(`${served.url}${path}`, {
    method,
    body,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
  });
  const auth = options.key || options.now ? createHmacAuth(options.key ?? accessKey, { now: () => options.now ?? Date.now() }) : signer;
  return auth.sign(request);
}

async function send(request: Request | Promise<Request>) {
  const response = await fetch(await request);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

describe('the stub over HTTP', () => {
  it('runs every operation through the client', async () => {
    const { client } = served;
    const created = await client.createCall(phoneCall);
    expect(created.response.status).toBe(200);
    const callLegId = created.data!.callLegId;
    expect((await client.playAudio(callLegId, { audioFileUri: 'https://m.contoso.com/a.wav', operationContext: 'ctx' })).data).toEqual({ id: 'op-1', status: 'running', operationContext: 'ctx' });
    expect((await client.cancelMediaProcessing(callLegId, {})).response.status).toBe(202);
    expect((await client.inviteParticipants(callLegId, { participants: [{ phoneNumber: { value: '+14251001000' } }] })).response.status).toBe(202);
    expect((await client.removeParticipant(callLegId, 'p-1')).response.status).toBe(202);
    expect((await client.removeParticipant(callLegId, 'p-1')).error).toMatchObject({ code: 'ParticipantNotFound' });
    expect((await client.hangupCall(callLegId)).response.status).toBe(202);
    expect((await client.hangupCall(callLegId)).error).toEqual({ code: 'CallNotFound', message: `No call with id ${callLegId}.`, target: 'callId' });
  });

  it('answers a body that breaks the schema with 400 and one detail per rule', async () => {
    const result = await send(signed('POST', '/calls', JSON.stringify({ ...phoneCall, targets: [], callbackUrl: 'x', requestedModalities: ['hologram'] })));
    expect(result.status).toBe(400);
    expect(result.body.code).toBe('ValidationFailed');
    expect(result.body.details).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ code: 'TooFew', target: '/targets' }),
        expect.objectContaining({ code: 'UnknownProperty', target: '/callbackUrl' }),
        expect.objectContaining({ code: 'InvalidValue', target: '/requestedModalities/0' }),
      ]),
    );
    expect(result.body.details).toHaveLength(3);
  });

  it('says a phone number is not in E.164 form, in the spec\'s words, rather than that the identifier matches no kind', async () => {
    const body = { ...phoneCall, targets: [{ phoneNumber: { value: '4251001000' } }] };
    const result = await send(signed('POST', '/calls', JSON.stringify(body)));
    expect(result.status).toBe(400);
    expect(result.body.details).toEqual([{ code: 'InvalidFormat', target: '/targets/0/phoneNumber/value', message: 'must be the number in E.164 form, e.g. +14251001000' }]);
  });

  it('reports an identifier of two kinds once, not once per branch', async () => {
    const body = { ...phoneCall, targets: [{ phoneNumber: { value: '+14251001000' }, communicationUser: { id: 'x' } }] };
    const result = await send(signed('POST', '/calls', JSON.stringify(body)));
    expect(result.body.details).toEqual([expect.objectContaining({ code: 'NotExactlyOne', target: '/targets/0' })]);
  });

  it.each([
    ['malformed JSON', '{"targets": [', 'application/json', 'InvalidJson'],
    ['an empty body', '', 'application/json', 'InvalidJson'],
    ['a body of the wrong type', '[1,2]', 'application/json', 'ValidationFailed'],
    ['a text Content-Type', JSON.stringify({ ...phoneCall, subject: 'text' }), 'text/plain', 'InvalidContentType'],
  ])('answers %s with 400', async (_name, body, type, code) => {
    const result = await send(signed('POST', '/calls', body, { headers: { 'content-type': type } }));
    expect(result.status).toBe(400);
    expect(result.body.code).toBe(code);
  });

  it('answers a missing Content-Type with 400', async () => {
    // Bytes, not a string: fetch would add text/plain to a string body.
    const body = new TextEncoder().encode(JSON.stringify({ ...phoneCall, subject: 'no type' }));
    const request = await signer.sign(new Request(`${served.url}/calls`, { method: 'POST', body }));
    expect(request.headers.get('content-type')).toBeNull();
    const result = await send(request);
    expect(result.status).toBe(400);
    expect(result.body.code).toBe('InvalidContentType');
  });

  it('answers an odd id with 400 naming the parameter', async () => {
    const result = await send(signed('POST', '/calls/bad%20id!/Hangup'));
    expect(result.status).toBe(400);
    expect(result.body.details[0]).toMatchObject({ code: 'InvalidFormat', target: 'callId' });
  });

  it('answers 405 with Allow, 404 for an unknown path, both as error bodies', async () => {
    const wrongMethod = await send(signed('GET', '/calls'));
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    expect(wrongMethod.body.code).toBe('MethodNotAllowed');
    const unknown = await send(signed('POST', '/nothing/here'));
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('NotFound');
  });

  it('answers a streamed body (no Content-Length) over the limit with 413', async () => {
    const chunk = new TextEncoder().encode('x'.repeat(16 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const request = new Request(`${served.url}/calls`, { method: 'POST', body: stream, headers: { 'content-type': 'application/json', authorization: 'HMAC-SHA256 x' }, duplex: 'half' } as RequestInit);
    const result = await send(request);
    expect(result.status).toBe(413);
    expect(result.body.code).toBe('PayloadTooLarge');
  });

  it('answers a body over the limit with 413', async () => {
    const huge = JSON.stringify({ ...phoneCall, subject: 'x'.repeat(70 * 1024) });
    const result = await send(signed('POST', '/calls', huge));
    expect(result.status).toBe(413);
    expect(result.body.code).toBe('PayloadTooLarge');
  });
});

describe('authentication', () => {
  it.each([
    ['no credentials', () => new Request(`${served.url}/calls/x/Hangup`, { method: 'POST' }), 'MissingAuthorization'],
    ['a malformed header', async () => { const r = await signed('POST', '/calls/x/Hangup'); r.headers.set('Authorization', 'HMAC-SHA256 nonsense'); return r; }, 'InvalidAuthorization'],
    ['a wrong key', () => signed('POST', '/calls/x/Hangup', undefined, { key: Buffer.from('wrong-key-wrong-key').toString('base64') }), 'InvalidSignature'],
    ['a stale date', () => signed('POST', '/calls/x/Hangup', undefined, { now: Date.now() - 16 * 60_000 }), 'InvalidDate'],
    ['a future date', () => signed('POST', '/calls/x/Hangup', undefined, { now: Date.now() + 16 * 60_000 }), 'InvalidDate'],
    ['no date', async () => { const r = await signed('POST', '/calls/x/Hangup'); r.headers.delete('x-ms-date'); return r; }, 'InvalidDate'],
    ['a signature of the wrong length', async () => { const r = await signed('POST', '/calls/x/Hangup'); r.headers.set('Authorization', r.headers.get('Authorization')!.replace(/Signature=.*/, 'Signature=AAAA')); return r; }, 'InvalidSignature'],
    ['a tampered body', async () => {
      const r = await signed('POST', '/calls', JSON.stringify(phoneCall));
      return new Request(r.url, { method: 'POST', headers: r.headers, body: JSON.stringify({ ...phoneCall, subject: 'changed' }) });
    }, 'ContentHashMismatch'],
    ['a bearer token with no verifier', () => new Request(`${served.url}/calls/x/Hangup`, { method: 'POST', headers: { Authorization: 'Bearer abc' } }), 'InvalidToken'],
  ])('refuses %s with 401 and the error body', async (_name, make, code) => {
    const result = await send(make());
    expect(result.status).toBe(401);
    expect(result.body.code).toBe(code);
  });

  it('tells a caller with a wrong key to check the key before the signing', async () => {
    const result = await send(signed('POST', '/calls/x/Hangup', undefined, { key: Buffer.from('wrong-key-wrong-key').toString('base64') }));
    expect(result.status).toBe(401);
    expect(result.body.message).toMatch(/^The request signature does not match\. Check the access key first: it must be the resource's, from its connection string/);
  });

  it('accepts the rotated key', async () => {
    expect((await send(signed('POST', '/calls/x/Hangup', undefined, { key: rotatedKey }))).status).toBe(404);
  });
});

describe('idempotent create', () => {
  it('answers a repeat with the first result and runs the handler once', async () => {
    const before = served.state.createdCount();
    const id = crypto.randomUUID();
    const headers = { 'Repeatability-Request-ID': id, 'Repeatability-First-Sent': new Date().toUTCString() };
    const call = { ...phoneCall, subject: 'idempotent' };
    const first = await served.client.createCall(call, { headers });
    const again = await served.client.createCall(call, { headers });
    expect(first.response.status).toBe(200);
    expect(again.data).toEqual(first.data);
    expect(again.response.headers.get('Repeatability-Result')).toBe('accepted');
    expect(served.state.createdCount() - before).toBe(1);
  });
});

describe('a handler that throttles', () => {
  it('answers its ApiError(429) as 429 with Retry-After and the error body, on every operation', async () => {
    const state = memoryHandlers();
    const throttle = () => {
      throw new ApiError(429, 'TooManyRequests', 'Too many requests; retry after 2 seconds.', { headers: { 'Retry-After': '2' } });
    };
    const throttled = await serveMemory({ handlers: { ...state.handlers, createCall: throttle, playAudio: throttle, removeParticipant: throttle } });
    try {
      const { client } = throttled;
      for (const result of [
        await client.createCall(phoneCall),
        await client.playAudio('leg-1', { audioFileUri: 'https://m.contoso.com/a.wav' }),
        await client.removeParticipant('leg-1', 'p-1'),
      ]) {
        expect(result.response.status).toBe(429);
        expect(result.response.headers.get('retry-after')).toBe('2');
        expect(result.error).toEqual({ code: 'TooManyRequests', message: 'Too many requests; retry after 2 seconds.' });
      }
    } finally {
      await throttled.server.close();
    }
  });
});

describe('a service', () => {
  it('cannot be made without a handler for every operation of the spec', () => {
    const { handlers } = memoryHandlers();
    const { playAudio: _playAudio, removeParticipant: _removeParticipant, ...incomplete } = handlers;
    expect(() => createCallAutomationService({ handlers: incomplete as typeof handlers, auth: { accessKeys: [accessKey] } })).toThrow(
      'No handler for playAudio, removeParticipant: every operation of the spec needs one.',
    );
  });
});
