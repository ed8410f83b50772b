/**
 * Redis killed and restarted under load: two instances of the service share one Redis for every
 * store (replay cache, repeatable creates, calls' callbackUris, the callback queue, dead letters,
 * gone URIs) while callers create calls and play audio on both, each play emitting an event.
 */
import { parseCallbackEvent } from '@call-automation/client/events';
import { createHmacAuth } from '@call-automation/client/raw';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, createCallAutomationService, createCallbackDelivery, createUriGuard, type CallAutomationHandlers, type CallbackDelivery } from '../src/index.ts';
import {
  createRedisCallbackQueue,
  createRedisCallbackRegistry,
  createRedisDeadLetterStore,
  createRedisGoneUriStore,
  createRedisIdempotencyStore,
  createRedisReplayStore,
} from '../src/redis.ts';
import { serveApp, type RunningServer } from '../src/node.ts';
// The conformance suite's receiver (that package depends on this one, so it is imported by path).
import { startCallbackReceiver, type CallbackReceiver } from '../../../conformance/src/harness/receiver.ts';
import { accessKey, memoryHandlers, phoneCall } from './fixture.ts';
import { startRedis, stopAll, type RedisProcess } from './redis-server.ts';

const secret = `whsec_${Buffer.from('server-test-callback-secret-0001').toString('base64')}`;
const host = 'calls.contoso.com';
const signer = createHmacAuth(accessKey);
let redis: RedisProcess;
let receiver: CallbackReceiver;
const connections: Redis[] = [];
const servers: RunningServer[] = [];
const deliveries: CallbackDelivery[] = [];
/** What the deliveries logged. */
const logged: string[] = [];
/** The calls, as a database shared by the instances would hold them. */
const calls = new Set<string>();

beforeAll(async () => {
  redis = await startRedis();
  // A receiver that takes a little time, so that deliveries are under way when Redis dies.
  receiver = await startCallbackReceiver({ answer: (_d, _n, res) => void setTimeout(() => res.writeHead(204).end(), 5) });
});

afterAll(async () => {
  try {
    await Promise.all(servers.map((server) => server.close()));
    for (const delivery of deliveries) await delivery.close(200).catch(() => {});
    for (const connection of connections) connection.disconnect();
    await receiver?.close();
  } finally {
    await stopAll();
  }
});

const handlers: CallAutomationHandlers = {
  ...memoryHandlers().handlers,
  createCall: () => {
    const callLegId = crypto.randomUUID();
    calls.add(callLegId);
    return { status: 200, body: { callLegId } };
  },
  playAudio: ({ params, body }, { events }) => {
    if (!calls.has(params.callId)) throw new ApiError(404, 'CallNotFound', `No call with id ${params.callId}.`, { target: 'callId' });
    events.emit(params.callId, 'DtmfReceived', { callLegId: params.callId, toneInfo: { sequenceId: Number(body.operationContext), tone: 'tone1' } });
    return { status: 202, body: { id: crypto.randomUUID(), status: 'running', operationContext: body.operationContext } };
  },
};

