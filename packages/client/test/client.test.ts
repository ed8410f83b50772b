import { afterEach, describe, expect, it, vi } from 'vitest';
import manifest from '../package.json' with { type: 'json' };
import { createHmacAuth } from '../src/raw/auth.ts';
import { createCallAutomationClient, hasStatus, parseConnectionString } from '../src/index.ts';
import createClient from 'openapi-fetch';
import type { paths } from '@call-automation/contract';
import { CallRequest, createClientFetch, createRawClient } from '../src/raw/index.ts';
import { networkError } from './stub-fetch.ts';
import { connectionString, json, phoneCall, stubFetch } from './stub-fetch.ts';

describe('connection strings', () => {
  it('parse with keys in any case and order, the endpoint without its trailing slash', () => {
    expect(parseConnectionString('AccessKey=a2V5;Endpoint=https://x.communication.azure.com/')).toEqual({
      endpoint: 'https://x.communication.azure.com',
      accessKey: 'a2V5',
    });
    expect(parseConnectionString('endpoint=http://127.0.0.1:4780/;accesskey=a2V5==;')).toEqual({ endpoint: 'http://127.0.0.1:4780', accessKey: 'a2V5==' });
  });

  it.each([
    ['endpoint=https://x.communication.azure.com/', /without accesskey/],
    ['accesskey=a2V5', /without endpoint/],
    ['endpoint=x.communication.azure.com;accesskey=a2V5', /not an absolute http\(s\) URL/],
    ['endpoint=ftp://x.communication.azure.com;accesskey=a2V5', /not an absolute http\(s\) URL/],
    ['endpoint=https://x.communication.azure.com/?api-version=1;accesskey=a2V5', /has a query or a fragment/],
  ])('refuse %s, saying why and never echoing the key', (text, message) => {
    expect(() => parseConnectionString(text)).toThrow(message);
    try {
      parseConnectionString(text);
    } catch (error) {
      expect((error as Error).message).not.toContain('a2V5');
    }
  });

  it.each([undefined, null, '', '  '])('refuse none at all (%j), saying what is missing and where it comes from', (missing) => {
    const message = /^No connection string \(set CALL_AUTOMATION_CONNECTION_STRING\): expected endpoint=https:\/\/<resource>\.communication\.azure\.com\/;accesskey=<base64 key>$/;
    expect(() => parseConnectionString(missing as string)).toThrow(message);
    expect(() => createCallAutomationClient(missing as string)).toThrow(message);
    expect(() => createRawClient(missing as string)).toThrow(message);
  });

  it("refuse the README's quick start with the variable unset, naming the variable", () => {
    vi.stubEnv('CALL_AUTOMATION_CONNECTION_STRING', undefined);
    try {
      expect(() => createCallAutomationClient(process.env.CALL_AUTOMATION_CONNECTION_STRING!)).toThrow(new TypeError(
        'No connection string (set CALL_AUTOMATION_CONNECTION_STRING): expected endpoint=https://<resource>.communication.azure.com/;accesskey=<base64 key>',
      ));
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe('the client', () => {
  afterEach(() => vi.useRealTimers());

  it('sends each operation to its path and method, signed, with its JSON body', async () => {
    const { fetch, seen } = stubFetch((request) => (request.url.endsWith('/calls') ? json(200, { callLegId: 'leg-1' }) : new Response(null, { status: 202 })));
    const client = createCallAutomationClient(connectionString, { fetch, userAgent: 'reminders/2.1' });
    await client.createCall(phoneCall);
    await client.hangupCall('leg-1');
    await client.playAudio('leg-1', { audioFileUri: 'https://m.contoso.com/a.wav', loop: true });
    await client.cancelMediaProcessing('leg-1', { operationContext: 'c' });
    await client.inviteParticipants('leg-1', { participants: [{ phoneNumber: { value: '+14251001000' } }] });
    await client.removeParticipant('leg 1', 'p/1');
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'POST https://contoso.communication.azure.com/calls',
      'POST https://contoso.communication.azure.com/calls/leg-1/Hangup',
      'POST https://contoso.communication.azure.com/calls/leg-1/PlayAudio',
      'POST https://contoso.communication.azure.com/calls/leg-1/CancelMediaProcessing',
      'POST https://contoso.communication.azure.com/calls/leg-1/participants',
      'DELETE https://contoso.communication.azure.com/calls/leg%201/participants/p%2F1',
    ]);
    for (const s of seen) {
      expect(s.headers.get('Authorization')).toMatch(/^HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=[A-Za-z0-9+/]{43}=$/);
      expect(s.headers.get('User-Agent')).toBe(`reminders/2.1 call-automation-client/${manifest.version}`);
    }
    expect(seen[0]!.body).toBe(JSON.stringify(phoneCall));
    expect(seen[0]!.headers.get('Content-Type')).toBe('application/json');
    expect(seen[1]!.body).toBe('');
    expect(seen[1]!.headers.get('Content-Type')).toBeNull();
    expect(seen[2]!.body).toBe('{"audioFileUri":"https://m.contoso.com/a.wav","loop":true}');
  });

  it('signs the URL as sent, the same as signing the Request would, for odd ids and a mixed-case endpoint with its default port', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.parse('Mon, 23 Nov 2026 12:00:00 GMT'));
    const accessKey = parseConnectionString(connectionString).accessKey;
    const ids = ['a b', 'ü/é', "x'(y)*!~", '%41', '...', 'a?b#c', '%2e'];
    const { fetch, seen } = stubFetch(() => new Response(null, { status: 202 }));
    const client = createCallAutomationClient({ endpoint: 'HTTPS://Contoso.Communication.Azure.com:443/', credential: accessKey }, { fetch });
    for (const id of ids) await client.removeParticipant('leg-1', id);
    const reference = createHmacAuth(accessKey);
    for (const [i, id] of ids.entries()) {
      const request = await reference.sign(new Request(`https://contoso.communication.azure.com/calls/leg-1/participants/${encodeURIComponent(id)}`, { method: 'DELETE' }));
      expect(seen[i]!.url).toBe(request.url);
      expect(seen[i]!.headers.get('Authorization'), id).toBe(request.headers.get('Authorization'));
    }
    // A URL drops a "." or ".." segment: such an id is refused rather than sent to another path.
    for (const id of ['.', '..']) await expect(client.removeParticipant('leg-1', id)).rejects.toThrow(/participantId "\.{1,2}" cannot be sent as a path segment/);
    expect(seen).toHaveLength(ids.length);
  });

  it('sends a bearer token from a token credential', async () => {
    const { fetch, seen } = stubFetch(() => new Response(null, { status: 202 }));
    const client = createCallAutomationClient({ endpoint: 'http://127.0.0.1:4780', credential: { getToken: async () => 'tok-123' } }, { fetch });
    await client.hangupCall('leg-1');
    expect(seen[0]!.headers.get('Authorization')).toBe('Bearer tok-123');
  });

  it('answers data on success and the error body otherwise, narrowed by status', async () => {
    const { fetch } = stubFetch((_r, n) =>
      n === 1 ? json(200, { callLegId: 'leg-1' }) : json(404, { code: 'CallNotFound', message: 'No call with id leg-9.', target: 'callId' }),
    );
    const client = createCallAutomationClient(connectionString, { fetch });
    const created = await client.createCall(phoneCall);
    expect(created).toMatchObject({ data: { callLegId: 'leg-1' }, operation: 'createCall' });
    expect(created.error).toBeUndefined();
    const missing = await client.hangupCall('leg-9');
    expect(missing.data).toBeUndefined();
    expect(hasStatus(missing, 404)).toBe(true);
    expect(hasStatus(missing, 401)).toBe(false);
    if (hasStatus(missing, 404)) expect(missing.error.code).toBe('CallNotFound');
  });

  it('turns an error that is not a CommunicationError into one that says what came back', async () => {
    const { fetch } = stubFetch(() => new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
    const result = await createCallAutomationClient(connectionString, { fetch, retry: false }).hangupCall('leg-1');
    expect(result.error).toEqual({ code: 'Http502', message: 'HTTP 502 Bad Gateway without an error body: <html>Bad gateway</html>' });
  });

  it("runs the user's middleware before signing, and shows it the answer after retries", async () => {
    const { fetch, seen } = stubFetch((_r, n) => (n === 1 ? json(503, { code: 'Busy', message: 'x' }) : new Response(null, { status: 202 })));
    const statuses: number[] = [];
    const client = createCallAutomationClient(connectionString, {
      fetch,
      retry: { baseDelayMs: 1, maxDelayMs: 1 },
      middleware: [
        {
          onRequest: ({ request }) => {
            request.headers.set('x-trace-id', 't-1');
            return request;
          },
          onResponse: ({ response }) => void statuses.push(response.status),
        },
      ],
    });
    await client.hangupCall('leg-1');
    expect(seen.map((s) => s.headers.get('x-trace-id'))).toEqual(['t-1', 't-1']);
    expect(statuses).toEqual([202]);
  });

  it('lets a call override the repeatability headers, to retry across restarts', async () => {
    const { fetch, seen } = stubFetch(() => json(200, { callLegId: 'leg-1' }));
    const id = '3f7d8b0e-2a4c-4e6f-9b1d-5c8a7e6f4d3b';
    await createCallAutomationClient(connectionString, { fetch }).createCall(phoneCall, {
      headers: { 'Repeatability-Request-ID': id, 'Repeatability-First-Sent': 'Mon, 23 Nov 2026 12:00:00 GMT' },
    });
    expect(seen[0]!.headers.get('Repeatability-Request-ID')).toBe(id);
    expect(seen[0]!.headers.get('Repeatability-First-Sent')).toBe('Mon, 23 Nov 2026 12:00:00 GMT');
  });

  it("signs what the user's middleware leaves: a new body, a new header", async () => {
    const { fetch, seen } = stubFetch(() => json(202, { id: 'op', status: 'running' }));
    const client = createCallAutomationClient(connectionString, {
      fetch,
      middleware: [
        {
          onRequest: async ({ request }) => {
            const body = { ...(await request.json()), operationContext: 'ünïcødé' };
            return new Request(request, { body: JSON.stringify(body), headers: { ...Object.fromEntries(request.headers), 'x-tenant': 'a' } });
          },
        },
      ],
    });
    await client.playAudio('leg-1', { audioFileUri: 'https://m.contoso.com/a.wav' });
    const [sent] = seen;
    expect(JSON.parse(sent!.body)).toEqual({ audioFileUri: 'https://m.contoso.com/a.wav', operationContext: 'ünïcødé' });
    expect(sent!.headers.get('x-tenant')).toBe('a');
    const hash = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(sent!.body))).toString('base64');
    expect(sent!.headers.get('x-ms-content-sha256')).toBe(hash);
  });

  it("lets the user's middleware answer without sending, or recover from a network error", async () => {
    const { fetch, seen } = stubFetch(() => {
      throw networkError('ECONNRESET');
    });
    const cached = createCallAutomationClient(connectionString, { fetch, middleware: [{ onRequest: () => json(200, { callLegId: 'cached' }) }] });
    expect((await cached.createCall(phoneCall)).data).toEqual({ callLegId: 'cached' });
    expect(seen).toHaveLength(0);
    const errors: unknown[] = [];
    const recovering = createCallAutomationClient(connectionString, {
      fetch,
      retry: false,
      middleware: [{ onError: ({ error }) => (errors.push(error), new Response(null, { status: 202 })) }],
    });
    expect((await recovering.hangupCall('leg-1')).response.status).toBe(202);
    expect(errors).toMatchObject([{ message: 'hangupCall POST https://contoso.communication.azure.com/calls/leg-1/Hangup failed: ECONNRESET' }]);
    const renaming = createCallAutomationClient(connectionString, { fetch, retry: false, middleware: [{ onError: () => new Error('the service is unreachable') }] });
    await expect(renaming.hangupCall('leg-1')).rejects.toThrow('the service is unreachable');
  });

  it('refuses middleware that is not one, and skips empty entries', async () => {
    expect(() => createCallAutomationClient(connectionString, { middleware: [{} as never] })).toThrow(/onRequest\(\), onResponse\(\) or onError\(\)/);
    const { fetch, seen } = stubFetch(() => new Response(null, { status: 202 }));
    const debug = false;
    const client = createCallAutomationClient(connectionString, { fetch, middleware: [debug && { onRequest: () => undefined }, undefined].filter(() => true) as never });
    expect((await client.hangupCall('leg-1')).response.status).toBe(202);
    expect(seen).toHaveLength(1);
  });

  it("honours the signal of a Request the user's middleware returns", async () => {
    const { fetch } = stubFetch(
      (request) => new Promise((_resolve, reject) => request.signal.addEventListener('abort', () => reject(request.signal.reason))),
    );
    const client = createCallAutomationClient(connectionString, {
      fetch,
      retry: false,
      middleware: [{ onRequest: ({ request }) => new Request(request, { signal: AbortSignal.timeout(30) }) }],
    });
    await expect(client.hangupCall('leg-1')).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('lets a call remove a header with null, and skips undefined', async () => {
    const { fetch, seen } = stubFetch(() => json(200, { callLegId: 'leg-1' }));
    await createCallAutomationClient(connectionString, { fetch, retry: false }).createCall(phoneCall, {
      headers: { 'Repeatability-First-Sent': null, 'x-note': undefined },
    });
    expect(seen[0]!.headers.get('Repeatability-First-Sent')).toBeNull();
    expect(seen[0]!.headers.has('x-note')).toBe(false);
    expect(seen[0]!.headers.get('Repeatability-Request-ID')).not.toBeNull();
  });
});

describe('the raw openapi-fetch client', () => {
  afterEach(() => vi.useRealTimers());

  it('has the same signing, User-Agent and retries', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    // The retry a second after the first attempt: signed anew, it carries a new date.
    const { fetch, seen } = stubFetch((_r, n) => {
      vi.setSystemTime(Date.now() + 1000);
      return n === 1 ? json(503, { code: 'Busy', message: 'x' }) : new Response(null, { status: 202 });
    });
    const raw = createRawClient(connectionString, { fetch, userAgent: 'reminders/2.1', retry: { baseDelayMs: 1, maxDelayMs: 1 } });
    const { response } = await raw.POST('/calls/{callId}/Hangup', { params: { path: { callId: 'leg-1' } } });
    expect(response.status).toBe(202);
    expect(seen).toHaveLength(2);
    for (const s of seen) {
      expect(s.headers.get('Authorization')).toMatch(/^HMAC-SHA256 /);
      expect(s.headers.get('User-Agent')).toBe(`reminders/2.1 call-automation-client/${manifest.version}`);
    }
    expect(seen[0]!.headers.get('Authorization')).not.toBe(seen[1]!.headers.get('Authorization'));
  });

  it("retries nothing with retry: false, and carries the caller's signal to each retry", async () => {
    const off = stubFetch(() => json(503, { code: 'Busy', message: 'x' }));
    await createRawClient(connectionString, { fetch: off.fetch, retry: false }).POST('/calls/{callId}/Hangup', { params: { path: { callId: 'leg-1' } } });
    expect(off.seen).toHaveLength(1);
    const on = stubFetch(() => json(503, { code: 'Busy', message: 'x' }));
    const controller = new AbortController();
    await createRawClient(connectionString, { fetch: on.fetch, retry: { baseDelayMs: 1, maxDelayMs: 1, maxRetries: 1 } }).POST('/calls/{callId}/Hangup', {
      params: { path: { callId: 'leg-1' } },
      signal: controller.signal,
    });
    expect(on.seen).toHaveLength(2);
    controller.abort();
    expect(on.seen.map((s) => s.signal.aborted)).toEqual([true, true]);
  });

  it("gives createCall repeatability headers, keeping the caller's", async () => {
    const { fetch, seen } = stubFetch(() => json(200, { callLegId: 'leg-1' }));
    const raw = createRawClient(connectionString, { fetch });
    await raw.POST('/calls', { body: phoneCall });
    const id = '3f7d8b0e-2a4c-4e6f-9b1d-5c8a7e6f4d3b';
    await raw.POST('/calls', { body: phoneCall, params: { header: { 'Repeatability-Request-ID': id, 'Repeatability-First-Sent': 'Mon, 23 Nov 2026 12:00:00 GMT' } } });
    await raw.POST('/calls/{callId}/Hangup', { params: { path: { callId: 'leg-1' } } });
    expect(seen[0]!.headers.get('Repeatability-Request-ID')).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen[1]!.headers.get('Repeatability-Request-ID')).toBe(id);
    expect(seen[1]!.headers.get('Repeatability-First-Sent')).toBe('Mon, 23 Nov 2026 12:00:00 GMT');
    expect(seen[2]!.headers.has('Repeatability-Request-ID')).toBe(false);
  });

  it("finds the operation under an endpoint's own path, to retry it by its rules", async () => {
    const answers = () => stubFetch((_r, n) => (n === 1 ? json(500, { code: 'InternalServerError', message: 'x' }) : new Response(null, { status: 202 })));
    const target = { endpoint: 'https://contoso.example/acs/v1', credential: 'Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=' };
    const idempotent = answers();
    const raw = createRawClient(target, { fetch: idempotent.fetch, retry: { baseDelayMs: 1, maxDelayMs: 1 } });
    expect((await raw.POST('/calls/{callId}/Hangup', { params: { path: { callId: 'leg-1' } } })).response.status).toBe(202);
    expect(idempotent.seen.map((s) => s.url)).toEqual(Array(2).fill('https://contoso.example/acs/v1/calls/leg-1/Hangup'));
    const once = answers();
    const playing = createRawClient(target, { fetch: once.fetch, retry: { baseDelayMs: 1, maxDelayMs: 1 } });
    expect((await playing.POST('/calls/{callId}/PlayAudio', { params: { path: { callId: 'leg-1' } }, body: { audioFileUri: 'https://m/a.wav' } })).response.status).toBe(500);
    expect(once.seen).toHaveLength(1);
  });

  it('lends its fetch to an openapi-fetch client of your own: signing, retries and error bodies', async () => {
    const { fetch, seen } = stubFetch((_r, n) => (n === 1 ? json(503, { code: 'ServiceUnavailable', message: 'x' }) : new Response('<html>gone</html>', { status: 410 })));
    const own = createClient<paths>({
      baseUrl: 'https://contoso.communication.azure.com',
      fetch: createClientFetch(connectionString, { fetch, retry: { baseDelayMs: 1, maxDelayMs: 1 } }),
      Request: CallRequest,
    });
    const { error, response } = await own.POST('/calls/{callId}/Hangup', { params: { path: { callId: 'leg-1' } } });
    expect(response.status).toBe(410);
    expect(error).toEqual({ code: 'Http410', message: 'HTTP 410 without an error body: <html>gone</html>' });
    expect(seen).toHaveLength(2);
    for (const s of seen) expect(s.headers.get('Authorization')).toMatch(/^HMAC-SHA256 /);
  });
});
