import { parseCallbackEvent } from '@call-automation/client/events';
import { createHmacAuth } from '@call-automation/client/raw';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallAutomationService, createCallbackDelivery, createUriGuard, type CallbackDelivery, type CallbackDeliveryOptions, type DeadLetter } from '../src/index.ts';
import { createRedisCallbackRegistry, createRedisDeadLetterStore, createRedisGoneUriStore } from '../src/redis.ts';
import { serveApp, type RunningServer } from '../src/node.ts';
// The conformance suite's receiver (that package depends on this one, so it is imported by path).
import { startCallbackReceiver, type CallbackReceiver } from '../../../conformance/src/harness/receiver.ts';
import { accessKey, memoryHandlers, phoneCall } from './fixture.ts';
import { connectRedis, type RedisProcess, startRedis, stopAll } from './redis-server.ts';

const secret = `whsec_${Buffer.from('server-test-callback-secret-0001').toString('base64')}`;
let redis: RedisProcess;
let receiver: CallbackReceiver;
const connections: Redis[] = [];
const closers: Array<() => Promise<unknown>> = [];
const logged: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
  receiver = await startCallbackReceiver();
});

afterAll(async () => {
  try {
    for (const close of closers.reverse()) await close().catch(() => {});
    for (const connection of connections) connection.disconnect();
    await receiver?.close();
  } finally {
    await stopAll();
  }
});

async function connect(): Promise<Redis> {
  const connection = await connectRedis(redis.port);
  connections.push(connection);
  return connection;
}

const letter = (id: string, extra: Partial<DeadLetter> = {}): DeadLetter => ({
  id,
  callLegId: 'leg-dl',
  callbackUri: 'https://app.contoso.com/cb',
  body: '{}',
  queuedAt: 1,
  attempts: 2,
  notBefore: 1,
  reason: 'rejected',
  diedAt: 2,
  ...extra,
});

describe('the Redis dead-letter store', () => {
  it('is shared by instances: added on one, listed in order and taken once on another', async () => {
    const prefix = `ca:dl:${crypto.randomUUID()}:`;
    const [one, two] = await Promise.all([connect(), connect()]);
    const a = createRedisDeadLetterStore(one, { prefix });
    const b = createRedisDeadLetterStore(two, { prefix });
    await a.add(letter('e1'));
    await b.add(letter('e2', { reason: 'gone' }));
    await a.add(letter('e3'));
    // Added again, a letter moves to the end, as in the memory store.
    await b.add(letter('e1', { reason: 'expired' }));
    expect((await b.list()).map((l) => [l.id, l.reason])).toEqual([
      ['e2', 'gone'],
      ['e3', 'rejected'],
      ['e1', 'expired'],
    ]);
    const taken = await Promise.all([a.take('e3'), b.take('e3')]);
    expect(taken.filter(Boolean)).toEqual([letter('e3')]);
    expect((await a.list()).map((l) => l.id)).toEqual(['e2', 'e1']);
    expect(await a.take('missing')).toBeUndefined();
  });

  it('gives up the oldest letters past maxEntries and says which', async () => {
    const prefix = `ca:dl:${crypto.randomUUID()}:`;
    const evicted: string[] = [];
    const store = createRedisDeadLetterStore(await connect(), { prefix, maxEntries: 3, onEvict: (l) => evicted.push(l.id) });
    for (const id of ['e1', 'e2', 'e3', 'e4', 'e5']) await store.add(letter(id));
    expect(evicted).toEqual(['e1', 'e2']);
    expect((await store.list()).map((l) => l.id)).toEqual(['e3', 'e4', 'e5']);
  });

  it('keeps its keys in one hash slot, so that its scripts run on Redis Cluster', async () => {
    const store = createRedisDeadLetterStore(await connect(), { prefix: 'ca:dl:slot-check:' });
    await store.add(letter('e1'));
    const keys = await connections[0]!.keys('*slot-check*');
    const slots = await Promise.all(keys.map((key) => connections[0]!.call('CLUSTER', 'KEYSLOT', key).catch(() => undefined)));
    expect(keys.sort()).toEqual(['{ca:dl:slot-check:}letters', '{ca:dl:slot-check:}order', '{ca:dl:slot-check:}seq']);
    // CLUSTER KEYSLOT answers on a server without cluster mode too.
    expect(new Set(slots).size).toBe(1);
  });
});