/** An instance: its own connection to the shared Redis, every store on it, its own HTTP server. */
async function instance(): Promise<string> {
  const connection = new Redis({ host: '127.0.0.1', port: redis.port, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  connection.on('error', () => {});
  connections.push(connection);
  await new Promise((resolve) => connection.once('ready', resolve));
  const callbacks = createCallbackDelivery({
    secret,
    retryDelaysMs: [50, 100],
    jitter: 0,
    attemptTimeoutMs: 1_000,
    guard: createUriGuard({ allowLoopback: true }),
    queue: createRedisCallbackQueue(connection),
    registry: createRedisCallbackRegistry(connection),
    deadLetters: createRedisDeadLetterStore(connection),
    gone: createRedisGoneUriStore(connection),
    pollIntervalMs: 100,
    leaseMs: 2_000,
    log: (line) => void logged.push(line),
  });
  deliveries.push(callbacks);
  const service = createCallAutomationService({
    handlers,
    auth: { accessKeys: [accessKey], host, refuseReplays: { store: createRedisReplayStore(connection) } },
    idempotency: createRedisIdempotencyStore(connection),
    callbacks,
    // An answer waits for its event to be in Redis, so that a caller's next request, on the other
    // instance, queues its event behind: the call's order holds across the outage.
    settleTimeoutMs: 10_000,
  });
  const server = await serveApp(service);
  servers.push(server);
  return server.url;
}

interface Answered {
  status: number;
  retryAfter: string | null;
  ms: number;
  body: { callLegId?: string; code?: string } | undefined;
}

/** A request signed anew (refuseReplays is on), sent to `base`. */
async function send(base: string, path: string, body: object, headers: Record<string, string> = {}): Promise<Answered> {
  const signed = await signer.sign(new Request(`https://${host}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } }));
  const started = performance.now();
  const response = await fetch(`${base}${path}`, { method: 'POST', headers: signed.headers, body: JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, retryAfter: response.headers.get('retry-after'), ms: performance.now() - started, body: text ? JSON.parse(text) : undefined };
}

describe('Redis killed and restarted under load', () => {
  it('answers 503 with Retry-After while it is away, never 500, and every accepted request\'s event arrives, in order per call', async () => {
    const bases = [await instance(), await instance()];
    const answers: Answered[] = [];
    /** Per call, the sequence ids of the plays answered 202. */
    const accepted = new Map<string, number[]>();
    let turn = 0;
    let loading = true;
    /** Sends a request to the instances in turn (a load balancer) until it is answered other than 503. */
    const until = async (path: string, body: object, headers?: Record<string, string>) => {
      for (;;) {
        const answer = await send(bases[turn++ % 2]!, path, body, headers);
        answers.push(answer);
        if (answer.status !== 503) return answer;
        // As a client should: its retry, signed a second later, is a new signature.
        await new Promise((resolve) => setTimeout(resolve, Number(answer.retryAfter) * 1000));
      }
    };
    const caller = async (_: unknown, i: number) => {
      // Callers' requests differ, or two in one second would sign alike, and be refused as replays.
      const created = await until('/calls', { ...phoneCall, callbackUri: `${receiver.url}/outage`, subject: `caller ${i}` }, { 'Repeatability-Request-ID': crypto.randomUUID(), 'Repeatability-First-Sent': new Date().toUTCString() });
      expect(created.status).toBe(200);
      const callLegId = created.body!.callLegId!;
      accepted.set(callLegId, []);
      for (let n = 0; loading; n++) {
        const played = await until(`/calls/${callLegId}/PlayAudio`, { audioFileUri: 'https://media.contoso.com/hello.wav', operationContext: String(n) });
        expect(played.status).toBe(202);
        accepted.get(callLegId)!.push(n);
      }
    };
    const started = performance.now();
    const load = Promise.all(Array.from({ length: 6 }, caller));
    load.catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const before = answers.length;
    await redis.kill();
    const killedAt = answers.length;
    // Requests that arrive now, on either instance, are answered 503 at once; the callers' own
    // may be waiting for their events to be recorded.
    const outage = performance.now();
    for (const base of bases) {
      const [callLegId] = accepted.keys();
      for (const [path, body] of [
        ['/calls', { ...phoneCall, callbackUri: `${receiver.url}/outage`, subject: 'during the outage' }],
        [`/calls/${callLegId}/PlayAudio`, { audioFileUri: 'https://media.contoso.com/hello.wav', operationContext: 'during the outage' }],
      ] as const) {
        const answer = await send(base, path, body);
        answers.push(answer);
        expect(answer.status).toBe(503);
        expect(answer.ms).toBeLessThan(1_000);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 700 - (performance.now() - outage)));
    await redis.restart();
    // The load goes on until a dozen answers in a row are not 503: everything resumes.
    const resumed = Date.now() + 10_000;
    while (!(answers.length >= 12 && answers.slice(-12).every((answer) => answer.status !== 503)) && Date.now() < resumed) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const resumedAfter = Date.now() - (resumed - 10_000);
    loading = false;
    await load;

    const during = answers.slice(killedAt);
    const unavailable = answers.filter((answer) => answer.status === 503);
    const expected = [...accepted.values()].reduce((sum, ids) => sum + ids.length, 0);
    const ms = answers.slice(0, before).map((answer) => answer.ms).sort((x, y) => x - y);
    console.info(`${answers.length} answers (${before} before the kill, median ${Math.round(ms[ms.length >> 1]!)} ms), ${unavailable.length} of them 503; ${expected} plays accepted; slowest ${Math.round(Math.max(...answers.map((answer) => answer.ms)))} ms`);
    expect(answers.every((answer) => [200, 202, 503].includes(answer.status))).toBe(true);
    expect(during.filter((answer) => answer.status === 503).length).toBeGreaterThanOrEqual(4);
    for (const answer of unavailable) {
      expect(answer.body?.code).toBe('ServiceUnavailable');
      expect(answer.retryAfter).toMatch(/^[1-9]\d*$/);
    }
    // Requests were answered and accepted again after the restart.
    console.info(`A dozen answers in a row accepted ${resumedAfter} ms after Redis was restarted`);
    expect(resumedAfter).toBeLessThan(10_000);

    /** Per call, the sequence ids received, each event once (by webhook-id), in the order first received. */
    const received = () => {
      const seen = new Set<string>();
      const byCall = new Map<string, number[]>();
      for (const delivery of receiver.received) {
        const id = delivery.headers['webhook-id'] as string;
        if (seen.has(id)) continue;
        seen.add(id);
        const { callLegId, toneInfo } = parseCallbackEvent(delivery.body).data as { callLegId: string; toneInfo: { sequenceId: number } };
        byCall.set(callLegId, [...(byCall.get(callLegId) ?? []), toneInfo.sequenceId]);
      }
      return byCall;
    };
    const deadline = Date.now() + 10_000;
    while ([...accepted].some(([callLegId, ids]) => (received().get(callLegId)?.length ?? 0) < ids.length) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    console.info(`Every accepted event delivered ${Math.round(performance.now() - started)} ms after the load began; ${receiver.received.length - expected} sent twice`);
    const got = received();
    for (const [callLegId, ids] of accepted) expect(got.get(callLegId), callLegId).toEqual(ids);
    expect(await deliveries[0]!.deadLetters()).toEqual([]);
    // What the deliveries said of the outage: in their own words, not ioredis's, and that it ended.
    const failedPolls = logged.filter((line) => line.startsWith('Callback queue cannot be polled: '));
    expect(failedPolls.length).toBeGreaterThanOrEqual(1);
    expect(logged.filter((line) => line === 'Callback queue can be polled again.')).toHaveLength(failedPolls.length);
    expect(logged.filter((line) => /Stream isn't writeable|Connection is closed/.test(line))).toEqual([]);
  }, 30_000);
});
