import { spawn, type ChildProcess } from 'node:child_process';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseCallbackEvent } from '@call-automation/client/events';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallbackDelivery, createUriGuard, type CallbackDelivery, type CallbackDeliveryOptions } from '../src/index.ts';
import { createRedisCallbackQueue, createRedisCallbackRegistry, createRedisDeadLetterStore } from '../src/redis.ts';
// The conformance suite's receiver (that package depends on this one, so it is imported by path).
import { startCallbackReceiver, type CallbackReceiver, type ReceivedCallback } from '../../../conformance/src/harness/receiver.ts';
import { startRedis, stopAll, type RedisProcess } from './redis-server.ts';

const secret = `whsec_${Buffer.from('server-test-callback-secret-0001').toString('base64')}`;
let redis: RedisProcess;
let receiver: CallbackReceiver;
/** Per path, how the receiver answers; 204 by default. */
const answers = new Map<string, (delivery: ReceivedCallback, res: ServerResponse) => void>();
const connections: Redis[] = [];
const closers: Array<() => Promise<unknown>> = [];
const children = new Set<ChildProcess>();

beforeAll(async () => {
  redis = await startRedis();
  receiver = await startCallbackReceiver({ answer: (delivery, _count, res) => (answers.get(delivery.path) ?? ((_d, r) => void r.writeHead(204).end()))(delivery, res) });
});

afterAll(async () => {
  try {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    for (const close of closers.reverse()) await close().catch(() => {});
    for (const connection of connections) connection.disconnect();
    await receiver?.close();
  } finally {
    await stopAll();
  }
});

