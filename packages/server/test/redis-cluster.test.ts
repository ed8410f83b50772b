import { parseCallbackEvent } from '@call-automation/client/events';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallbackDelivery, createUriGuard, type CallbackDelivery, type DeadLetter } from '../src/index.ts';
import { batchWrites, createRedisCallbackQueue, createRedisCallbackRegistry, createRedisDeadLetterStore, createRedisIdempotencyStore, createRedisReplayStore } from '../src/redis.ts';
// The conformance suite's receiver (that package depends on this one, so it is imported by path).
import { startCallbackReceiver, type CallbackReceiver } from '../../../conformance/src/harness/receiver.ts';
import { countWrites, startCluster, stopAll, type RedisProcess } from './redis-server.ts';

const secret = `whsec_${Buffer.from('server-test-callback-secret-0001').toString('base64')}`;
let nodes: RedisProcess[];
let receiver: CallbackReceiver;
const connections: Cluster[] = [];
const deliveries: CallbackDelivery[] = [];

beforeAll(async () => {
  nodes = await startCluster();
  receiver = await startCallbackReceiver();
}, 60_000);

afterAll(async () => {
  try {
    for (const delivery of deliveries) await delivery.close(500).catch(() => {});
    for (const connection of connections) connection.disconnect();
    await receiver?.close();
  } finally {
    await stopAll();
  }
});

/** A connection to the cluster, as each instance has its own. */
async function connect(): Promise<Cluster> {
  const cluster = new Cluster([{ host: '127.0.0.1', port: nodes[0]!.port }], { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 1 } });
  cluster.on('error', () => {});
  connections.push(cluster);
  await new Promise((resolve) => cluster.once('ready', resolve));
  return cluster;
}

/** How many keys matching `pattern` each master holds. */
async function spread(cluster: Cluster, pattern: string): Promise<number[]> {
  return Promise.all(cluster.nodes('master').map(async (node) => (await node.keys(pattern)).length));
}