describe('two instances sharing the Redis callback registry and dead letters', () => {
  const prefix = `ca:${crypto.randomUUID()}:`;

  async function instance(options: Partial<CallbackDeliveryOptions> = {}): Promise<CallbackDelivery> {
    const connection = await connect();
    const delivery = createCallbackDelivery({
      secret,
      retryDelaysMs: [20, 40],
      jitter: 0,
      attemptTimeoutMs: 1_000,
      guard: createUriGuard({ allowLoopback: true }),
      registry: createRedisCallbackRegistry(connection, { prefix: `${prefix}call:` }),
      deadLetters: createRedisDeadLetterStore(connection, { prefix: `${prefix}dl:` }),
      log: (message) => logged.push(message),
      ...options,
    });
    closers.push(() => delivery.close(500));
    return delivery;
  }

  let a: CallbackDelivery;
  let b: CallbackDelivery;
  beforeAll(async () => {
    a = await instance();
    b = await instance();
  });

  const stateOf = (body: string) => (parseCallbackEvent(body).data as { callState?: string }).callState;

  it('delivers events emitted on B for a call created through A\'s API', async () => {
    const service = createCallAutomationService({ handlers: memoryHandlers().handlers, auth: { accessKeys: [accessKey] }, callbacks: a });
    const server: RunningServer = await serveApp(service);
    closers.push(() => server.close());
    const request = await createHmacAuth(accessKey).sign(
      new Request(`${server.url}/calls`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...phoneCall, callbackUri: `${receiver.url}/from-a` }) }),
    );
    const created = await fetch(request);
    expect(created.status).toBe(200);
    const { callLegId } = (await created.json()) as { callLegId: string };
    b.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'established' });
    await b.drain();
    const got = await receiver.waitFor((d) => d.path === '/from-a');
    expect(parseCallbackEvent(got.body).source).toBe(`calls/${callLegId}`);
    expect(stateOf(got.body)).toBe('established');
  });

  it('answers a createCall once its callbackUri is in Redis, so that the next request, on any instance, finds it', async () => {
    const slowRegistry = async () => {
      const registry = createRedisCallbackRegistry(await connect(), { prefix: `${prefix}call:` });
      // A Redis that takes 300 ms to record a registration.
      return { ...registry, set: async (callLegId: string, uri: string) => (await new Promise((resolve) => setTimeout(resolve, 300)), registry.set(callLegId, uri)) };
    };
    const createOn = async (settleTimeoutMs: number, path: string) => {
      const slow = await instance({ registry: await slowRegistry() });
      const service = createCallAutomationService({ handlers: memoryHandlers().handlers, auth: { accessKeys: [accessKey] }, callbacks: slow, settleTimeoutMs });
      const server: RunningServer = await serveApp(service);
      closers.push(() => server.close());
      const request = await createHmacAuth(accessKey).sign(
        new Request(`${server.url}/calls`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...phoneCall, callbackUri: `${receiver.url}${path}` }) }),
      );
      const started = performance.now();
      const created = await fetch(request);
      expect(created.status).toBe(200);
      return { callLegId: ((await created.json()) as { callLegId: string }).callLegId, ms: performance.now() - started };
    };

    const waited = await createOn(2_000, '/settled');
    expect(waited.ms).toBeGreaterThanOrEqual(290);
    b.emit(waited.callLegId, 'CallLegStateChanged', { callLegId: waited.callLegId, callState: 'established' });
    await b.drain();
    expect(stateOf((await receiver.waitFor((d) => d.path === '/settled')).body)).toBe('established');

    // Not waiting for it, the answer outruns the registration: B finds no callbackUri.
    const hurried = await createOn(1, '/hurried');
    expect(hurried.ms).toBeLessThan(290);
    b.emit(hurried.callLegId, 'CallLegStateChanged', { callLegId: hurried.callLegId, callState: 'established' });
    await b.drain();
    expect((await b.deadLetters()).filter((l) => l.callLegId === hurried.callLegId).map((l) => l.reason)).toEqual(['unregistered']);
  });

  it('keeps the order of register, emits and unregister on one instance, the URI looked up in Redis', async () => {
    const callLegId = `leg-${crypto.randomUUID()}`;
    const states = ['establishing', 'established', 'terminating', 'terminated'] as const;
    // Synchronous, as a handler does it: every emit is queued behind the register it follows.
    a.register(callLegId, `${receiver.url}/order`);
    for (const callState of states) a.emit(callLegId, 'CallLegStateChanged', { callLegId, callState });
    a.unregister(callLegId);
    await a.drain();
    const got = receiver.received.filter((d) => d.path === '/order');
    expect(got.map((d) => stateOf(d.body))).toEqual([...states]);
    expect(await connections[0]!.exists(`${prefix}call:{${callLegId}}`)).toBe(0);
  });

  it('makes an event for a call no instance registered an unregistered dead letter, seen on both, sent once it is registered', async () => {
    const callLegId = `leg-${crypto.randomUUID()}`;
    b.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'established' });
    await b.drain();
    const letters = (await a.deadLetters()).filter((l) => l.callLegId === callLegId);
    expect(letters.map((l) => [l.reason, l.callbackUri])).toEqual([['unregistered', '']]);
    expect(await b.redrive(letters[0]!.id)).toBe(false);
    expect((await b.deadLetters()).some((l) => l.id === letters[0]!.id)).toBe(true);
    a.register(callLegId, `${receiver.url}/late`);
    await a.drain();
    expect(await b.redrive(letters[0]!.id)).toBe(true);
    await b.drain();
    expect((await receiver.waitFor((d) => d.path === '/late')).headers['webhook-id']).toBe(letters[0]!.id);
    expect((await a.deadLetters()).some((l) => l.id === letters[0]!.id)).toBe(false);
  });

  it('loses no event while Redis is away: the lookup is retried and the events go out in order once it is back', async () => {
    const callLegId = `leg-${crypto.randomUUID()}`;
    a.register(callLegId, `${receiver.url}/outage`);
    await a.drain();
    await redis.kill();
    for (const callState of ['established', 'terminated'] as const) b.emit(callLegId, 'CallLegStateChanged', { callLegId, callState });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receiver.received.filter((d) => d.path === '/outage')).toEqual([]);
    expect(logged.some((message) => message.startsWith(`Callback registration or event of call ${callLegId} not recorded`))).toBe(true);
    await redis.restart();
    await b.drain();
    const got = receiver.received.filter((d) => d.path === '/outage');
    expect(got.map((d) => stateOf(d.body))).toEqual(['established', 'terminated']);
  });
});

