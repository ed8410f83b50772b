import { createHmacAuth } from '@call-automation/client/raw';
import type { Redis, RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallAutomationService, type AuthOptions } from '../src/index.ts';
import { createRedisReplayStore, type RedisReplayStoreOptions } from '../src/redis.ts';
import { serveApp, type RunningServer } from '../src/node.ts';
import { accessKey, memoryHandlers } from './fixture.ts';
import { connectRedis, ready, type RedisProcess, startRedis, stopAll } from './redis-server.ts';

// Both instances answer for one host, as they do behind a load balancer: a signature made for it
// is valid on either.
const host = 'calls.contoso.com';
const signer = createHmacAuth(accessKey);
const state = memoryHandlers();
let redis: RedisProcess;
const connections: Redis[] = [];
const servers: RunningServer[] = [];
const failures: unknown[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  try {
    await Promise.all(servers.map((server) => server.close()));
    for (const connection of connections) connection.disconnect();
  } finally {
    await stopAll();
  }
});

async function connect(port = redis.port, options?: RedisOptions): Promise<Redis> {
  const connection = await connectRedis(port, options);
  connections.push(connection);
  return connection;
}

/** An instance refusing replays through the shared store: its own connection, its own HTTP server. */
async function instance(store: RedisReplayStoreOptions = {}, auth: Partial<AuthOptions> = {}, connection?: Redis): Promise<string> {
  connection ??= await connect();
  const service = createCallAutomationService({
    handlers: state.handlers,
    auth: { accessKeys: [accessKey], host, refuseReplays: { store: createRedisReplayStore(connection, store) }, ...auth },
    onError: (error) => void failures.push(error),
  });
  const server = await serveApp(service);
  servers.push(server);
  return server.url;
}

/** A signed hangupCall for an unknown call (404 once authenticated), as its headers. */
async function signed(path = `/calls/${crypto.randomUUID()}/Hangup`): Promise<Headers> {
  return (await signer.sign(new Request(`https://${host}${path}`, { method: 'POST' }))).headers;
}

async function send(base: string, headers: Headers, path: string) {
  const response = await fetch(`${base}${path}`, { method: 'POST', headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as { code: string; message: string }) : undefined };
}

describe('two instances refusing replays through one Redis', () => {
  let a: string;
  let b: string;
  beforeAll(async () => {
    const prefix = `ca:replay:${crypto.randomUUID()}:`;
    a = await instance({ prefix });
    b = await instance({ prefix });
  });

  it('refuse on B a signature A accepted, and on A one B accepted', async () => {
    for (const [first, second] of [
      [a, b],
      [b, a],
    ] as const) {
      const path = `/calls/${crypto.randomUUID()}/Hangup`;
      const headers = await signed(path);
      expect((await send(first, headers, path)).status).toBe(404);
      const replay = await send(second, headers, path);
      expect(replay.status).toBe(401);
      expect(replay.body?.code).toBe('ReplayedRequest');
    }
  });

  it('accept one of twenty copies of a signature sent to both at once', async () => {
    const path = `/calls/${crypto.randomUUID()}/Hangup`;
    const headers = await signed(path);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => send(i % 2 ? a : b, headers, path)));
    expect(answers.filter((answer) => answer.status === 404)).toHaveLength(1);
    expect(answers.filter((answer) => answer.body?.code === 'ReplayedRequest')).toHaveLength(19);
  });
});

describe('the Redis replay store', () => {
  it('holds a signature until its x-ms-date leaves the window, in one slot', async () => {
    const prefix = `ca:replay:${crypto.randomUUID()}:`;
    const base = await instance({ prefix });
    const path = `/calls/${crypto.randomUUID()}/Hangup`;
    const headers = await signed(path);
    expect((await send(base, headers, path)).status).toBe(404);
    const inspector = await connect();
    const [key] = await inspector.keys(`{${prefix}}*=`);
    expect(key).toBe(`{${prefix}}${/Signature=(.+)$/.exec(headers.get('authorization')!)![1]}`);
    // x-ms-date has whole seconds: the key expires 15 minutes after it.
    expect(await inspector.pexpiretime(key!)).toBe(Date.parse(headers.get('x-ms-date')!) + 15 * 60_000);
  });

  it('refuses a number of shards that is not a whole number from 1 to maxEntries, naming the range', async () => {
    const connection = await connect();
    for (const shards of [0, 1.5, 11]) {
      expect(() => createRedisReplayStore(connection, { shards, maxEntries: 10 })).toThrow(`shards must be a whole number from 1 to maxEntries (10), not ${shards}.`);
    }
  });

  it('is bounded across instances: full, it answers 503 with Retry-After until the earliest signature expires, never forgetting one', async () => {
    const prefix = `ca:replay:${crypto.randomUUID()}:`;
    // A window of two seconds, so that the earliest signatures expire within the test.
    const auth = { clockSkewMs: 2_000 };
    const [a, b] = [await instance({ prefix, maxEntries: 4 }, auth), await instance({ prefix, maxEntries: 4 }, auth)];
    const accepted: Array<[Headers, string]> = [];
    const statuses: number[] = [];
    const retryAfters: number[] = [];
    for (let i = 0; i < 8; i++) {
      const path = `/calls/${crypto.randomUUID()}/Hangup`;
      const headers = await signed(path);
      const answer = await send(i % 2 ? a : b, headers, path);
      statuses.push(answer.status);
      if (answer.status === 404) accepted.push([headers, path]);
      if (answer.status === 503) retryAfters.push(Number(answer.headers.get('retry-after')));
    }
    expect(statuses).toEqual([404, 404, 404, 404, 503, 503, 503, 503]);
    for (const seconds of retryAfters) expect(seconds === 1 || seconds === 2 || seconds === 3).toBe(true);
    // Full, it still refuses what it holds as a replay, on either instance.
    for (const [i, [headers, path]] of accepted.entries()) expect((await send(i % 2 ? b : a, headers, path)).body?.code).toBe('ReplayedRequest');
    expect(failures).toEqual([]);
    // Once the window has passed for the held ones there is room again, and the count knows it.
    await new Promise((resolve) => setTimeout(resolve, Math.max(...retryAfters) * 1000 + 100));
    const path = `/calls/${crypto.randomUUID()}/Hangup`;
    expect((await send(b, await signed(path), path)).status).toBe(404);
  });

  it('answers 503 with Retry-After, promptly and never 500, while Redis is away, and accepts again once it is back', async () => {
    const own = await startRedis();
    // A fails a command at once while disconnected; B keeps ioredis's offline queue, where the store's time limit bounds the wait.
    const a = await instance({ timeoutMs: 300 }, {}, await connect(own.port));
    const b = await instance({ timeoutMs: 300 }, {}, await connect(own.port, {}));
    failures.length = 0;
    await own.kill();
    for (const base of [a, b]) {
      const path = `/calls/${crypto.randomUUID()}/Hangup`;
      const started = performance.now();
      const answer = await send(base, await signed(path), path);
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(answer.status).toBe(503);
      expect(answer.body?.code).toBe('ServiceUnavailable');
      expect(answer.headers.get('retry-after')).toBe('1');
    }
    expect(failures).toHaveLength(2);
    await own.restart();
    for (const connection of connections.slice(-2)) await ready(connection);
    for (const base of [a, b]) {
      const path = `/calls/${crypto.randomUUID()}/Hangup`;
      expect((await send(base, await signed(path), path)).status).toBe(404);
    }
  });
});
