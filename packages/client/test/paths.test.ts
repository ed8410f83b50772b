/**
 * The named methods and the raw openapi-fetch client share one request path (the transport):
 * each case here runs through both and must come out the same.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import manifest from '../package.json' with { type: 'json' };
import { createCallAutomationClient, type ClientOptions, type ClientTarget } from '../src/index.ts';
import { createRawClient } from '../src/raw/index.ts';
import { connectionString, json, networkError, phoneCall, stubFetch } from './stub-fetch.ts';

/** What a call answered, whichever entry made it. */
interface Answer {
  data?: unknown;
  error?: unknown;
  response: Response;
}

interface CallInit {
  signal?: AbortSignal;
}

/** The calls the cases make, through one entry. */
interface Entry {
  createCall(init?: CallInit): Promise<Answer>;
  hangupCall(init?: CallInit): Promise<Answer>;
  playAudio(init?: CallInit): Promise<Answer>;
  removeParticipant(init?: CallInit): Promise<Answer>;
}

const play = { audioFileUri: 'https://m.contoso.com/a.wav', loop: true };
const callId = 'leg-1';
const participantId = 'p-1';

function named(target: ClientTarget, options: ClientOptions): Entry {
  const client = typeof target === 'string' ? createCallAutomationClient(target, options) : createCallAutomationClient(target, options);
  return {
    createCall: (init) => client.createCall(phoneCall, init),
    hangupCall: (init) => client.hangupCall(callId, init),
    playAudio: (init) => client.playAudio(callId, play, init),
    removeParticipant: (init) => client.removeParticipant(callId, participantId, init),
  };
}

function raw(target: ClientTarget, options: ClientOptions): Entry {
  const client = createRawClient(target, options);
  return {
    createCall: (init) => client.POST('/calls', { body: phoneCall, ...init }),
    hangupCall: (init) => client.POST('/calls/{callId}/Hangup', { params: { path: { callId } }, ...init }),
    playAudio: (init) => client.POST('/calls/{callId}/PlayAudio', { params: { path: { callId } }, body: play, ...init }),
    removeParticipant: (init) => client.DELETE('/calls/{callId}/participants/{participantId}', { params: { path: { callId, participantId } }, ...init }),
  };
}

