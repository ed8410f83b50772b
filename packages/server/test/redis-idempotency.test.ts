import { createHmacAuth } from '@call-automation/client/raw';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallAutomationService, type CallAutomationHandlers } from '../src/index.ts';
import { createRedisIdempotencyStore } from '../src/redis.ts';
import { serveApp, type RunningServer } from '../src/node.ts';
import { accessKey, memoryHandlers, phoneCall } from './fixture.ts';
import { connectRedis, ready, type RedisProcess, startRedis, stopAll } from './redis-server.ts';

const signer = createHmacAuth(accessKey);
const state = memoryHandlers();
/** Holds createCall in its handler while set, as a slow handler would be. */
let gate: Promise<void> | undefined;
const handlers: CallAutomationHandlers = {
  ...state.handlers,
  createCall: async (input, context) => {
    await gate;
    return state.handlers.createCall(input, context);
  },
};

let redis: RedisProcess;
const connections: Redis[] = [];
const servers: RunningServer[] = [];
const failures: unknown[] = [];
let a: string;
let b: string;

async function connect(options: RedisOptions): Promise<Redis> {
  const connection = await connectRedis(redis.port, options);
  connections.push(connection);
  return connection;
}

/** An instance of the service: its own connection to the shared Redis, its own HTTP server. */
async function instance(options: RedisOptions): Promise<string> {
  const connection = await connect(options);
  const service = createCallAutomationService({
    handlers,
    auth: { accessKeys: [accessKey] },
    idempotency: createRedisIdempotencyStore(connection),
    onError: (error) => void failures.push(error),
  });
  const server = await serveApp(service);
  servers.push(server);
  return server.url;
}