describe('the Redis stores on a three-master Redis Cluster', () => {
  it('claims a request id once among simultaneous claims from two connections, and keeps ids on every master', async () => {
    const [one, two] = await Promise.all([connect(), connect()]);
    const stores = [createRedisIdempotencyStore(one), createRedisIdempotencyStore(two)];
    const expires = Date.now() + 60_000;
    const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => stores[i % 2]!.claim('hmac:shared', 'POST /calls x', expires)));
    expect(claims.filter((claim) => claim.state === 'claimed')).toHaveLength(1);
    expect(claims.filter((claim) => claim.state === 'pending')).toHaveLength(19);
    await stores[0]!.complete('hmac:shared', { status: 200, body: { callLegId: 'leg-1' } });
    expect(await stores[1]!.claim('hmac:shared', 'POST /calls x', expires)).toEqual({ state: 'done', fingerprint: 'POST /calls x', reply: { status: 200, body: { callLegId: 'leg-1' } } });
    for (let i = 0; i < 30; i++) expect((await stores[i % 2]!.claim(`hmac:${crypto.randomUUID()}`, 'f', expires)).state).toBe('claimed');
    // No hash tag: request ids spread over the masters.
    expect((await spread(one, 'ca:idem:*')).every((count) => count > 0)).toBe(true);
  });

  it('runs the dead-letter scripts, which touch three keys, in one slot', async () => {
    const [one, two] = await Promise.all([connect(), connect()]);
    const letter = (id: string): DeadLetter => ({ id, callLegId: 'leg-1', callbackUri: 'https://app.contoso.com/cb', body: '{}', queuedAt: 1, attempts: 1, notBefore: 1, reason: 'gone', diedAt: 2 });
    const evicted: string[] = [];
    const a = createRedisDeadLetterStore(one, { maxEntries: 2, onEvict: (l) => evicted.push(l.id) });
    const b = createRedisDeadLetterStore(two);
    for (const id of ['e1', 'e2', 'e3']) await a.add(letter(id));
    expect(evicted).toEqual(['e1']);
    expect((await b.list()).map((l) => l.id)).toEqual(['e2', 'e3']);
    expect((await b.take('e2'))?.id).toBe('e2');
    expect((await a.list()).map((l) => l.id)).toEqual(['e3']);
  });

  it('remembers a signature once among simultaneous checks from two connections, the script\'s two keys in one slot', async () => {
    const [one, two] = await Promise.all([connect(), connect()]);
    const stores = [createRedisReplayStore(one, { maxEntries: 3 }), createRedisReplayStore(two, { maxEntries: 3 })];
    const expires = Date.now() + 60_000;
    const verdicts = await Promise.all(Array.from({ length: 10 }, (_, i) => stores[i % 2]!.remember('c2lnbmF0dXJl', expires)));
    expect(verdicts.filter((verdict) => verdict.state === 'recorded')).toHaveLength(1);
    expect(verdicts.filter((verdict) => verdict.state === 'replayed')).toHaveLength(9);
    expect((await stores[1]!.remember('b3RoZXI=', expires)).state).toBe('recorded');
    expect((await stores[0]!.remember('dGhpcmQ=', expires)).state).toBe('recorded');
    expect(await stores[1]!.remember('Zm91cnRo', expires)).toMatchObject({ state: 'full' });
  });

  /** Sets `n` keys in one turn and reads them back in the next, counting each master's writes meanwhile. */
  async function writesPerMaster(cluster: Cluster, prefix: string, n: number): Promise<{ writes: number[]; held: number[] }> {
    const masters = cluster.nodes('master');
    // Each master's connection opens with its first command.
    await Promise.all(masters.map((node) => node.ping()));
    const counters = masters.map((node) => countWrites(node));
    const keys = Array.from({ length: n }, (_, i) => `${prefix}:{${i}}`);
    expect(await Promise.all(keys.map((key, i) => cluster.set(key, String(i))))).toEqual(keys.map(() => 'OK'));
    expect(await Promise.all(keys.map((key) => cluster.get(key)))).toEqual(keys.map((_, i) => String(i)));
    const writes = counters.map((counter) => counter.count);
    for (const counter of counters) counter.stop();
    return { writes, held: await Promise.all(masters.map(async (node) => (await node.keys(`${prefix}:*`)).length)) };
  }

  it('sends, with batchWrites, the commands of one turn to each master in one write (no bound on a write)', async () => {
    const { writes } = await writesPerMaster(batchWrites(await connect(), { maxCommands: Infinity }), 'batch', 90);
    // Ninety keys on three masters: one write each per turn, two turns.
    expect(writes).toEqual([2, 2, 2]);
  });

  it('bounds, with batchWrites as set up, each master\'s writes to 16 commands', async () => {
    const { writes, held } = await writesPerMaster(batchWrites(await connect()), 'bounded', 150);
    // Each master's share of the keys, 16 commands a write, in each of the two turns.
    expect(held.reduce((sum, n) => sum + n, 0)).toBe(150);
    expect(held.every((n) => n > 16)).toBe(true);
    expect(writes).toEqual(held.map((n) => 2 * Math.ceil(n / 16)));
  });

  it('spreads the replay cache over the masters in parts (shards), each part bounded by its share, a signature refused from any connection', async () => {
    const [one, two] = await Promise.all([connect(), connect()]);
    const options = { prefix: 'ca:replay:sharded:', shards: 16, maxEntries: 160 };
    const stores = [createRedisReplayStore(one, options), createRedisReplayStore(two, options)];
    const expires = Date.now() + 60_000;
    const signatures = Array.from({ length: 40 }, () => Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64'));
    for (const [i, signature] of signatures.entries()) expect((await stores[i % 2]!.remember(signature, expires)).state).toBe('recorded');
    for (const [i, signature] of signatures.entries()) expect((await stores[(i + 1) % 2]!.remember(signature, expires)).state).toBe('replayed');
    // Sixteen tags, on every master: no one node holds the cache.
    expect((await spread(one, '{ca:replay:sharded:*}*')).every((count) => count > 0)).toBe(true);
    // Each part holds its share (160 / 16 = 10): signatures go on being recorded until their part is full.
    let recorded = signatures.length;
    for (let i = 0; i < 800; i++) {
      const verdict = await stores[i % 2]!.remember(Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64'), expires);
      if (verdict.state === 'recorded') recorded++;
      else expect(verdict).toMatchObject({ state: 'full' });
    }
    expect(recorded).toBe(160);
  });

  it('delivers every event once and in order per call from two deliveries sharing the queue, calls spread over the masters', async () => {
    const instance = async () => {
      const connection = await connect();
      const queue = createRedisCallbackQueue(connection);
      // A call's keys and the next call's live in different slots: a shift takes up no other call.
      expect(queue.takesNext).toBe(false);
      const delivery = createCallbackDelivery({
        secret,
        retryDelaysMs: [20],
        jitter: 0,
        attemptTimeoutMs: 1_000,
        guard: createUriGuard({ allowLoopback: true }),
        queue,
        registry: createRedisCallbackRegistry(connection),
        deadLetters: createRedisDeadLetterStore(connection, { prefix: 'ca:dl:delivery:' }),
        pollIntervalMs: 50,
        leaseMs: 2_000,
        log: () => {},
      });
      deliveries.push(delivery);
      return { connection, delivery };
    };
    const [a, b] = await Promise.all([instance(), instance()]);
    // Fixed ids, so that where they land is too: these twelve cover the three masters' slot ranges.
    const calls = Array.from({ length: 12 }, (_, i) => `leg-${i}`);
    for (const [i, callLegId] of calls.entries()) (i % 2 ? a : b).delivery.register(callLegId, `${receiver.url}/cluster/${callLegId}`);
    // Registered on one instance before its events are emitted on the other.
    await Promise.all([a.delivery.drain(), b.delivery.drain()]);
    for (let n = 0; n < 5; n++) {
      for (const [i, callLegId] of calls.entries()) (i % 2 ? b : a).delivery.emit(callLegId, 'DtmfReceived', { callLegId, toneInfo: { sequenceId: n, tone: 'tone1' } });
    }
    const deadline = Date.now() + 20_000;
    while (receiver.received.filter((d) => d.path.startsWith('/cluster/')).length < 60 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await Promise.all([a.delivery.drain(), b.delivery.drain()]);
    for (const callLegId of calls) {
      const got = receiver.received.filter((d) => d.path === `/cluster/${callLegId}`);
      expect(new Set(got.map((d) => d.headers['webhook-id'])).size).toBe(got.length);
      expect(got.map((d) => (parseCallbackEvent(d.body).data as { toneInfo: { sequenceId: number } }).toneInfo.sequenceId)).toEqual([0, 1, 2, 3, 4]);
    }
    expect(await a.delivery.deadLetters()).toEqual([]);
    // The calls spread over the masters, each call's queue, lease and registration in its one slot.
    expect((await spread(a.connection, 'ca:call:*')).every((count) => count > 0)).toBe(true);
    const slots = await Promise.all(['ca:q:{leg-1}', 'ca:q:{leg-1}:lease', 'ca:call:{leg-1}'].map((key) => a.connection.call('CLUSTER', 'KEYSLOT', key)));
    expect(new Set(slots).size).toBe(1);
  });
});