const fast = { baseDelayMs: 1, maxDelayMs: 2 };
const outcome = ({ data, error, response }: Answer) => ({ status: response.status, data, error });

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe.each([
  ['named methods', named],
  ['raw client', raw],
])('through the %s', (_name, entry) => {
  describe('answers', () => {
    it.each([
      ['an empty 502', () => new Response(null, { status: 502, statusText: 'Bad Gateway' }), { code: 'Http502', message: 'HTTP 502 Bad Gateway without a body' }],
      ['an empty 502 with Content-Length: 0', () => new Response(null, { status: 502, statusText: 'Bad Gateway', headers: { 'content-length': '0' } }), { code: 'Http502', message: 'HTTP 502 Bad Gateway without a body' }],
      [
        "a proxy's HTML 502",
        () => new Response('<html><body>Bad gateway</body></html>\n', { status: 502, statusText: 'Bad Gateway', headers: { 'content-type': 'text/html' } }),
        { code: 'Http502', message: 'HTTP 502 Bad Gateway without an error body: <html><body>Bad gateway</body></html>' },
      ],
      ['a JSON 400 of another shape', () => json(400, { error: 'bad' }), { code: 'Http400', message: 'HTTP 400 without an error body: {"error":"bad"}' }],
    ])('%s: an error made by toCommunicationError, as JSON, with the status and headers that came', async (_case, answer, error) => {
      const { fetch } = stubFetch(() => {
        const response = answer();
        response.headers.set('x-ms-request-id', 'req-7');
        return response;
      });
      const result = await entry(connectionString, { fetch, retry: false }).hangupCall();
      expect(outcome(result)).toEqual({ status: result.response.status, data: undefined, error });
      expect(result.response.status).toBe(error.code === 'Http502' ? 502 : 400);
      expect(result.response.headers.get('x-ms-request-id')).toBe('req-7');
      expect(result.response.headers.get('content-type')).toBe('application/json');
      expect(result.response.headers.get('content-length')).toBeNull();
    });

    it("a JSON 404 with the API's error body: that body, the answer as it came", async () => {
      const body = { code: 'CallNotFound', message: 'No call with id leg-1.', target: 'callId' };
      const { fetch } = stubFetch(() => json(404, body, { 'content-length': String(JSON.stringify(body).length), 'x-ms-request-id': 'req-8' }));
      const result = await entry(connectionString, { fetch, retry: false }).hangupCall();
      expect(outcome(result)).toEqual({ status: 404, data: undefined, error: body });
      expect(result.response.headers.get('content-length')).toBe(String(JSON.stringify(body).length));
      expect(result.response.headers.get('x-ms-request-id')).toBe('req-8');
    });

    it.each([
      ['204', () => new Response(null, { status: 204 })],
      ['202 without a body', () => new Response(null, { status: 202 })],
      ['202 with Content-Length: 0', () => new Response(null, { status: 202, headers: { 'content-length': '0' } })],
    ])('%s: success without data', async (_case, answer) => {
      const { fetch } = stubFetch(answer);
      const result = await entry(connectionString, { fetch, retry: false }).removeParticipant();
      expect(outcome(result)).toEqual({ status: result.response.status, data: undefined, error: undefined });
    });

    it('200 with JSON: its data', async () => {
      const { fetch, seen } = stubFetch(() => json(200, { callLegId: 'leg-2' }));
      const result = await entry(connectionString, { fetch, retry: false }).createCall();
      expect(outcome(result)).toEqual({ status: 200, data: { callLegId: 'leg-2' }, error: undefined });
      expect(seen).toHaveLength(1);
      expect(seen[0]!.body).toBe(JSON.stringify(phoneCall));
    });
  });

  describe('retries', () => {
    it('retry 503 the same number of times, each attempt signed anew with the same body', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      // Each attempt a second after the one before: signed anew, it carries a new date.
      const { fetch, seen } = stubFetch((_r, n) => {
        vi.setSystemTime(Date.now() + 1000);
        return n < 3 ? json(503, { code: 'ServiceUnavailable', message: 'busy' }) : json(202, { id: 'op', status: 'running' });
      });
      const result = await entry(connectionString, { fetch, retry: fast, userAgent: 'reminders/2.1' }).playAudio();
      expect(outcome(result)).toEqual({ status: 202, data: { id: 'op', status: 'running' }, error: undefined });
      expect(seen).toHaveLength(3);
      expect(seen.map((s) => s.body)).toEqual(Array(3).fill(JSON.stringify(play)));
      expect(new Set(seen.map((s) => s.headers.get('x-ms-content-sha256'))).size).toBe(1);
      expect(new Set(seen.map((s) => s.headers.get('x-ms-date'))).size).toBe(3);
      expect(new Set(seen.map((s) => s.headers.get('authorization'))).size).toBe(3);
      for (const s of seen) {
        expect(s.headers.get('authorization')).toMatch(/^HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=/);
        expect(s.headers.get('user-agent')).toBe(`reminders/2.1 call-automation-client/${manifest.version}`);
        expect(s.headers.get('content-type')).toBe('application/json');
      }
    });

    it('stop after maxRetries and answer the last 503', async () => {
      const { fetch, seen } = stubFetch(() => json(503, { code: 'ServiceUnavailable', message: 'busy' }));
      const result = await entry(connectionString, { fetch, retry: { ...fast, maxRetries: 2 } }).hangupCall();
      expect(outcome(result)).toEqual({ status: 503, data: undefined, error: { code: 'ServiceUnavailable', message: 'busy' } });
      expect(seen).toHaveLength(3);
    });

    it('retry a network error on an idempotent operation', async () => {
      const { fetch, seen } = stubFetch((_r, n) => {
        if (n === 1) throw networkError('ECONNRESET');
        return new Response(null, { status: 202 });
      });
      const result = await entry(connectionString, { fetch, retry: fast }).hangupCall();
      expect(outcome(result)).toEqual({ status: 202, data: undefined, error: undefined });
      expect(seen).toHaveLength(2);
    });

    it('not repeat a non-idempotent operation after a network error that leaves open whether it acted', async () => {
      const { fetch, seen } = stubFetch(() => {
        throw networkError('ECONNRESET');
      });
      await expect(entry(connectionString, { fetch, retry: fast }).playAudio()).rejects.toThrow(/^playAudio POST https:\/\/contoso\.communication\.azure\.com\/calls\/[^/]+\/PlayAudio failed: ECONNRESET$/);
      expect(seen).toHaveLength(1);
    });

    it('repeat a non-idempotent operation when the connection was never made', async () => {
      const { fetch, seen } = stubFetch((_r, n) => {
        if (n === 1) throw networkError('ECONNREFUSED');
        return json(202, { id: 'op', status: 'running' });
      });
      const result = await entry(connectionString, { fetch, retry: fast }).playAudio();
      expect(outcome(result)).toEqual({ status: 202, data: { id: 'op', status: 'running' }, error: undefined });
      expect(seen).toHaveLength(2);
    });

    it('never repeat a non-idempotent operation after a 500', async () => {
      const { fetch, seen } = stubFetch(() => json(500, { code: 'InternalServerError', message: 'x' }));
      const result = await entry(connectionString, { fetch, retry: fast }).playAudio();
      expect(outcome(result)).toEqual({ status: 500, data: undefined, error: { code: 'InternalServerError', message: 'x' } });
      expect(seen).toHaveLength(1);
    });

    it('wait out a 409 with Repeatability-Result to a repeatable createCall, the same id and date on each attempt', async () => {
      const inProgress = () => json(409, { code: 'RequestInProgress', message: 'x' }, { 'Retry-After': '0', 'Repeatability-Result': 'accepted' });
      const { fetch, seen } = stubFetch((_r, n) => (n === 1 ? inProgress() : json(200, { callLegId: 'leg-1' })));
      const result = await entry(connectionString, { fetch, retry: fast }).createCall();
      expect(outcome(result)).toEqual({ status: 200, data: { callLegId: 'leg-1' }, error: undefined });
      expect(seen).toHaveLength(2);
      const [first, second] = seen;
      expect(first!.headers.get('repeatability-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(Date.parse(first!.headers.get('repeatability-first-sent')!)).not.toBeNaN();
      expect(second!.headers.get('repeatability-request-id')).toBe(first!.headers.get('repeatability-request-id'));
      expect(second!.headers.get('repeatability-first-sent')).toBe(first!.headers.get('repeatability-first-sent'));
    });

    it('retry a network error on createCall, which carries its repeatability id', async () => {
      const { fetch, seen } = stubFetch((_r, n) => {
        if (n === 1) throw networkError('ECONNRESET');
        return json(200, { callLegId: 'leg-2' });
      });
      const result = await entry(connectionString, { fetch, retry: fast }).createCall();
      expect(outcome(result)).toEqual({ status: 200, data: { callLegId: 'leg-2' }, error: undefined });
      expect(seen).toHaveLength(2);
    });

    it('not retry a 409 without Repeatability-Result', async () => {
      const { fetch, seen } = stubFetch(() => json(409, { code: 'Conflict', message: 'x' }));
      const result = await entry(connectionString, { fetch, retry: fast }).createCall();
      expect(outcome(result)).toEqual({ status: 409, data: undefined, error: { code: 'Conflict', message: 'x' } });
      expect(seen).toHaveLength(1);
    });

    it("give each attempt its own timeout (the client's timeoutMs), and retry one that timed out", async () => {
      const { fetch, seen } = stubFetch(
        (request, n) =>
          new Promise((resolve, reject) => {
            if (n === 2) return resolve(new Response(null, { status: 202 }));
            request.signal.addEventListener('abort', () => reject(request.signal.reason));
          }),
      );
      const result = await entry(connectionString, { fetch, retry: fast, timeoutMs: 50 }).hangupCall();
      expect(outcome(result)).toEqual({ status: 202, data: undefined, error: undefined });
      expect(seen).toHaveLength(2);
      expect(seen[0]!.signal.reason).toMatchObject({ name: 'TimeoutError' });
    });

    it('stop at once when the caller aborts during a backoff', async () => {
      const { fetch, seen } = stubFetch(() => json(503, { code: 'ServiceUnavailable', message: 'x' }));
      vi.spyOn(Math, 'random').mockReturnValue(0.99);
      const controller = new AbortController();
      const pending = entry(connectionString, { fetch, retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 } }).hangupCall({ signal: controller.signal });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const started = performance.now();
      controller.abort();
      await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
      expect(performance.now() - started).toBeLessThan(100);
      expect(seen).toHaveLength(1);
    });
  });

  describe("the user's middleware", () => {
    it('changes the request before it is signed, on every attempt, and sees the final answer after retries', async () => {
      const { fetch, seen } = stubFetch((_r, n) => (n < 3 ? json(503, { code: 'ServiceUnavailable', message: 'x' }) : new Response(null, { status: 202 })));
      const seenByMiddleware: Array<[string, number]> = [];
      const result = await entry(connectionString, {
        fetch,
        retry: fast,
        middleware: [
          {
            onRequest: ({ request }) => {
              request.headers.set('x-trace-id', 't-1');
              return request;
            },
            onResponse: ({ request, response }) => void seenByMiddleware.push([request.headers.get('x-trace-id')!, response.status]),
          },
        ],
      }).hangupCall();
      expect(outcome(result)).toEqual({ status: 202, data: undefined, error: undefined });
      expect(seen.map((s) => s.headers.get('x-trace-id'))).toEqual(['t-1', 't-1', 't-1']);
      expect(seenByMiddleware).toEqual([['t-1', 202]]);
    });

    it('sees the error body made for an empty 502, after the retries', async () => {
      const { fetch, seen } = stubFetch(() => new Response(null, { status: 502, statusText: 'Bad Gateway' }));
      const bodies: unknown[] = [];
      await entry(connectionString, {
        fetch,
        retry: { ...fast, maxRetries: 1 },
        middleware: [{ onResponse: async ({ response }) => void bodies.push(await response.clone().json()) }],
      }).hangupCall();
      expect(seen).toHaveLength(2);
      expect(bodies).toEqual([{ code: 'Http502', message: 'HTTP 502 Bad Gateway without a body' }]);
    });

    it('sees a network error once, after the retries, and may answer for it', async () => {
      const { fetch, seen } = stubFetch(() => {
        throw networkError('ECONNRESET');
      });
      const errors: unknown[] = [];
      const result = await entry(connectionString, {
        fetch,
        retry: { ...fast, maxRetries: 2 },
        middleware: [{ onError: ({ error }) => (errors.push(error), new Response(null, { status: 202 })) }],
      }).hangupCall();
      expect(outcome(result)).toEqual({ status: 202, data: undefined, error: undefined });
      expect(seen).toHaveLength(3);
      // What fetch threw, named with the request, and fetch's error under it.
      expect(errors).toMatchObject([{ message: expect.stringMatching(/^hangupCall POST https:\/\/\S+\/Hangup failed: ECONNRESET$/), cause: { message: 'fetch failed', cause: { code: 'ECONNRESET' } } }]);
    });

    it('sees what signing threw (a credential without a token), which is not retried', async () => {
      const { fetch, seen } = stubFetch(() => new Response(null, { status: 202 }));
      let asked = 0;
      const errors: unknown[] = [];
      const client = entry(
        { endpoint: 'http://127.0.0.1:4780', credential: { getToken: async () => (asked++, '') } },
        { fetch, retry: fast, middleware: [{ onError: ({ error }) => void errors.push(error) }] },
      );
      await expect(client.hangupCall()).rejects.toThrow('The token credential gave no token');
      expect(asked).toBe(1);
      expect(errors).toMatchObject([{ message: 'The token credential gave no token' }]);
      expect(seen).toHaveLength(0);
    });

    it("signs and replays the body of a Request it replaced, read once", async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const { fetch, seen } = stubFetch((_r, n) => {
        vi.setSystemTime(Date.now() + 1000);
        return n === 1 ? json(503, { code: 'ServiceUnavailable', message: 'x' }) : json(202, { id: 'op', status: 'running' });
      });
      const result = await entry(connectionString, {
        fetch,
        retry: fast,
        middleware: [
          {
            onRequest: async ({ request }) => {
              const body = { ...(await request.json()), operationContext: 'ünïcødé' };
              return new Request(request, { body: JSON.stringify(body) });
            },
          },
        ],
      }).playAudio();
      expect(outcome(result)).toEqual({ status: 202, data: { id: 'op', status: 'running' }, error: undefined });
      expect(seen).toHaveLength(2);
      const sent = JSON.stringify({ ...play, operationContext: 'ünïcødé' });
      const hash = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(sent))).toString('base64');
      for (const s of seen) {
        expect(s.body).toBe(sent);
        expect(s.headers.get('x-ms-content-sha256')).toBe(hash);
      }
      expect(seen[0]!.headers.get('authorization')).not.toBe(seen[1]!.headers.get('authorization'));
    });
  });
});

