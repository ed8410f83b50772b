import { createHmacAuth } from '@call-automation/client/raw';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiError, createMemoryIdempotencyStore, type AnswerInfo, type CallAutomationHandlers } from '../src/index.ts';
import { accessKey, memoryHandlers, phoneCall, serveMemory, type Served } from './fixture.ts';

let served: Served | undefined;
afterEach(async () => {
  await served?.server.close();
  served = undefined;
});

const signer = createHmacAuth(accessKey);

/** A createCall as the client would send it, with the repeatability headers given. */
function createCall(body: object, headers: Record<string, string>, path = '/calls') {
  return signer.sign(new Request(`${served!.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } }));
}

async function send(request: Request | Promise<Request>) {
  const response = await fetch(await request);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

const repeatHeaders = (id = crypto.randomUUID(), firstSent = new Date()) => ({ 'Repeatability-Request-ID': id, 'Repeatability-First-Sent': firstSent.toUTCString() });

describe('a repeated createCall', () => {
  it('answers the first result, whatever the case of the id, and creates one call', async () => {
    served = await serveMemory();
    const headers = repeatHeaders();
    const first = await send(createCall(phoneCall, headers));
    const upper = await send(createCall(phoneCall, { ...headers, 'Repeatability-Request-ID': headers['Repeatability-Request-ID'].toUpperCase() }));
    expect(first.status).toBe(200);
    expect(upper.status).toBe(200);
    expect(upper.body).toEqual(first.body);
    expect(upper.headers.get('repeatability-result')).toBe('accepted');
    expect(served.state.createdCount()).toBe(1);
  });

  it('with the same id and another body answers 422 and never the first result', async () => {
    served = await serveMemory();
    const headers = repeatHeaders();
    const first = await send(createCall(phoneCall, headers));
    const other = await send(createCall({ ...phoneCall, subject: 'another call' }, headers));
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ code: 'RepeatabilityMismatch', target: 'Repeatability-Request-ID' });
    expect(other.body).not.toHaveProperty('callLegId');
    expect(other.headers.get('repeatability-result')).toBe('rejected');
    expect(JSON.stringify(other.body)).not.toContain(first.body.callLegId);
    expect(served.state.createdCount()).toBe(1);
  });

  it('with the same id on another path answers 422', async () => {
    served = await serveMemory();
    const headers = repeatHeaders();
    expect((await send(createCall(phoneCall, headers))).status).toBe(200);
    const other = await send(createCall(phoneCall, headers, '/calls?tenant=2'));
    expect(other.status).toBe(422);
  });

  it('while the first is still running answers 409 with Retry-After, then the first result', async () => {
    const state = memoryHandlers();
    let finish!: () => void;
    const running = new Promise<void>((resolve) => (finish = resolve));
    const handlers: CallAutomationHandlers = {
      ...state.handlers,
      createCall: async (input, context) => {
        await running;
        return state.handlers.createCall(input, context);
      },
    };
    served = await serveMemory({ handlers });
    const headers = repeatHeaders();
    const first = send(createCall(phoneCall, headers));
    // The first request is held in its handler; the repeat meets it there.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const during = await send(createCall(phoneCall, headers));
    expect(during.status).toBe(409);
    expect(during.body.code).toBe('RequestInProgress');
    expect(during.headers.get('retry-after')).toBe('1');
    finish();
    const answered = await first;
    const after = await send(createCall(phoneCall, headers));
    expect(after.body).toEqual(answered.body);
    expect(state.createdCount()).toBe(1);
  });

  it.each([
    ['older than the lifetime', -11 * 60_000, 'past'],
    ['further in the future than the clock allows', 16 * 60_000, 'future'],
  ])('refuses a Repeatability-First-Sent %s with 412 and Repeatability-Result: rejected', async (_name, offset, word) => {
    served = await serveMemory();
    const result = await send(createCall(phoneCall, repeatHeaders(undefined, new Date(Date.now() + offset))));
    expect(result.status).toBe(412);
    expect(result.body).toMatchObject({ code: 'RepeatabilityExpired', target: 'Repeatability-First-Sent' });
    expect(result.body.message).toContain(word);
    expect(result.headers.get('repeatability-result')).toBe('rejected');
    expect(served.state.createdCount()).toBe(0);
  });

  it('keeps a stored answer for its lifetime however many creates follow, refusing new ones with 503 when full', async () => {
    served = await serveMemory({ idempotency: createMemoryIdempotencyStore({ maxEntries: 50 }) });
    const kept = repeatHeaders();
    const first = await send(createCall(phoneCall, kept));
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 100; i++) {
      const later = await send(createCall({ ...phoneCall, subject: `later ${i}` }, repeatHeaders()));
      statuses.push(later.status);
      if (later.status === 503) {
        expect(later.body.code).toBe('ServiceUnavailable');
        retryAfter = later.headers.get('retry-after');
      }
    }
    // 49 more fit beside the first; the other 51 are refused, not stored by forgetting one.
    expect(statuses.filter((s) => s === 200)).toHaveLength(49);
    expect(statuses.filter((s) => s === 503)).toHaveLength(51);
    expect(Number(retryAfter)).toBeGreaterThan(500);
    expect(Number(retryAfter)).toBeLessThanOrEqual(600);
    const again = await send(createCall(phoneCall, kept));
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    // Creates without the header are not refused: nothing of theirs is stored.
    expect((await send(createCall({ ...phoneCall, subject: 'plain' }, {}))).status).toBe(200);
  });

  it('runs the request again after a server error, which it does not keep', async () => {
    const state = memoryHandlers();
    let failures = 1;
    const handlers: CallAutomationHandlers = {
      ...state.handlers,
      createCall: (input, context) => {
        if (failures-- > 0) throw new Error('database down');
        return state.handlers.createCall(input, context);
      },
    };
    served = await serveMemory({ handlers, onError: () => {} });
    const headers = repeatHeaders();
    expect((await send(createCall(phoneCall, headers))).status).toBe(500);
    const retried = await send(createCall(phoneCall, headers));
    expect(retried.status).toBe(200);
    expect(state.createdCount()).toBe(1);
  });

  it.each([429, 409])('runs the request again after a handler answered %i (try again later), which it does not keep', async (status) => {
    const state = memoryHandlers();
    let refusals = 1;
    const handlers: CallAutomationHandlers = {
      ...state.handlers,
      createCall: (input, context) => {
        if (refusals-- > 0) throw new ApiError(status, 'TooManyRequests', 'Slow down.', { headers: { 'Retry-After': '1' } });
        return state.handlers.createCall(input, context);
      },
    };
    served = await serveMemory({ handlers });
    const headers = repeatHeaders();
    const first = await send(createCall(phoneCall, headers));
    expect(first.status).toBe(status);
    expect(first.headers.get('retry-after')).toBe('1');
    const retried = await send(createCall(phoneCall, headers));
    expect(retried.status).toBe(200);
    expect(state.createdCount()).toBe(1);
  });
});

describe('every answer', () => {
  it('is told to onAnswer: the operation, the request, the status and the time taken', async () => {
    const heard: AnswerInfo[] = [];
    served = await serveMemory({ onAnswer: (info) => void heard.push(info) });
    const created = await send(createCall(phoneCall, {}));
    const callLegId = created.body.callLegId as string;
    expect((await served.client.hangupCall(callLegId)).response.status).toBe(202);
    expect((await served.client.hangupCall(callLegId)).response.status).toBe(404);
    expect(heard.map(({ operationId, method, pathAndQuery, params, status }) => ({ operationId, method, pathAndQuery, params, status }))).toEqual([
      { operationId: 'createCall', method: 'POST', pathAndQuery: '/calls', params: {}, status: 200 },
      { operationId: 'hangupCall', method: 'POST', pathAndQuery: `/calls/${callLegId}/Hangup`, params: { callId: callLegId }, status: 202 },
      { operationId: 'hangupCall', method: 'POST', pathAndQuery: `/calls/${callLegId}/Hangup`, params: { callId: callLegId }, status: 404 },
    ]);
    expect(heard.every((info) => info.ms >= 0 && /^[0-9a-f-]{36}$/.test(info.requestId))).toBe(true);
  });
});

describe('the memory store', () => {
  it('forgets a key only when it expires', async () => {
    let now = 1_000_000;
    const store = createMemoryIdempotencyStore({ maxEntries: 2, now: () => now });
    expect(await store.claim('a', 'fa', now + 10_000)).toEqual({ state: 'claimed' });
    await store.complete('a', { status: 200, body: { callLegId: 'x' } });
    expect(await store.claim('b', 'fb', now + 20_000)).toEqual({ state: 'claimed' });
    expect(await store.claim('c', 'fc', now + 20_000)).toEqual({ state: 'full', retryAfterMs: 10_000 });
    now += 9_000;
    expect(await store.claim('a', 'fa', now + 10_000)).toEqual({ state: 'done', fingerprint: 'fa', reply: { status: 200, body: { callLegId: 'x' } } });
    expect(await store.claim('b', 'other', now)).toEqual({ state: 'pending', fingerprint: 'fb' });
    now += 1_001;
    expect(await store.claim('c', 'fc', now + 20_000)).toEqual({ state: 'claimed' });
    expect(await store.claim('a', 'fa2', now + 10_000)).toEqual({ state: 'full', retryAfterMs: 9_999 });
  });
});

describe('signatures sent again', () => {
  it('are accepted by default, as Azure SDK retries send them', async () => {
    served = await serveMemory();
    const first = await signer.sign(new Request(`${served.url}/calls/x/Hangup`, { method: 'POST' }));
    const copy = new Request(first.url, { method: 'POST', headers: first.headers });
    expect((await send(first)).status).toBe(404);
    expect((await send(copy)).status).toBe(404);
  });

  it('are refused with 401 ReplayedRequest where replays are refused', async () => {
    served = await serveMemory({ auth: { accessKeys: [accessKey], refuseReplays: true } });
    const first = await signer.sign(new Request(`${served.url}/calls/x/Hangup`, { method: 'POST' }));
    const copy = new Request(first.url, { method: 'POST', headers: first.headers });
    expect((await send(first)).status).toBe(404);
    const replay = await send(copy);
    expect(replay.status).toBe(401);
    expect(replay.body.code).toBe('ReplayedRequest');
  });

  it('are remembered for the whole window however many follow: a full cache answers 503, never forgets', async () => {
    served = await serveMemory({ auth: { accessKeys: [accessKey], refuseReplays: { maxEntries: 20 } } });
    const first = await signer.sign(new Request(`${served.url}/calls/first/Hangup`, { method: 'POST' }));
    const copy = new Request(first.url, { method: 'POST', headers: first.headers });
    expect((await send(first)).status).toBe(404);
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const later = await send(signer.sign(new Request(`${served.url}/calls/later-${i}/Hangup`, { method: 'POST' })));
      statuses.push(later.status);
      if (later.status === 503) expect(Number(later.headers.get('retry-after'))).toBeGreaterThan(800);
    }
    expect(statuses.filter((s) => s === 404)).toHaveLength(19);
    expect(statuses.filter((s) => s === 503)).toHaveLength(21);
    expect((await send(copy)).body.code).toBe('ReplayedRequest');
  });
});