describe('two instances sharing the Redis store of gone URIs', () => {
  it('stop delivering to a URI on B once it answered 410 to A, and a redrive on B clears it for both', async () => {
    let status = 410;
    const leaving = await startCallbackReceiver({ answer: (_d, _n, res) => void res.writeHead(status).end() });
    closers.push(() => leaving.close());
    const prefix = `ca:${crypto.randomUUID()}:`;
    const instance = async () => {
      const connection = await connect();
      // Each its own queue in memory: only the gone URIs and the dead letters are shared.
      const delivery = createCallbackDelivery({
        secret,
        guard: createUriGuard({ allowLoopback: true }),
        deadLetters: createRedisDeadLetterStore(connection, { prefix: `${prefix}dl:` }),
        gone: createRedisGoneUriStore(connection, { prefix: `${prefix}gone:`, ttlMs: 60_000 }),
        log: () => {},
      });
      closers.push(() => delivery.close(500));
      return delivery;
    };
    const [a, b] = await Promise.all([instance(), instance()]);
    const uri = `${leaving.url}/leaving`;
    a.register('leg-a', uri);
    a.emit('leg-a', 'CallLegStateChanged', { callLegId: 'leg-a', callState: 'established' });
    await a.drain();
    expect(leaving.received).toHaveLength(1);
    const inspector = await connect();
    const ttl = await inspector.pttl(`${prefix}gone:${uri}`);
    expect(ttl).toBeGreaterThan(59_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    // B never sends to it: its events are dead letters (gone) at once.
    b.register('leg-b', uri);
    for (const callState of ['established', 'terminated'] as const) b.emit('leg-b', 'CallLegStateChanged', { callLegId: 'leg-b', callState });
    await b.drain();
    expect(leaving.received).toHaveLength(1);
    const letters = await b.deadLetters();
    expect(letters.map((l) => [l.callLegId, l.reason, l.attempts])).toEqual([
      ['leg-a', 'gone', 1],
      ['leg-b', 'gone', 0],
      ['leg-b', 'gone', 0],
    ]);
    // The receiver is back: a redrive on B clears the URI on Redis, and A sends to it again.
    status = 204;
    expect(await b.redrive(letters[1]!.id)).toBe(true);
    await b.drain();
    expect(await inspector.exists(`${prefix}gone:${uri}`)).toBe(0);
    a.emit('leg-a', 'CallLegStateChanged', { callLegId: 'leg-a', callState: 'terminated' });
    await a.drain();
    expect(leaving.received.map((d) => d.headers['webhook-id'])).toHaveLength(3);
    expect(leaving.received[1]!.headers['webhook-id']).toBe(letters[1]!.id);
  });
});

describe('a delivery whose Redis dead-letter store is away', () => {
  it('keeps the event queued and tries again each second, without spinning, until the letter is stored', async () => {
    const refusing = await startCallbackReceiver({ answer: (_d, _n, res) => void res.writeHead(400).end() });
    closers.push(() => refusing.close());
    const messages: string[] = [];
    const delivery = createCallbackDelivery({
      secret,
      guard: createUriGuard({ allowLoopback: true }),
      deadLetters: createRedisDeadLetterStore(await connect(), { prefix: `ca:${crypto.randomUUID()}:dl:` }),
      log: (message) => messages.push(message),
    });
    closers.push(() => delivery.close(500));
    await redis.kill();
    delivery.register('leg-refused', `${refusing.url}/refused`);
    delivery.emit('leg-refused', 'CallLegStateChanged', { callLegId: 'leg-refused', callState: 'established' });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const failures = messages.filter((m) => m.startsWith('Callback delivery for call leg-refused failed, trying again in 1000 ms'));
    // One failure at once, one a second later: not a loop.
    expect(failures.length).toBeGreaterThanOrEqual(1);
    expect(failures.length).toBeLessThanOrEqual(2);
    await redis.restart();
    await delivery.drain();
    expect((await delivery.deadLetters()).map((l) => [l.callLegId, l.reason])).toEqual([['leg-refused', 'rejected']]);
  });
});