async function connect(): Promise<Redis> {
  const connection = new Redis({ host: '127.0.0.1', port: redis.port, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  connection.on('error', () => {});
  connections.push(connection);
  await new Promise((resolve) => connection.once('ready', resolve));
  return connection;
}

/** An instance's delivery: its own connection, the shared queue, registry and dead letters. */
async function instance(prefix: string, options: Partial<CallbackDeliveryOptions> = {}): Promise<CallbackDelivery> {
  const connection = await connect();
  const delivery = createCallbackDelivery({
    secret,
    retryDelaysMs: [20, 40],
    jitter: 0,
    attemptTimeoutMs: 1_000,
    guard: createUriGuard({ allowLoopback: true }),
    queue: createRedisCallbackQueue(connection, { prefix: `${prefix}q:` }),
    registry: createRedisCallbackRegistry(connection, { prefix: `${prefix}call:` }),
    deadLetters: createRedisDeadLetterStore(connection, { prefix: `${prefix}dl:` }),
    pollIntervalMs: 50,
    leaseMs: 2_000,
    log: () => {},
    ...options,
  });
  closers.push(() => delivery.close(500));
  return delivery;
}

/** The DTMF sequence numbers a path received, each event once (by webhook-id), in the order first received. */
function sequence(path: string): { sequenceIds: number[]; duplicates: number } {
  const seen = new Set<string>();
  const sequenceIds: number[] = [];
  let duplicates = 0;
  for (const delivery of receiver.received.filter((d) => d.path === path)) {
    const id = delivery.headers['webhook-id'] as string;
    if (seen.has(id)) {
      duplicates++;
      continue;
    }
    seen.add(id);
    sequenceIds.push((parseCallbackEvent(delivery.body).data as { toneInfo: { sequenceId: number } }).toneInfo.sequenceId);
  }
  return { sequenceIds, duplicates };
}

const dtmf = (callLegId: string, sequenceId: number) => ({ callLegId, toneInfo: { sequenceId, tone: 'tone1' as const } });

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms.`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('two deliveries sharing the Redis callback queue', () => {
  it('deliver every event once, in order per call, each call by whichever instance leases it', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const delivered = { a: 0, b: 0 };
    const a = await instance(prefix, { onAttempt: (_d, outcome) => void (outcome.next === 'done' && delivered.a++) });
    const b = await instance(prefix, { onAttempt: (_d, outcome) => void (outcome.next === 'done' && delivered.b++) });
    const calls = Array.from({ length: 12 }, (_, i) => `leg-${i}-${crypto.randomUUID()}`);
    // A slow receiver for some calls keeps their instance busy, so that the other takes up calls too.
    for (const [i, callLegId] of calls.entries()) {
      if (i % 3 === 0) answers.set(`/many/${callLegId}`, (_d, res) => void setTimeout(() => res.writeHead(204).end(), 30));
    }
    for (const [i, callLegId] of calls.entries()) {
      // Half the calls are created on A, half on B; each call's events are emitted on the other.
      (i % 2 ? a : b).register(callLegId, `${receiver.url}/many/${callLegId}`);
    }
    await Promise.all([a.drain(), b.drain()]);
    for (let n = 0; n < 8; n++) for (const [i, callLegId] of calls.entries()) (i % 2 ? b : a).emit(callLegId, 'DtmfReceived', dtmf(callLegId, n));
    await until(() => calls.every((callLegId) => sequence(`/many/${callLegId}`).sequenceIds.length === 8), 20_000, 'Every event delivered');
    await Promise.all([a.drain(), b.drain()]);
    for (const callLegId of calls) {
      const got = sequence(`/many/${callLegId}`);
      expect(got.duplicates, callLegId).toBe(0);
      expect(got.sequenceIds, callLegId).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    }
    expect(delivered.a + delivered.b).toBe(96);
    expect(delivered.a).toBeGreaterThan(0);
    expect(delivered.b).toBeGreaterThan(0);
    expect(await a.deadLetters()).toEqual([]);
  });

  it('leaves events queued in Redis when an instance shuts down, for another to deliver', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const callLegId = `leg-${crypto.randomUUID()}`;
    const path = `/handover/${callLegId}`;
    let open = false;
    answers.set(path, (_d, res) => void res.writeHead(open ? 204 : 503).end());
    // A's retry is due after it has shut down: B makes it, at the time A set.
    const a = await instance(prefix, { retryDelaysMs: [500] });
    a.register(callLegId, `${receiver.url}${path}`);
    for (let n = 0; n < 3; n++) a.emit(callLegId, 'DtmfReceived', dtmf(callLegId, n));
    await until(() => receiver.received.some((d) => d.path === path), 5_000, 'A first attempt');
    const report = await a.close(100);
    expect(report).toMatchObject({ stillQueued: 3, deadLettered: 0 });
    open = true;
    const b = await instance(prefix);
    await until(() => sequence(path).sequenceIds.length === 3, 5_000, 'B delivering what A left');
    expect(sequence(path).sequenceIds).toEqual([0, 1, 2]);
    await b.drain();
  });

  it('reports at shutdown the events of the calls this instance had in hand, apart from what waits in the shared queue for every instance', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const [x, y] = [`leg-x-${crypto.randomUUID()}`, `leg-y-${crypto.randomUUID()}`];
    // Both receivers hold their first attempt unanswered: each instance is in the middle of its call.
    const held: ServerResponse[] = [];
    for (const callLegId of [x, y]) answers.set(`/held/${callLegId}`, (_d, res) => void held.push(res));
    try {
      const logged: string[] = [];
      const a = await instance(prefix, { attemptTimeoutMs: 10_000, log: (message) => logged.push(message) });
      const b = await instance(prefix, { attemptTimeoutMs: 10_000 });
      a.register(x, `${receiver.url}/held/${x}`);
      b.register(y, `${receiver.url}/held/${y}`);
      for (let n = 0; n < 3; n++) a.emit(x, 'DtmfReceived', dtmf(x, n));
      for (let n = 0; n < 2; n++) b.emit(y, 'DtmfReceived', dtmf(y, n));
      await until(() => held.length === 2, 5_000, 'Both first attempts');
      const report = await a.close(100);
      expect(report).toEqual({ delivered: 0, stillQueued: 3, inSharedQueue: 5, deadLettered: 0 });
      expect(logged).toContain('Callback delivery stopped: 0 delivered while stopping, 3 left queued (5 waiting in the shared queue for every instance), 0 kept as dead letters (closed).');
    } finally {
      for (const res of held) res.writeHead(503).end();
    }
  });

  it('loses no event emitted while Redis is away: each is pushed, in order, once Redis is back', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const callLegId = `leg-${crypto.randomUUID()}`;
    const path = `/outage/${callLegId}`;
    const a = await instance(prefix);
    a.register(callLegId, `${receiver.url}${path}`);
    a.emit(callLegId, 'DtmfReceived', dtmf(callLegId, 0));
    await until(() => sequence(path).sequenceIds.length === 1, 5_000, 'The first event');
    // Delivered and off the queue: killed before its removal, Redis would have it sent again.
    const inspector = await connect();
    await until(async () => (await inspector.exists(`${prefix}q:{${callLegId}}`)) === 0, 5_000, 'The first event leaving the queue');
    await redis.kill();
    for (let n = 1; n < 4; n++) a.emit(callLegId, 'DtmfReceived', dtmf(callLegId, n));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await redis.restart();
    await until(() => sequence(path).sequenceIds.length === 4, 10_000, 'The events emitted during the outage');
    await a.drain();
    expect(sequence(path)).toEqual({ sequenceIds: [0, 1, 2, 3], duplicates: 0 });
  });

  it('takes over the calls of an instance killed mid-delivery once its lease expires, every event arriving in order', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const callLegId = `leg-${crypto.randomUUID()}`;
    const path = `/takeover/${callLegId}`;
    const leaseMs = 1_500;
    // The killed instance's attempt is held unanswered: it dies in the middle of delivering.
    answers.set(path, (delivery, res) => {
      if (receiver.received.filter((d) => d.path === path).length > 1) res.writeHead(204).end();
    });
    const b = await instance(prefix);
    const inspector = await connect();
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./deliver-apart.ts', import.meta.url))], {
      env: { ...process.env, REDIS_PORT: String(redis.port), PREFIX: prefix, SECRET: secret, CALL_LEG_ID: callLegId, CALLBACK_URI: `${receiver.url}${path}`, EVENTS: '5', LEASE_MS: String(leaseMs) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(child);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await until(() => receiver.received.some((d) => d.path === path), 15_000, 'The first attempt of the instance to be killed');
    await until(async () => (await inspector.llen(`${prefix}q:{${callLegId}}`)) === 5, 5_000, 'Five events queued');
    const holder = await inspector.get(`${prefix}q:{${callLegId}}:lease`);
    expect(holder).toBeTruthy();
    process.kill(child.pid!, 'SIGKILL');
    const killedAt = Date.now();
    await exited;
    await until(() => sequence(path).sequenceIds.length === 5 && receiver.received.filter((d) => d.path === path).length >= 6, leaseMs + 5_000, 'The takeover');
    const takenOverAfter = receiver.received.filter((d) => d.path === path)[1]!.at - killedAt;
    console.info(`Takeover ${takenOverAfter} ms after SIGKILL, lease ${leaseMs} ms`);
    // B waits for the dead instance's lease to expire, then delivers; the held event is sent again.
    // The dead instance renewed its lease every third of it: at least two thirds were left.
    expect(takenOverAfter).toBeGreaterThanOrEqual((leaseMs * 2) / 3 - 100);
    expect(takenOverAfter).toBeLessThan(leaseMs + 500);
    expect(sequence(path)).toEqual({ sequenceIds: [0, 1, 2, 3, 4], duplicates: 1 });
    await b.drain();
    expect(await inspector.exists(`${prefix}q:{${callLegId}}`, `${prefix}q:{${callLegId}}:lease`)).toBe(0);
  });
});