beforeAll(async () => {
  redis = await startRedis();
  // A keeps ioredis's defaults (commands wait in its offline queue while Redis is away): the
  // store's own time limit bounds the wait. B fails a command at once when not connected.
  a = await instance({});
  b = await instance({ enableOfflineQueue: false, maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  try {
    await Promise.all(servers.map((server) => server.close()));
    for (const connection of connections) connection.disconnect();
  } finally {
    await stopAll();
  }
});

async function createCall(base: string, body: object, headers: Record<string, string>) {
  const request = await signer.sign(new Request(`${base}/calls`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } }));
  const response = await fetch(request);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

const repeatHeaders = (id = crypto.randomUUID(), firstSent = new Date()) => ({ 'Repeatability-Request-ID': id, 'Repeatability-First-Sent': firstSent.toUTCString() });
const keyOf = (headers: { 'Repeatability-Request-ID': string }) => `ca:idem:hmac:${headers['Repeatability-Request-ID'].toLowerCase()}`;
const inspector = () => connections[0]!;

describe('two instances sharing the Redis idempotency store', () => {
  const kept = repeatHeaders();
  let firstCallLegId: string;

  it('answers a createCall repeated on B with the callLegId A created, the handler having run once', async () => {
    const before = state.createdCount();
    const first = await createCall(a, phoneCall, kept);
    const repeat = await createCall(b, phoneCall, { ...kept, 'Repeatability-Request-ID': kept['Repeatability-Request-ID'].toUpperCase() });
    expect(first.status).toBe(200);
    expect(repeat.status).toBe(200);
    expect(repeat.body).toEqual(first.body);
    expect(repeat.headers.get('repeatability-result')).toBe('accepted');
    expect(state.createdCount() - before).toBe(1);
    firstCallLegId = first.body.callLegId;
  });

  it('answers 422 on B for another body under an id A used', async () => {
    const other = await createCall(b, { ...phoneCall, subject: 'another call' }, kept);
    expect(other.status).toBe(422);
    expect(other.body.code).toBe('RepeatabilityMismatch');
    expect(other.headers.get('repeatability-result')).toBe('rejected');
    expect(JSON.stringify(other.body)).not.toContain(firstCallLegId);
  });

  it('answers 409 on B while the handler still runs on A, then A\'s answer', async () => {
    let finish!: () => void;
    gate = new Promise((resolve) => (finish = resolve));
    try {
      const headers = repeatHeaders();
      const before = state.createdCount();
      const first = createCall(a, phoneCall, headers);
      await waitFor(async () => (await inspector().exists(keyOf(headers))) === 1);
      const during = await createCall(b, phoneCall, headers);
      expect(during.status).toBe(409);
      expect(during.body.code).toBe('RequestInProgress');
      expect(during.headers.get('retry-after')).toBe('1');
      finish();
      const answered = await first;
      const after = await createCall(b, phoneCall, headers);
      expect(after.body).toEqual(answered.body);
      expect(state.createdCount() - before).toBe(1);
    } finally {
      finish();
      gate = undefined;
    }
  });

  it('runs the handler once for twenty simultaneous requests with one id spread over both', async () => {
    const headers = repeatHeaders();
    const before = state.createdCount();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => createCall(i % 2 ? a : b, phoneCall, headers)));
    expect(state.createdCount() - before).toBe(1);
    const created = answers.filter((answer) => answer.status === 200).map((answer) => answer.body.callLegId);
    expect(new Set(created).size).toBe(1);
    expect(answers.every((answer) => answer.status === 200 || answer.status === 409)).toBe(true);
  });

  it('keeps an answer until its Repeatability-First-Sent plus the lifetime, after it is stored too', async () => {
    const headers = repeatHeaders(undefined, new Date(Date.now() - 4 * 60_000));
    expect((await createCall(a, phoneCall, headers)).status).toBe(200);
    const expiresAt = await inspector().pexpiretime(keyOf(headers));
    // The HTTP date has whole seconds: the expiry is First-Sent (to the second) plus 10 minutes.
    expect(expiresAt).toBe(Math.floor(Date.parse(headers['Repeatability-First-Sent']) / 1000) * 1000 + 10 * 60_000);
    expect(await inspector().hget(keyOf(headers), 'reply')).toContain('callLegId');
  });

  it('answers 503 with Retry-After within a bounded time while Redis is down, and keeps stored answers across its restart', async () => {
    await redis.kill();
    const lost = repeatHeaders();
    const timings: Record<string, number> = {};
    for (const [name, base] of [['A', a], ['B', b]] as const) {
      const started = performance.now();
      const answer = await createCall(base, phoneCall, lost);
      timings[name] = Math.round(performance.now() - started);
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('ServiceUnavailable');
      expect(answer.headers.get('retry-after')).toBe('1');
    }
    console.info(`503 with Redis down: A (offline queue) in ${timings.A} ms, B (no offline queue) in ${timings.B} ms`);
    // A's store gives up after its 1-second limit; B's connection refuses at once.
    expect(timings.A).toBeLessThan(2_000);
    expect(timings.B).toBeLessThan(500);
    expect(failures.length).toBeGreaterThanOrEqual(2);

    await redis.restart();
    for (const connection of connections) await ready(connection);
    // A's claim waited in its offline queue and reached Redis now, after its deadline: Redis refused it.
    await inspector().ping();
    expect(await inspector().exists(keyOf(lost))).toBe(0);

    const repeat = await createCall(b, phoneCall, kept);
    expect(repeat.status).toBe(200);
    expect(repeat.body.callLegId).toBe(firstCallLegId);
    // The request answered 503 left no claim behind: its retry runs now.
    const retried = await createCall(a, phoneCall, lost);
    expect(retried.status).toBe(200);
    expect(retried.body.callLegId).not.toBe(firstCallLegId);
  });
});

async function waitFor(check: () => Promise<boolean>, ms = 5_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('The condition did not hold in time.');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('a Redis that is full, with maxmemory-policy noeviction', () => {
  it('answers a new repeatable request 503 with Retry-After, and still answers the ones it holds', async () => {
    const full = await startRedis({ args: ['--maxmemory', '64mb', '--maxmemory-policy', 'noeviction'] });
    const connection = new Redis({ host: '127.0.0.1', port: full.port, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    connection.on('error', () => {});
    connections.push(connection);
    await ready(connection);
    const service = createCallAutomationService({ handlers, auth: { accessKeys: [accessKey] }, idempotency: createRedisIdempotencyStore(connection) });
    const server = await serveApp(service);
    servers.push(server);
    const held = repeatHeaders();
    const first = await createCall(server.url, phoneCall, held);
    expect(first.status).toBe(200);
    // Redis past its limit, as a full one is: with noeviction it refuses writes rather than evict a key.
    const used = Number(/used_memory:(\d+)/.exec(await connection.info('memory'))![1]);
    await connection.config('SET', 'maxmemory', String(Math.floor(used / 2)));
    await expect(connection.set('another', 'key')).rejects.toThrow(/OOM/);
    const refused = await createCall(server.url, phoneCall, repeatHeaders());
    expect(refused.status).toBe(503);
    expect(refused.body.code).toBe('ServiceUnavailable');
    expect(refused.headers.get('retry-after')).toBe('1');
    const repeat = await createCall(server.url, phoneCall, held);
    expect(repeat.status).toBe(200);
    expect(repeat.body.callLegId).toBe(first.body.callLegId);
  });
});