describe('the two entries', () => {
  it('answer the same to the same sequence of answers', async () => {
    const answers = [
      () => new Response(null, { status: 502, statusText: 'Bad Gateway' }),
      () => new Response('<h1>503 Service Temporarily Unavailable</h1>', { status: 503, headers: { 'content-type': 'text/html', 'retry-after': '0' } }),
      () => json(404, { code: 'CallNotFound', message: 'x' }),
      () => new Response(null, { status: 204 }),
    ];
    const run = async (make: typeof named) => {
      const { fetch, seen } = stubFetch((_r, n) => answers[(n - 1) % answers.length]!());
      const client = make(connectionString, { fetch, retry: { ...fast, maxRetries: 1 } });
      const results = [];
      for (let i = 0; i < 4; i++) results.push(outcome(await client.hangupCall()));
      return { results, attempts: seen.map((s) => `${s.method} ${s.url} ${s.body}`) };
    };
    const fromNamed = await run(named);
    expect(await run(raw)).toEqual(fromNamed);
    // 502 then 503 (one retry), 404, 204, then 502 and 503 again.
    expect(fromNamed.results.map((r) => r.status)).toEqual([503, 404, 204, 503]);
    expect(fromNamed.results[0]!.error).toEqual({ code: 'Http503', message: 'HTTP 503 without an error body: <h1>503 Service Temporarily Unavailable</h1>' });
  });
});
