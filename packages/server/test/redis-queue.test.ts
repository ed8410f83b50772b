import { spawn, type ChildProcess } from 'node:child_process';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseCallbackEvent } from '@call-automation/client/events';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallbackDelivery, createUriGuard, type CallbackDelivery, type CallbackDeliveryOptions } from '../src/index.ts';
import { createRedisCallbackQueue, createRedisCallbackRegistry, createRedisDeadLetterStore, type RedisCallbackQueueOptions } from '../src/redis.ts';
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

async function connect(port = redis.port): Promise<Redis> {
  const connection = new Redis({ host: '127.0.0.1', port, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  connection.on('error', () => {});
  connections.push(connection);
  await new Promise((resolve) => connection.once('ready', resolve));
  return connection;
}

/** An instance's delivery: its own connection, the shared queue, registry and dead letters. */
async function instance(prefix: string, options: Partial<CallbackDeliveryOptions> = {}, queueOptions: RedisCallbackQueueOptions = {}, port?: number): Promise<CallbackDelivery> {
  const connection = await connect(port);
  const delivery = createCallbackDelivery({
    secret,
    retryDelaysMs: [20, 40],
    jitter: 0,
    attemptTimeoutMs: 1_000,
    guard: createUriGuard({ allowLoopback: true }),
    queue: createRedisCallbackQueue(connection, { prefix: `${prefix}q:`, ...queueOptions }),
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
  it("leave a call waiting for one's slot to the other, free: a push that starts no worker takes no lease", async () => {
    const prefix = `q-${crypto.randomUUID()}:`;
    const slow = await startCallbackReceiver({ answer: (_delivery, _n, res) => void setTimeout(() => res.writeHead(204).end(), 1_500) });
    try {
      const busy = await instance(prefix, { concurrencyPerUri: 1 });
      const [first, second] = [`leg-${crypto.randomUUID()}`, `leg-${crypto.randomUUID()}`];
      for (const callLegId of [first, second]) busy.register(callLegId, `${slow.url}/cb`);
      busy.emit(first, 'DtmfReceived', dtmf(first, 0));
      await until(() => slow.received.length === 1, 2_000, 'The first call taking the only slot');
      busy.emit(second, 'DtmfReceived', dtmf(second, 0));
      await busy.settled?.();
      // The busy instance's slot frees in 1.5 s; the free one takes the waiting call at its next poll.
      await instance(prefix);
      await until(() => slow.received.length === 2, 1_000, 'The waiting call delivered by the free instance');
      expect(parseCallbackEvent(slow.received[1]!.body).data).toMatchObject({ callLegId: second });
    } finally {
      await slow.close();
    }
  });

  it('deliver every event once, in order per call, each call by whichever instance leases it', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const delivered = { a: 0, b: 0 };
    // Leases long enough that a slow machine renews them in time (a lease lost sends an event twice),
    // and attempts too (one given up on after the receiver had the event sends it again).
    const a = await instance(prefix, { leaseMs: 6_000, attemptTimeoutMs: 3_000, onAttempt: (_d, outcome) => void (outcome.next === 'done' && delivered.a++) });
    const b = await instance(prefix, { leaseMs: 6_000, attemptTimeoutMs: 3_000, onAttempt: (_d, outcome) => void (outcome.next === 'done' && delivered.b++) });
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

  it('does not hold its shutdown for a call waiting for its retry time: it leaves it in the shared queue at once, for any instance at that time', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const callLegId = `leg-${crypto.randomUUID()}`;
    const path = `/retrying/${callLegId}`;
    let open = false;
    answers.set(path, (_d, res) => void res.writeHead(open ? 204 : 503).end());
    // Its retry is due 3 s after the first attempt; the grace period is 10 s.
    const a = await instance(prefix, { retryDelaysMs: [3_000] });
    a.register(callLegId, `${receiver.url}${path}`);
    a.emit(callLegId, 'DtmfReceived', dtmf(callLegId, 0));
    await until(() => receiver.received.some((d) => d.path === path), 5_000, 'A first attempt');
    const started = Date.now();
    const report = await a.close(10_000);
    // Well before the retry's time, let alone the grace period's end.
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(report).toMatchObject({ delivered: 0, stillQueued: 1, deadLettered: 0 });
    open = true;
    const b = await instance(prefix);
    const attempts = () => receiver.received.filter((d) => d.path === path);
    await until(() => attempts().length === 2, 10_000, 'B delivering it at its retry time');
    // Not before the time A set for it.
    expect(attempts()[1]!.at - attempts()[0]!.at).toBeGreaterThanOrEqual(2_900);
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
      for (const res of held) res.writeHead(204).end();
    }
  });

  it('shuts down at once when it has no call of its own in hand, whatever waits in the shared queue for the others', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const callLegId = `leg-${crypto.randomUUID()}`;
    let held: ServerResponse | undefined;
    answers.set(`/others/${callLegId}`, (_d, res) => void (held = res));
    try {
      const a = await instance(prefix, { attemptTimeoutMs: 10_000 });
      const b = await instance(prefix, { attemptTimeoutMs: 10_000 });
      b.register(callLegId, `${receiver.url}/others/${callLegId}`);
      for (let n = 0; n < 2; n++) b.emit(callLegId, 'DtmfReceived', dtmf(callLegId, n));
      await until(() => held !== undefined, 5_000, "B's attempt");
      const started = performance.now();
      const report = await a.close(5_000);
      expect(performance.now() - started).toBeLessThan(1_000);
      expect(report).toEqual({ delivered: 0, stillQueued: 0, inSharedQueue: 2, deadLettered: 0 });
    } finally {
      held?.writeHead(204).end();
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

describe('polling the Redis callback queue', () => {
  it('reads only the calls due: a hundred calls waiting for their retry cost no command of their own until then', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const calls = Array.from({ length: 100 }, (_, i) => `leg-${i}-${crypto.randomUUID()}`);
    for (const callLegId of calls) answers.set(`/waiting/${callLegId}`, (_d, res) => void res.writeHead(503).end());
    // A Redis of its own, so that what it counts is these instances' commands alone.
    const own = await startRedis();
    const a = await instance(prefix, { retryDelaysMs: [60_000] }, {}, own.port);
    await instance(prefix, { retryDelaysMs: [60_000] }, {}, own.port);
    for (const callLegId of calls) {
      a.register(callLegId, `${receiver.url}/waiting/${callLegId}`);
      a.emit(callLegId, 'DtmfReceived', dtmf(callLegId, 0));
    }
    await until(() => calls.every((callLegId) => receiver.received.some((d) => d.path === `/waiting/${callLegId}`)), 10_000, 'Every first attempt');
    const inspector = await connect(own.port);
    // Each call is put off till its retry once its attempt has failed.
    await until(async () => (await inspector.zcount(`{${prefix}q:calls}:due`, '-inf', String(Date.now()))) === 0, 5_000, 'Every call put off');
    // The other instance may still be taking up the calls its first polls found due, once each: a
    // window of 500 ms with no command on any call's keys is what follows.
    const window = async () => {
      await inspector.config('RESETSTAT');
      await new Promise((resolve) => setTimeout(resolve, 500));
      const counts: Record<string, number> = {};
      for (const [, name, calls] of (await inspector.info('commandstats')).matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)) counts[name!] = Number(calls);
      return counts;
    };
    let counts = await window();
    for (let tries = 1; (counts.lindex ?? 0) > 0 && tries < 8; tries++) counts = await window();
    // Two instances polling every 50 ms: about twenty polls, each one script. Reading every
    // waiting call would have cost a hundred LLEN a poll.
    const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
    console.info(`In 500 ms of polls with 100 calls waiting: ${total} commands, ${JSON.stringify(counts)}`);
    expect(counts.llen ?? 0).toBe(0);
    expect(counts.lindex ?? 0).toBe(0);
    expect(total).toBeLessThan(100);
    expect(receiver.received.filter((d) => d.path.startsWith('/waiting/'))).toHaveLength(100);
  });

  it('takes up, a batch at a time, the calls an earlier version of the queue indexed', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const calls = Array.from({ length: 30 }, (_, i) => `leg-${i}-${crypto.randomUUID()}`);
    // Registered through one instance, queued as the queue did before it kept due times.
    // Attempts given room on a loaded machine: one given up on three times would be a dead letter.
    const a = await instance(prefix, { attemptTimeoutMs: 5_000 });
    for (const callLegId of calls) a.register(callLegId, `${receiver.url}/batch/${callLegId}`);
    await a.drain();
    for (const callLegId of calls) answers.set(`/batch/${callLegId}`, (_d, res) => void setTimeout(() => res.writeHead(204).end(), 20));
    const inspector = await connect();
    for (const callLegId of calls) {
      await inspector.zadd(`${prefix}q:calls`, String(Date.now()), callLegId);
      await inspector.rpush(`${prefix}q:{${callLegId}}`, JSON.stringify({ id: `evt_${crypto.randomUUID()}`, callLegId, callbackUri: `${receiver.url}/batch/${callLegId}`, body: JSON.stringify({ data: dtmf(callLegId, 0) }), queuedAt: Date.now(), attempts: 0, notBefore: 0 }));
    }
    // A call the earlier version forgot, still due here: the index decides.
    await inspector.zadd(`{${prefix}q:calls}:due`, '0', 'leg-forgotten');
    await instance(prefix, { attemptTimeoutMs: 5_000 }, { pollBatch: 10 });
    await until(() => calls.every((callLegId) => receiver.received.some((d) => d.path === `/batch/${callLegId}`)), 10_000, 'Every call delivered');
    // Dropped by a poll (one that finds the index and the due times apart), never delivered.
    await until(async () => (await inspector.zscore(`{${prefix}q:calls}:due`, 'leg-forgotten')) === null, 2_000, 'The forgotten call dropped');
    expect(receiver.received.some((d) => d.path.includes('leg-forgotten'))).toBe(false);
    // Events it did not count are not counted off: the count stays at least 0.
    expect((await inspector.get(`{${prefix}q:calls}:count`)) ?? '0').toBe('0');
  });
});

describe('the whole Redis callback queue', () => {
  it('on one Redis, indexes only the calls with events waiting: a call delivered leaves the index with its last event', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const calls = Array.from({ length: 50 }, (_, i) => `leg-${i}-${crypto.randomUUID()}`);
    const a = await instance(prefix, {}, {});
    for (const callLegId of calls) {
      a.register(callLegId, `${receiver.url}/leaves/${callLegId}`);
      for (let n = 0; n < 3; n++) a.emit(callLegId, 'DtmfReceived', dtmf(callLegId, n));
    }
    await until(() => receiver.received.filter((d) => d.path.startsWith('/leaves/')).length === 150, 10_000, 'Every event delivered');
    const inspector = await connect();
    // The index, its due times and the count are what a poll and a shutdown read: none of the
    // delivered calls is left in them to be read again.
    await until(async () => (await inspector.zcard(`${prefix}q:calls`)) === 0, 2_000, 'The index emptied');
    expect(await inspector.zcard(`{${prefix}q:calls}:due`)).toBe(0);
    expect((await inspector.get(`{${prefix}q:calls}:count`)) ?? '0').toBe('0');
    for (const callLegId of calls) expect(sequence(`/leaves/${callLegId}`)).toEqual({ sequenceIds: [0, 1, 2], duplicates: 0 });
  });

  it('is bounded: past maxEntries an event is an overflow dead letter, and room comes back as events leave', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const held: ServerResponse[] = [];
    answers.set('/bounded', (_d, res) => void held.push(res));
    try {
      const a = await instance(prefix, { attemptTimeoutMs: 5_000 }, { maxEntries: 3 });
      const calls = Array.from({ length: 5 }, (_, i) => `leg-${i}-${crypto.randomUUID()}`);
      for (const callLegId of calls) {
        a.register(callLegId, `${receiver.url}/bounded`);
        a.emit(callLegId, 'DtmfReceived', dtmf(callLegId, 0));
      }
      await until(async () => (await a.deadLetters()).length === 2, 5_000, 'Two overflow dead letters');
      expect((await a.deadLetters()).map((letter) => [letter.callLegId, letter.reason])).toEqual([
        [calls[3], 'overflow'],
        [calls[4], 'overflow'],
      ]);
      await until(() => held.length === 3, 5_000, 'Three attempts');
      for (const res of held.splice(0)) res.writeHead(204).end();
      await a.drain();
      const inspector = await connect();
      expect(await inspector.get(`{${prefix}q:calls}:count`)).toBe('0');
      answers.set('/bounded', (_d, res) => void res.writeHead(204).end());
      expect(await a.redrive((await a.deadLetters())[0]!.id)).toBe(true);
      await a.drain();
      expect(receiver.received.filter((d) => d.path === '/bounded')).toHaveLength(4);
    } finally {
      for (const res of held) res.writeHead(503).end();
    }
  });

  it('hands a call over at shutdown at once, though another instance\'s poll had put it off till the lease would end', async () => {
    const prefix = `ca:${crypto.randomUUID()}:`;
    const callLegId = `leg-${crypto.randomUUID()}`;
    const path = `/handover-now/${callLegId}`;
    let first: ServerResponse | undefined;
    answers.set(path, (_d, res) => {
      if (first) res.writeHead(204).end();
      else first = res;
    });
    try {
      const options = { leaseMs: 10_000, attemptTimeoutMs: 5_000 };
      const a = await instance(prefix, options);
      const b = await instance(prefix, options);
      a.register(callLegId, `${receiver.url}${path}`);
      a.emit(callLegId, 'DtmfReceived', dtmf(callLegId, 0));
      await until(() => first !== undefined, 5_000, 'The first attempt');
      const inspector = await connect();
      // B's poll found the call leased by A and put it off till A's lease would end.
      await until(async () => Number(await inspector.zscore(`{${prefix}q:calls}:due`, callLegId)) > Date.now() + 5_000, 5_000, 'The call put off');
      await a.close(50);
      const closedAt = Date.now();
      await until(() => sequence(path).sequenceIds.length === 1 && receiver.received.filter((d) => d.path === path).length === 2, 5_000, 'B delivering');
      expect(Date.now() - closedAt).toBeLessThan(1_000);
      await b.drain();
    } finally {
      first?.writeHead(503).end();
    }
  });
});
