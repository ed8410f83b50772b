import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCallAutomationClient } from '../src/client.ts';
import { backoffDelay, defaultRetry, parseRetryAfter, retrySettings } from '../src/retry.ts';
import { connectionString, json, networkError, phoneCall, stubFetch } from './stub-fetch.ts';

const fast = { baseDelayMs: 1, maxDelayMs: 2 };
const ok = () => json(202, { id: 'op', status: 'running' });

/** Lets signing (Web Crypto, off the main thread) and the stubbed fetch run; fake timers do not. */
async function settle() {
  for (let i = 0; i < 30; i++) await new Promise((resolve) => setImmediate(resolve));
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('the backoff', () => {
  it('is full jitter under a ceiling that doubles up to maxDelayMs', () => {
    const options = { ...defaultRetry, baseDelayMs: 100, maxDelayMs: 1000 };
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, options, () => 0.999999))).toEqual([99, 199, 399, 799, 999, 999]);
    expect(backoffDelay(3, options, () => 0)).toBe(0);
    expect(backoffDelay(2, options, () => 0.5)).toBe(200);
  });

  it('settings keep the value below for a field left undefined, and refuse one that is not a finite number ≥ 0', () => {
    expect(retrySettings({ maxRetries: undefined, baseDelayMs: 10 }, { maxDelayMs: 20 })).toEqual({ ...defaultRetry, baseDelayMs: 10, maxDelayMs: 20 });
    expect(() => retrySettings({ maxRetries: -1 })).toThrow('retry.maxRetries must be a number ≥ 0, not -1');
    expect(() => retrySettings({ baseDelayMs: Number.NaN })).toThrow(RangeError);
    expect(() => createCallAutomationClient(connectionString, { retry: { maxDelayMs: Infinity } })).toThrow(/maxDelayMs/);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('Mon, 23 Nov 2026 12:00:00 GMT');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Mon, 23 Nov 2026 12:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Mon, 23 Nov 2026 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe('retries', () => {
  it('retry 503s with the same body and repeatability headers, each attempt signed anew', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    // Each attempt a second after the one before: signed anew, it carries a new date.
    const { fetch, seen } = stubFetch((_r, n) => {
      vi.setSystemTime(Date.now() + 1000);
      return n < 3 ? json(503, { code: 'Busy', message: 'busy' }) : json(200, { callLegId: 'leg-1' });
    });
    const client = createCallAutomationClient(connectionString, { fetch, retry: fast });
    const result = await client.createCall(phoneCall);
    expect(result.data).toEqual({ callLegId: 'leg-1' });
    expect(seen).toHaveLength(3);
    expect(new Set(seen.map((s) => s.body))).toEqual(new Set([JSON.stringify(phoneCall)]));
    expect(new Set(seen.map((s) => s.headers.get('Repeatability-Request-ID'))).size).toBe(1);
    expect(seen[0]!.headers.get('Repeatability-Request-ID')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(seen.map((s) => s.headers.get('Repeatability-First-Sent'))).size).toBe(1);
    expect(new Set(seen.map((s) => s.headers.get('Authorization'))).size).toBe(3);
  });

  it.each([408, 429, 500, 502, 503, 504])('retry %i on an idempotent operation', async (status) => {
    const { fetch, seen } = stubFetch((_r, n) => (n === 1 ? json(status, { code: 'X', message: 'x' }) : new Response(null, { status: 202 })));
    const result = await createCallAutomationClient(connectionString, { fetch, retry: fast }).hangupCall('leg-1');
    expect(result.response.status).toBe(202);
    expect(seen).toHaveLength(2);
  });

  it.each([400, 401, 404, 405, 413, 501])('do not retry %i', async (status) => {
    const { fetch, seen } = stubFetch(() => json(status, { code: 'X', message: 'x' }));
    const result = await createCallAutomationClient(connectionString, { fetch, retry: fast }).hangupCall('leg-1');
    expect(result.error).toEqual({ code: 'X', message: 'x' });
    expect(seen).toHaveLength(1);
  });

  it('stop after maxRetries and answer the last response', async () => {
    const { fetch, seen } = stubFetch(() => json(500, { code: 'InternalServerError', message: 'boom' }));
    const result = await createCallAutomationClient(connectionString, { fetch, retry: { ...fast, maxRetries: 2 } }).hangupCall('leg-1');
    expect(seen).toHaveLength(3);
    expect(result.response.status).toBe(500);
    expect(result.error?.code).toBe('InternalServerError');
  });

  it('wait as Retry-After asks', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { fetch, seen } = stubFetch((_r, n) => (n === 1 ? json(429, { code: 'Throttled', message: 'slow down' }, { 'Retry-After': '2' }) : ok()));
    const pending = createCallAutomationClient(connectionString, { fetch, retry: fast }).playAudio('leg-1', { audioFileUri: 'https://m.contoso.com/a.wav' });
    await settle();
    await vi.advanceTimersByTimeAsync(1999);
    await settle();
    expect(seen).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    await settle();
    expect((await pending).response.status).toBe(202);
    expect(seen).toHaveLength(2);
  });

  it('give up at once when Retry-After asks for longer than maxRetryAfterMs', async () => {
    const { fetch, seen } = stubFetch(() => json(503, { code: 'Unavailable', message: 'later' }, { 'Retry-After': '3600' }));
    const result = await createCallAutomationClient(connectionString, { fetch }).hangupCall('leg-1');
    expect(seen).toHaveLength(1);
    expect(result.response.status).toBe(503);
  });

  it('follow the backoff schedule', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const { fetch, seen } = stubFetch(() => json(502, { code: 'BadGateway', message: 'x' }));
    const pending = createCallAutomationClient(connectionString, { fetch, retry: { baseDelayMs: 100, maxDelayMs: 1000, maxRetries: 3 } }).hangupCall('leg-1');
    // Ceilings 100, 200, 400 ms at jitter 0.5: waits of 50, 100 and 200 ms.
    const counts: number[] = [];
    for (const step of [0, 49, 1, 99, 1, 199, 1]) {
      await vi.advanceTimersByTimeAsync(step);
      await settle();
      counts.push(seen.length);
    }
    expect(counts).toEqual([1, 1, 2, 2, 3, 3, 4]);
    expect((await pending).response.status).toBe(502);
  });

  it('never repeat PlayAudio or an invitation after an answer that may have acted (500)', async () => {
    const { fetch, seen } = stubFetch(() => json(500, { code: 'InternalServerError', message: 'x' }));
    const client = createCallAutomationClient(connectionString, { fetch, retry: fast });
    await client.playAudio('leg-1', { audioFileUri: 'https://m.contoso.com/a.wav' });
    await client.inviteParticipants('leg-1', { participants: [{ phoneNumber: { value: '+14251001000' } }] });
    expect(seen).toHaveLength(2);
  });

  it('repeat PlayAudio after 408, 429 and 503, which the service did not act on', async () => {
    const refusals = [json(408, { code: 'Timeout', message: 'x' }), json(429, { code: 'Throttled', message: 'x' }), json(503, { code: 'ServiceUnavailable', message: 'x' })];
    const { fetch, seen } = stubFetch((_r, n) => refusals[n - 1] ?? ok());
    const result = await createCallAutomationClient(connectionString, { fetch, retry: fast }).playAudio('leg-1', { audioFileUri: 'https://m.contoso.com/a.wav' });
    expect(result.data).toEqual({ id: 'op', status: 'running' });
    expect(seen).toHaveLength(4);
  });

  it('wait out a 409 to a repeatable createCall (its first attempt still runs), then get the first result', async () => {
    const inProgress = () => json(409, { code: 'RequestInProgress', message: 'x' }, { 'Retry-After': '1', 'Repeatability-Result': 'accepted' });
    const { fetch, seen } = stubFetch((_r, n) => (n === 1 ? inProgress() : json(200, { callLegId: 'leg-1' })));
    const result = await createCallAutomationClient(connectionString, { fetch, retry: { ...fast, maxRetryAfterMs: 2000 } }).createCall(phoneCall);
    expect(result.data).toEqual({ callLegId: 'leg-1' });
    expect(seen).toHaveLength(2);
    expect(seen[1]!.headers.get('Repeatability-Request-ID')).toBe(seen[0]!.headers.get('Repeatability-Request-ID'));
  });

  it('not retry a 409 that is not about a repeatable request', async () => {
    const { fetch, seen } = stubFetch(() => json(409, { code: 'Conflict', message: 'x' }));
    const result = await createCallAutomationClient(connectionString, { fetch, retry: fast }).hangupCall('leg-1');
    expect(result.error?.code).toBe('Conflict');
    expect(seen).toHaveLength(1);
  });

  it('retry a network error on an idempotent operation, and createCall with its repeatability id', async () => {
    const { fetch, seen } = stubFetch((_r, n) => {
      if (n === 1) throw networkError('ECONNRESET');
      return json(200, { callLegId: 'leg-2' });
    });
    const result = await createCallAutomationClient(connectionString, { fetch, retry: fast }).createCall(phoneCall);
    expect(result.data?.callLegId).toBe('leg-2');
    expect(seen).toHaveLength(2);
    expect(seen[0]!.headers.get('Repeatability-Request-ID')).toBe(seen[1]!.headers.get('Repeatability-Request-ID'));
  });

  it('do not retry createCall when its repeatability headers are removed', async () => {
    const { fetch, seen } = stubFetch(() => {
      throw networkError('ECONNRESET');
    });
    const client = createCallAutomationClient(connectionString, {
      fetch,
      retry: fast,
      middleware: [{ onRequest: ({ request }) => (request.headers.delete('Repeatability-Request-ID'), request) }],
    });
    await expect(client.createCall(phoneCall)).rejects.toThrow('createCall POST https://contoso.communication.azure.com/calls failed: ECONNRESET');
    expect(seen).toHaveLength(1);
  });

  it('retry a non-idempotent request only when the connection was never made', async () => {
    const reset = stubFetch(() => {
      throw networkError('ECONNRESET');
    });
    await expect(
      createCallAutomationClient(connectionString, { fetch: reset.fetch, retry: fast }).playAudio('leg-1', { audioFileUri: 'https://m.contoso.com/a.wav' }),
    ).rejects.toThrow('playAudio POST https://contoso.communication.azure.com/calls/leg-1/PlayAudio failed: ECONNRESET');
    expect(reset.seen).toHaveLength(1);

    const refused = stubFetch((_r, n) => {
      if (n === 1) throw networkError('ECONNREFUSED');
      return ok();
    });
    const result = await createCallAutomationClient(connectionString, { fetch: refused.fetch, retry: fast }).playAudio('leg-1', {
      audioFileUri: 'https://m.contoso.com/a.wav',
    });
    expect(result.response.status).toBe(202);
    expect(refused.seen).toHaveLength(2);
  });

  it('stop at once when the caller aborts during a backoff', async () => {
    const { fetch, seen } = stubFetch(() => json(503, { code: 'Unavailable', message: 'x' }));
    const controller = new AbortController();
    const pending = createCallAutomationClient(connectionString, { fetch, retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 } }).hangupCall('leg-1', {
      signal: controller.signal,
    });
    vi.spyOn(Math, 'random').mockReturnValue(0.99);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = performance.now();
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(performance.now() - started).toBeLessThan(100);
    expect(seen).toHaveLength(1);
  });

  it('are off with retry: false, for the client or one call', async () => {
    const { fetch, seen } = stubFetch(() => json(503, { code: 'Unavailable', message: 'x' }));
    await createCallAutomationClient(connectionString, { fetch, retry: false }).hangupCall('leg-1');
    await createCallAutomationClient(connectionString, { fetch, retry: fast }).hangupCall('leg-1', { retry: false });
    expect(seen).toHaveLength(2);
  });

  it('stop after the default count when a field is given as undefined', async () => {
    const { fetch, seen } = stubFetch(() => json(503, { code: 'Unavailable', message: 'x' }));
    await createCallAutomationClient(connectionString, { fetch, retry: { ...fast, maxRetries: undefined } }).hangupCall('leg-1');
    expect(seen).toHaveLength(1 + defaultRetry.maxRetries);
  });

  it("follow a call's own retry settings when the client's are off", async () => {
    const { fetch, seen } = stubFetch((_r, n) => (n === 1 ? json(503, { code: 'Unavailable', message: 'x' }) : new Response(null, { status: 202 })));
    const result = await createCallAutomationClient(connectionString, { fetch, retry: false }).hangupCall('leg-1', { retry: fast });
    expect(result.response.status).toBe(202);
    expect(seen).toHaveLength(2);
  });

  it('never retry what fails before sending: a credential without a token, a header fetch refuses, a bad timeout', async () => {
    const { fetch, seen } = stubFetch(() => new Response(null, { status: 202 }));
    let asked = 0;
    const tokenless = createCallAutomationClient({ endpoint: 'http://127.0.0.1:4780', credential: { getToken: async () => (asked++, '') } }, { fetch, retry: fast });
    await expect(tokenless.hangupCall('leg-1')).rejects.toThrow('The token credential gave no token');
    expect(asked).toBe(1);
    const client = createCallAutomationClient(connectionString, { fetch, retry: fast });
    await expect(client.hangupCall('leg-1', { headers: { 'x-note': 'a\nb' } })).rejects.toThrow(TypeError);
    await expect(client.hangupCall('leg-1', { timeoutMs: -5 })).rejects.toThrow(RangeError);
    expect(seen).toHaveLength(0);
  });

  it('give each attempt its own timeout, and retry one that timed out', async () => {
    const { fetch, seen } = stubFetch(
      (request, n) =>
        new Promise((resolve, reject) => {
          if (n === 2) return resolve(new Response(null, { status: 202 }));
          request.signal.addEventListener('abort', () => reject(request.signal.reason));
        }),
    );
    const result = await createCallAutomationClient(connectionString, { fetch, retry: fast, timeoutMs: 50 }).hangupCall('leg-1');
    expect(result.response.status).toBe(202);
    expect(seen).toHaveLength(2);
    expect(seen[0]!.signal.reason).toMatchObject({ name: 'TimeoutError' });
  });
});
