// What the Redis queue and registry send per event: a push that takes the lease of a call no one
// delivers (else a lease that reads the call's first event), a shift that answers the next (and
// gives the lease up after the last), a release that answers what was pushed meanwhile, one script
// per push on one Redis, and a callbackUri written once (with the call's first event when emitted
// with it) and not read back by the instance that wrote it.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmacAuth } from '@call-automation/client/raw';
import { createCallAutomationService, createCallbackDelivery, createUriGuard, type CallAutomationHandlers, type CallbackDeliveryOptions, type PendingDelivery } from '../src/index.ts';
import { serveApp } from '../src/node.ts';
import { createRedisCallbackQueue, createRedisCallbackRegistry, createRedisDeadLetterStore, createRedisGoneUriStore, createRedisIdempotencyStore } from '../src/redis.ts';
import { accessKey, memoryHandlers, phoneCall } from './fixture.ts';
// The conformance suite's receiver (that package depends on this one, so it is imported by path).
import { startCallbackReceiver, type CallbackReceiver } from '../../../conformance/src/harness/receiver.ts';
import { invocations, startRedis, stopAll, type RedisProcess } from './redis-server.ts';

const secret = `whsec_${Buffer.from('server-test-callback-secret-0001').toString('base64')}`;
let redis: RedisProcess;
let receiver: CallbackReceiver;
const connections: Redis[] = [];

beforeAll(async () => {
  redis = await startRedis();
  receiver = await startCallbackReceiver();
});

afterAll(async () => {
  try {
    for (const connection of connections) connection.disconnect();
    await receiver?.close();
  } finally {
    await stopAll();
  }
});

/** A connection that records the commands it sends: their names, a script's first key instead of evalsha. */
async function connect(): Promise<Redis & { sent: string[] }> {
  const connection = Object.assign(new Redis({ host: '127.0.0.1', port: redis.port, enableOfflineQueue: false, maxRetriesPerRequest: 1 }), { sent: [] as string[] });
  connection.on('error', () => {});
  connections.push(connection);
  await new Promise((resolve) => connection.once('ready', resolve));
  const send = connection.sendCommand.bind(connection);
  connection.sendCommand = (command, stream) => {
    const args = command.args.map(String);
    connection.sent.push(command.name === 'evalsha' || command.name === 'eval' ? `script ${args[2] ?? ''}` : command.name);
    return send(command, stream);
  };
  return connection;
}

/** A delivery on the queue, registry and dead letters of one connection, under `prefix`, that polls only when asked. */
function deliveryOn(connection: Redis, prefix: string, options: Partial<CallbackDeliveryOptions> = {}) {
  return createCallbackDelivery({
    secret,
    guard: createUriGuard({ allowLoopback: true }),
    queue: createRedisCallbackQueue(connection, { prefix: `${prefix}q:` }),
    registry: createRedisCallbackRegistry(connection, { prefix: `${prefix}call:` }),
    deadLetters: createRedisDeadLetterStore(connection, { prefix: `${prefix}dl:` }),
    pollIntervalMs: 60_000,
    log: () => {},
    ...options,
  });
}

/** Waits (up to 5 s) until the receiver got at least `count` deliveries on `paths`; the test's expectations say what if not. */
async function receivedOn(paths: string[], count: number) {
  const deadline = Date.now() + 5_000;
  while (receiver.received.filter((d) => paths.includes(d.path)).length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}

const pending = (callLegId: string, id: string): PendingDelivery => ({ id, callLegId, callbackUri: 'https://app.contoso.com/cb', body: '{}', queuedAt: Date.now(), attempts: 0, notBefore: Date.now() });

describe('the Redis callback registry', () => {
  it('writes the same URI registered again at once only once, and answers the calls it registered from memory', async () => {
    const a = await connect();
    const b = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const onA = createRedisCallbackRegistry(a, { prefix });
    const onB = createRedisCallbackRegistry(b, { prefix });
    await onA.set('leg-1', 'https://app.contoso.com/one');
    await onA.set('leg-1', 'https://app.contoso.com/one');
    expect(await onA.get('leg-1')).toBe('https://app.contoso.com/one');
    expect(a.sent).toEqual(['set']);
    // Another URI is written; another instance reads Redis.
    await onA.set('leg-1', 'https://app.contoso.com/two');
    expect(await onB.get('leg-1')).toBe('https://app.contoso.com/two');
    expect(b.sent).toEqual(['get']);
    // Unregistered: forgotten here too, and asked of Redis.
    await onA.delete('leg-1');
    expect(await onA.get('leg-1')).toBeUndefined();
    expect(a.sent).toEqual(['set', 'set', 'del', 'get']);
  });

  it('answers from memory only within ttlMs, after which Redis has forgotten the call too', async () => {
    const a = await connect();
    const registry = createRedisCallbackRegistry(a, { prefix: `rt-${crypto.randomUUID()}:`, ttlMs: 100 });
    await registry.set('leg-1', 'https://app.contoso.com/one');
    expect(await registry.get('leg-1')).toBe('https://app.contoso.com/one');
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await registry.get('leg-1')).toBeUndefined();
    expect(a.sent).toEqual(['set', 'get']);
  });

  it('remembers the latest `remembered` calls only', async () => {
    const a = await connect();
    const registry = createRedisCallbackRegistry(a, { prefix: `rt-${crypto.randomUUID()}:`, remembered: 2 });
    for (const id of ['leg-1', 'leg-2', 'leg-3']) await registry.set(id, `https://app.contoso.com/${id}`);
    for (const id of ['leg-1', 'leg-2', 'leg-3']) expect(await registry.get(id)).toBe(`https://app.contoso.com/${id}`);
    expect(a.sent).toEqual(['set', 'set', 'set', 'get']);
  });

  it("writes a registration with a push of the call's event in the same turn, even one refused as overflow, with its ttlMs", async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const registry = createRedisCallbackRegistry(a, { prefix: `${prefix}call:`, ttlMs: 60_000 });
    const queue = createRedisCallbackQueue(a, { prefix: `${prefix}q:`, maxPerCall: 1 });
    await queue.push(pending('leg-1', 'evt-1'));
    a.sent.length = 0;
    const registered = registry.set('leg-1', 'https://app.contoso.com/one');
    const pushed = queue.push(pending('leg-1', 'evt-2'));
    expect(await pushed).toBe(false);
    await registered;
    expect(a.sent).toEqual([`script ${prefix}q:calls`]);
    expect(await a.get(`${prefix}call:{leg-1}`)).toBe('https://app.contoso.com/one');
    expect(await a.pttl(`${prefix}call:{leg-1}`)).toBeGreaterThan(50_000);
    expect(await a.lrange(`${prefix}q:{leg-1}`, 0, -1)).toHaveLength(1);
  });

  it("writes a registration on its own when no push of the call's event follows in the turn, and before a read or delete of the call", async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const registry = createRedisCallbackRegistry(a, { prefix: `${prefix}call:` });
    const queue = createRedisCallbackQueue(a, { prefix: `${prefix}q:` });
    // Another call's push does not take it (and is sent once the turn's promise jobs have run, after it).
    const registered = registry.set('leg-1', 'https://app.contoso.com/one');
    await queue.push(pending('leg-2', 'evt-1'));
    await registered;
    expect(a.sent).toEqual(['set', `script ${prefix}q:calls`]);
    expect(await a.get(`${prefix}call:{leg-1}`)).toBe('https://app.contoso.com/one');
    // A delete asked for in the same turn goes after it; so does a read (from another registry on the connection).
    a.sent.length = 0;
    const other = createRedisCallbackRegistry(a, { prefix: `${prefix}call:` });
    const [, , read] = await Promise.all([registry.set('leg-3', 'https://app.contoso.com/three'), registry.set('leg-4', 'https://app.contoso.com/four'), other.get('leg-3'), registry.delete('leg-4')]);
    expect(read).toBe('https://app.contoso.com/three');
    expect(a.sent).toEqual(['set', 'get', 'set', 'del']);
    expect(await a.exists(`${prefix}call:{leg-4}`)).toBe(0);
  });

  it('writes two registrations of one call asked for in one turn in that order', async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const registry = createRedisCallbackRegistry(a, { prefix: `${prefix}call:` });
    await Promise.all([registry.set('leg-1', 'https://app.contoso.com/one'), registry.set('leg-1', 'https://app.contoso.com/two')]);
    expect(a.sent).toEqual(['set', 'set']);
    expect(await a.get(`${prefix}call:{leg-1}`)).toBe('https://app.contoso.com/two');
  });

  it("deletes a registration carried by a push after it, though Redis lost the push's script (NOSCRIPT, sent again)", async () => {
    const a = await connect();
    const flusher = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const registry = createRedisCallbackRegistry(a, { prefix: `${prefix}call:` });
    const queue = createRedisCallbackQueue(a, { prefix: `${prefix}q:` });
    // The script of a push with a registration is loaded on this connection (later ones go as EVALSHA), then Redis forgets it.
    await Promise.all([registry.set('leg-0', 'https://app.contoso.com/zero'), queue.push(pending('leg-0', 'evt-0'))]);
    expect(a.sent).toEqual([`script ${prefix}q:calls`]);
    await flusher.call('SCRIPT', 'FLUSH');
    a.sent.length = 0;
    const registered = registry.set('leg-1', 'https://app.contoso.com/one');
    const pushed = queue.push(pending('leg-1', 'evt-1'));
    const deleted = registry.delete('leg-1');
    await Promise.all([registered, pushed, deleted]);
    // The push, sent again after NOSCRIPT, then the delete.
    expect(a.sent).toEqual([`script ${prefix}q:calls`, `script ${prefix}q:calls`, 'del']);
    expect(await a.exists(`${prefix}call:{leg-1}`)).toBe(0);
  });

  it('gives up on a read or delete of a call within timeoutMs while the push that carries its registration has no answer', async () => {
    const a = await connect();
    const pauser = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const registry = createRedisCallbackRegistry(a, { prefix: `${prefix}call:`, timeoutMs: 200 });
    const queue = createRedisCallbackQueue(a, { prefix: `${prefix}q:`, timeoutMs: 200 });
    // Redis holds every command for 2 s: the push that carries leg-1's registration has no answer till then.
    await pauser.call('CLIENT', 'PAUSE', '2000', 'ALL');
    const registered = registry.set('leg-1', 'https://app.contoso.com/one');
    const pushed = queue.push(pending('leg-1', 'evt-1'));
    await Promise.allSettled([registered, pushed]);
    const started = performance.now();
    const [read, deleted] = await Promise.allSettled([registry.get('leg-1'), registry.delete('leg-1')]);
    expect(read).toMatchObject({ status: 'rejected', reason: { message: 'Redis did not answer a callbackUri within 200 ms.' } });
    expect(deleted).toMatchObject({ status: 'rejected', reason: { message: 'Redis did not answer a callbackUri within 200 ms.' } });
    // Not held until Redis answers the push (which they waited for without a limit).
    expect(performance.now() - started).toBeLessThan(1_000);
    // The next test starts once Redis answers again.
    await pauser.ping();
  });

  it('does not write a registration carried by a push that reaches Redis after its deadline, and says so', async () => {
    const a = await connect();
    const pauser = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const registry = createRedisCallbackRegistry(a, { prefix: `${prefix}call:`, timeoutMs: 5_000 });
    const queue = createRedisCallbackQueue(a, { prefix: `${prefix}q:`, timeoutMs: 50 });
    // Redis holds every command for 300 ms: the push (and the registration in it) arrives late.
    await pauser.call('CLIENT', 'PAUSE', '300', 'ALL');
    const registered = registry.set('leg-1', 'https://app.contoso.com/one');
    const pushed = queue.push(pending('leg-1', 'evt-1'));
    await expect(pushed).rejects.toThrow(/did not answer the callback queue within 50 ms/);
    await expect(registered).rejects.toThrow(/refused the callbackUri of call leg-1 as late/);
    expect(a.sent).toEqual([`script ${prefix}q:calls`]);
    expect(await a.exists(`${prefix}call:{leg-1}`)).toBe(0);
    expect(await a.exists(`${prefix}q:{leg-1}`)).toBe(0);
  });
});

describe('the Redis store of gone URIs', () => {
  it("asks about a URI found not gone at most once in cacheMs, and takes this instance's 410 at once and another's within cacheMs", async () => {
    const a = await connect();
    const b = await connect();
    const prefix = `rt-${crypto.randomUUID()}:gone:`;
    const onA = createRedisGoneUriStore(a, { prefix, cacheMs: 1_000 });
    const onB = createRedisGoneUriStore(b, { prefix, cacheMs: 1_000 });
    const uri = 'https://app.contoso.com/cb';
    expect(await onA.has(uri)).toBe(false);
    expect(await onA.has(uri)).toBe(false);
    expect(a.sent).toEqual(['exists']);
    // A 410 on B: B knows at once, A once its answer is a second old.
    await onB.add(uri);
    expect(await onB.has(uri)).toBe(true);
    expect(await onA.has(uri)).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await onA.has(uri)).toBe(true);
    expect(await onA.has(uri)).toBe(true);
    expect(a.sent).toEqual(['exists', 'exists', 'exists']);
    // Redriven on B: A asks again, and its own 410 counts at once.
    await onB.delete(uri);
    expect(await onA.has(uri)).toBe(false);
    await onA.add(uri);
    expect(await onA.has(uri)).toBe(true);
    // An answer Redis gave before this instance's own 410 is not kept.
    const other = 'https://app.contoso.com/other';
    const asked = onA.has(other);
    const added = onA.add(other);
    expect(await asked).toBe(false);
    await added;
    expect(await onA.has(other)).toBe(true);
    // cacheMs 0: every attempt asks.
    const uncached = createRedisGoneUriStore(b, { prefix, cacheMs: 0 });
    b.sent.length = 0;
    for (let i = 0; i < 3; i++) expect(await uncached.has('https://app.contoso.com/new')).toBe(false);
    expect(b.sent).toEqual(['exists', 'exists', 'exists']);
  });
});

describe('the Redis callback queue on one Redis', () => {
  it('answers the head with a lease, the next head with a shift, and what was pushed meanwhile with a release', async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const queue = createRedisCallbackQueue(a, { prefix });
    expect(await queue.push(pending('leg-1', 'evt-1'))).toBe(true);
    expect(await queue.push(pending('leg-1', 'evt-2'))).toBe(true);
    expect(await queue.lease!('leg-1', 'me', 5_000)).toEqual({ head: expect.objectContaining({ id: 'evt-1' }) });
    expect(await queue.lease!('leg-1', 'another', 5_000)).toBe(false);
    // Only the head named is removed.
    expect(await queue.shift('leg-1', 'evt-2')).toEqual({ head: expect.objectContaining({ id: 'evt-1' }), released: false });
    expect(await queue.shift('leg-1', 'evt-1', 'me')).toEqual({ head: expect.objectContaining({ id: 'evt-2' }), released: false });
    // Without the owner, the lease is kept.
    expect(await queue.shift('leg-1', 'evt-2')).toEqual({ head: undefined, released: false });
    expect(await queue.size()).toBe(0);
    expect(await a.get(`{${prefix}calls}:count`)).toBe('0');
    // The emptied call left the index with its last event: no poll reads it again.
    expect(await a.zscore(`${prefix}calls`, 'leg-1')).toBeNull();
    expect(await a.zscore(`{${prefix}calls}:due`, 'leg-1')).toBeNull();
    expect(await queue.due!()).toEqual([]);
    expect(await queue.push(pending('leg-1', 'evt-3'))).toBe(true);
    expect(await queue.releaseLease!('leg-1', 'me')).toEqual({ head: expect.objectContaining({ id: 'evt-3' }) });
    expect(await queue.lease!('leg-1', 'another', 5_000)).toEqual({ head: expect.objectContaining({ id: 'evt-3' }) });
    // The owner's shift of the last event gives up its lease.
    expect(await queue.shift('leg-1', 'evt-3', 'me')).toEqual({ head: undefined, released: false });
    expect(await queue.shift('leg-1', 'evt-3', 'another')).toEqual({ head: undefined, released: true });
    expect(await queue.lease!('leg-1', 'me', 5_000)).toEqual({ head: undefined });
    expect(a.sent.filter((name) => name !== 'script' && !name.startsWith('script '))).toEqual(['zrange', 'get', 'zscore', 'zscore']);
  });

  it("removes a head only by its own id: one id that begins another's, ids that JSON escapes, and heads written with other key orders", async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const queue = createRedisCallbackQueue(a, { prefix });
    const list = `${prefix}{leg-1}`;
    await queue.push(pending('leg-1', 'evt-10'));
    expect(await queue.shift('leg-1', 'evt-1')).toEqual({ head: expect.objectContaining({ id: 'evt-10' }), released: false });
    expect(await queue.shift('leg-1', 'evt-10')).toEqual({ head: undefined, released: false });
    for (const id of ['evt-"quoted"', 'evt-back\\slash', 'evt-é']) {
      await queue.push(pending('leg-1', id));
      expect(await queue.shift('leg-1', `${id}x`)).toEqual({ head: expect.objectContaining({ id }), released: false });
      expect(await queue.shift('leg-1', id)).toEqual({ head: undefined, released: false });
    }
    // A delivery whose id is not its first key (as another writer may have queued it) is read whole.
    const { id, ...rest } = pending('leg-1', 'evt-last');
    await a.rpush(list, JSON.stringify({ ...rest, id }));
    await queue.push(pending('leg-1', 'evt-after'));
    expect(await queue.shift('leg-1', 'evt-other')).toEqual({ head: expect.objectContaining({ id: 'evt-last' }), released: false });
    expect(await queue.shift('leg-1', 'evt-last')).toEqual({ head: expect.objectContaining({ id: 'evt-after' }), released: false });
    expect(await a.llen(list)).toBe(1);
  });

  it("takes a call's lease with the push of its only event when no one holds it, and leaves polls to the owner until the lease would end", async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const queue = createRedisCallbackQueue(a, { prefix });
    const lease = (callLegId: string) => `${prefix}{${callLegId}}:lease`;
    const before = Date.now();
    expect(await queue.push(pending('leg-1', 'evt-1'), { owner: 'me', ms: 5_000 })).toBe('leased');
    expect(await a.get(lease('leg-1'))).toBe('me');
    expect(await a.pttl(lease('leg-1'))).toBeGreaterThan(4_000);
    // Due when the lease would end: a poll does not take it up meanwhile.
    expect(Number(await a.zscore(`{${prefix}calls}:due`, 'leg-1'))).toBeGreaterThanOrEqual(before + 5_000);
    expect(await queue.due!()).toEqual([]);
    // A second event, and a call whose lease another holds, are only queued.
    expect(await queue.push(pending('leg-1', 'evt-2'), { owner: 'me', ms: 5_000 })).toBe(true);
    expect(await queue.lease!('leg-2', 'another', 5_000)).toEqual({ head: undefined });
    expect(await queue.push(pending('leg-2', 'evt-3'), { owner: 'me', ms: 5_000 })).toBe(true);
    expect(await a.get(lease('leg-2'))).toBe('another');
    // Without an owner, no lease is taken.
    expect(await queue.push(pending('leg-3', 'evt-4'))).toBe(true);
    expect(await a.exists(lease('leg-3'))).toBe(0);
    // A call another delivers is left to it too, until its lease would end; the call no one holds is due.
    expect(await queue.due!()).toEqual(['leg-3']);
    expect(Number(await a.zscore(`{${prefix}calls}:due`, 'leg-2'))).toBeGreaterThanOrEqual(before + 4_000);
    // The owner delivers from the head it pushed; the shift of the last event gives the lease up.
    expect(await queue.shift('leg-1', 'evt-1', 'me')).toEqual({ head: expect.objectContaining({ id: 'evt-2' }), released: false });
    expect(await queue.shift('leg-1', 'evt-2', 'me')).toEqual({ head: undefined, released: true });
    expect(await a.exists(lease('leg-1'))).toBe(0);
    expect(await a.get(`{${prefix}calls}:count`)).toBe('2');
  });

  it("takes the next call's lease and head with a shift only when the call shifted is left empty, its lease given up, and no one else holds the next", async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const queue = createRedisCallbackQueue(a, { prefix });
    expect(queue.takesNext).toBe(true);
    const lease = (callLegId: string) => `${prefix}{${callLegId}}:lease`;
    const next = (callLegId: string) => ({ callLegId, ms: 5_000 });
    await queue.push(pending('leg-a', 'evt-a1'), { owner: 'me', ms: 5_000 });
    await queue.push(pending('leg-a', 'evt-a2'));
    await queue.push(pending('leg-b', 'evt-b1'));
    await queue.push(pending('leg-c', 'evt-c1'));
    await a.set(lease('leg-c'), 'another', 'PX', 5_000);
    // leg-a has another event: its worker goes on, and leg-b is left alone.
    expect(await queue.shift('leg-a', 'evt-a1', 'me', next('leg-b'))).toEqual({ head: expect.objectContaining({ id: 'evt-a2' }), released: false });
    expect(await a.exists(lease('leg-b'))).toBe(0);
    // leg-c is another instance's: left to it.
    expect(await queue.shift('leg-a', 'evt-a2', 'me', next('leg-c'))).toEqual({ head: undefined, released: true });
    expect(await a.get(lease('leg-c'))).toBe('another');
    // leg-a's lease given up with its last event, leg-b's taken, its first event answered, and polls put off till the lease would end.
    await queue.push(pending('leg-a', 'evt-a3'), { owner: 'me', ms: 5_000 });
    const before = Date.now();
    expect(await queue.shift('leg-a', 'evt-a3', 'me', next('leg-b'))).toEqual({ head: undefined, released: true, next: expect.objectContaining({ id: 'evt-b1' }) });
    expect(await a.get(lease('leg-a'))).toBeNull();
    expect(await a.get(lease('leg-b'))).toBe('me');
    expect(Number(await a.zscore(`{${prefix}calls}:due`, 'leg-b'))).toBeGreaterThanOrEqual(before + 5_000);
    // A next call with nothing waiting is not leased.
    await queue.push(pending('leg-a', 'evt-a4'), { owner: 'me', ms: 5_000 });
    expect(await queue.shift('leg-a', 'evt-a4', 'me', next('leg-empty'))).toEqual({ head: undefined, released: true });
    expect(await a.exists(lease('leg-empty'))).toBe(0);
  });

  it('refuses a push past maxPerCall or maxEntries without writing anything', async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const queue = createRedisCallbackQueue(a, { prefix, maxPerCall: 1, maxEntries: 2 });
    const b = await connect();
    /** Whether `push` left every key of the queue as it was: a refused push writes nothing (no AOF or replica traffic under overflow). */
    const untouched = async (push: () => Promise<unknown>) => {
      const keys = [`${prefix}calls`, `{${prefix}calls}:due`, `{${prefix}calls}:count`, ...['leg-1', 'leg-3'].flatMap((id) => [`${prefix}{${id}}`, `${prefix}{${id}}:lease`])];
      await b.watch(...keys);
      await push();
      return (await b.multi().ping().exec()) !== null;
    };
    expect(await queue.push(pending('leg-1', 'evt-1'))).toBe(true);
    expect(await untouched(async () => expect(await queue.push(pending('leg-1', 'evt-2'), { owner: 'me', ms: 5_000 })).toBe(false))).toBe(true);
    expect(await queue.push(pending('leg-2', 'evt-3'))).toBe(true);
    expect(await untouched(async () => expect(await queue.push(pending('leg-3', 'evt-4'), { owner: 'me', ms: 5_000 })).toBe(false))).toBe(true);
    // The check can fail: an accepted push touches the keys.
    await a.del(`{${prefix}calls}:count`);
    expect(await untouched(async () => expect(await queue.push(pending('leg-3', 'evt-5'))).toBe(true))).toBe(false);
    await a.lpop(`${prefix}{leg-3}`);
    await a.set(`{${prefix}calls}:count`, '2');
    await a.zrem(`${prefix}calls`, 'leg-3');
    expect(await a.get(`{${prefix}calls}:count`)).toBe('2');
    expect(await a.zrange(`${prefix}calls`, '0', '-1')).toEqual(['leg-1', 'leg-2']);
  });

  it('delivers a call of one event with a push that registers the call and takes the lease, and a shift that gives it up', async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const delivery = deliveryOn(a, prefix);
    try {
      const callLegId = `leg-${crypto.randomUUID()}`;
      // The handler's register, then the stub's.
      delivery.register(callLegId, `${receiver.url}/round-trips`);
      delivery.register(callLegId, `${receiver.url}/round-trips`);
      delivery.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'established' });
      await receivedOn(['/round-trips'], 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(receiver.received.filter((d) => d.path === '/round-trips')).toHaveLength(1);
      expect(a.sent).toEqual([`script ${prefix}q:calls`, `script ${prefix}q:{${callLegId}}`]);
      expect(await a.exists(`${prefix}q:{${callLegId}}:lease`)).toBe(0);
      expect(await a.get(`${prefix}call:{${callLegId}}`)).toBe(`${receiver.url}/round-trips`);
    } finally {
      await delivery.close(1_000);
    }
  });

  it("writes a new call's registration with its first event, in one script", async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const delivery = deliveryOn(a, prefix);
    const order: string[] = [];
    const send = a.sendCommand.bind(a);
    a.sendCommand = (command, stream) => {
      order.push(`sent ${command.name}`);
      void Promise.resolve(command.promise).then(
        () => order.push(`answered ${command.name}`),
        () => {},
      );
      return send(command, stream);
    };
    try {
      const callLegId = `leg-${crypto.randomUUID()}`;
      // As the service runs createCall: the handler registers the call and emits, the stub registers it again, and the answer waits for them.
      delivery.register(callLegId, `${receiver.url}/together`);
      delivery.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'establishing' });
      delivery.register(callLegId, `${receiver.url}/together`);
      await delivery.settled!();
      // One command: the push, whose script writes the registration too (EVAL, the script's first on this connection).
      expect(order.slice(0, 2).map((step) => step.replace(/evalsha$/, 'eval'))).toEqual(['sent eval', 'answered eval']);
      // Both recorded: another instance finds the call, and the event is queued (or on its way).
      expect(await a.get(`${prefix}call:{${callLegId}}`)).toBe(`${receiver.url}/together`);
      await receivedOn(['/together'], 1);
      expect(receiver.received.filter((d) => d.path === '/together')).toHaveLength(1);
    } finally {
      await delivery.close(1_000);
    }
  });

  it('queues an event emitted before an unregister with the URI it was emitted under, and one emitted after it as a dead letter', async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const delivery = deliveryOn(a, prefix);
    try {
      const callLegId = `leg-${crypto.randomUUID()}`;
      delivery.register(callLegId, `${receiver.url}/first`);
      delivery.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'establishing' });
      delivery.register(callLegId, `${receiver.url}/second`);
      delivery.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'established' });
      // Registered on this instance before, and recorded: the call's last event, then its unregister, at once.
      await delivery.settled!();
      delivery.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'terminated' });
      delivery.unregister(callLegId);
      delivery.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'terminated' });
      await delivery.settled!();
      await receivedOn(['/first', '/second'], 3);
      const states = (path: string) => receiver.received.filter((d) => d.path === path).map((d) => (JSON.parse(d.body) as { data: { callState: string } }).data.callState);
      expect(states('/first')).toEqual(['establishing']);
      expect(states('/second')).toEqual(['established', 'terminated']);
      expect((await delivery.deadLetters()).map((letter) => letter.reason)).toEqual(['unregistered']);
      expect(await a.exists(`${prefix}call:{${callLegId}}`)).toBe(0);
    } finally {
      await delivery.close(1_000);
    }
  });

  it('hands each slot freed by a call to a call waiting for it with the shift, its lease and first event included', async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const delivery = deliveryOn(a, prefix, { concurrencyPerUri: 4 });
    /** The queue's scripts run, each invocation of one sent for many (a shift, a push) apart: by its first key's kind and how many keys and arguments it had. */
    const scripts: string[] = [];
    const send = a.sendCommand.bind(a);
    a.sendCommand = (command, stream) => {
      const args = command.args.map(String);
      const name = (keys: string[], argv: string[]) => `${keys[0]!.replace(/\{[^}]*\}/, '{*}').replace(prefix, '')} ${keys.length + argv.length}`;
      if (command.name === 'evalsha' || command.name === 'eval') scripts.push(...invocations(args.slice(1)).map(({ keys, argv }) => name(keys, argv)));
      return send(command, stream);
    };
    try {
      const calls = Array.from({ length: 40 }, (_, i) => `leg-${i}-${crypto.randomUUID()}`);
      for (const callLegId of calls) delivery.register(callLegId, `${receiver.url}/handed-on`);
      await delivery.settled!();
      // One URI, four slots: the first calls take them, the others wait for them in turn, four
      // workers ending at about the same time.
      for (const callLegId of calls) delivery.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'established' });
      await receivedOn(['/handed-on'], calls.length);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const received = receiver.received.filter((d) => d.path === '/handed-on').map((d) => (JSON.parse(d.body) as { data: { callLegId: string } }).data.callLegId);
      expect([...received].sort()).toEqual([...calls].sort());
      // Each call's event is pushed and shifted; a waiting call's lease and first event come
      // with the shift that ends a call before it (5 arguments more), not with a lease of its
      // own: each worker's shift takes up another waiting call. (A worker whose shift found no
      // call waiting yet, as the pushes' answers came in, may start one by its lease: a few at
      // most. Without the hand-over, most of the 36 waiting calls are leased on their own.)
      const leases = scripts.filter((script) => script.startsWith('q:{*}:lease ') && script.endsWith(' 4'));
      expect(leases.length).toBeLessThanOrEqual(4);
      expect(scripts.filter((script) => script === 'q:{*} 13').length).toBeGreaterThanOrEqual(calls.length - 8);
      expect(await a.zcard(`${prefix}q:calls`)).toBe(0);
      expect(await a.keys(`${prefix}q:{*}:lease`)).toEqual([]);
    } finally {
      await delivery.close(1_000);
    }
  });

  it("says at shutdown what waits in the shared queue with one read of its count, however many calls it indexes", async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const queue = createRedisCallbackQueue(a, { prefix });
    // A hundred calls indexed with nothing waiting (as calls found empty a moment ago stay for a
    // while), and three events waiting.
    for (let i = 0; i < 100; i++) await a.zadd(`${prefix}calls`, String(Date.now()), `leg-${i}`);
    for (let i = 0; i < 3; i++) await queue.push(pending('leg-waiting', `evt-waiting-${i}`));
    const delivery = createCallbackDelivery({ secret, queue, pollIntervalMs: 60_000, log: () => {} });
    a.sent.length = 0;
    expect(await delivery.close(1_000)).toEqual({ delivered: 0, stillQueued: 0, inSharedQueue: 3, deadLettered: 0 });
    expect(a.sent).toEqual(['get']);
  });
});

describe('the Redis idempotency store on one Redis', () => {
  /** Each script command sent on the connection: its keys (every invocation's, of a command sent for many). */
  function scriptKeys(connection: Redis): string[][] {
    const sent: string[][] = [];
    const send = connection.sendCommand.bind(connection);
    connection.sendCommand = (command, stream) => {
      if (command.name === 'evalsha' || command.name === 'eval') {
        const args = command.args.map(String);
        sent.push(args.slice(2, 2 + Number(args[1])));
      }
      return send(command, stream);
    };
    return sent;
  }

  it('runs four scripts for a repeatable createCall with one event, and answers its repeat from Redis with one', async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const delivery = deliveryOn(a, prefix);
    let created = 0;
    const handlers: CallAutomationHandlers = {
      ...memoryHandlers().handlers,
      createCall: ({ body }, context) => {
        const callLegId = `leg-${crypto.randomUUID()}`;
        created++;
        context.events.register(callLegId, body.callbackUri);
        context.events.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'establishing' });
        return { status: 200, body: { callLegId } };
      },
    };
    const service = createCallAutomationService({ handlers, auth: { accessKeys: [accessKey] }, callbacks: delivery, idempotency: createRedisIdempotencyStore(a, { prefix: `${prefix}idem:` }) });
    const server = await serveApp(service);
    const signer = createHmacAuth(accessKey);
    const id = crypto.randomUUID();
    const createCall = async () => {
      const request = new Request(`${server.url}/calls`, {
        method: 'POST',
        body: JSON.stringify({ ...phoneCall, callbackUri: `${receiver.url}/answered` }),
        headers: { 'content-type': 'application/json', 'Repeatability-Request-ID': id, 'Repeatability-First-Sent': new Date().toUTCString() },
      });
      const response = await fetch(await signer.sign(request));
      return { status: response.status, body: (await response.json()) as { callLegId: string } };
    };
    try {
      const sent = scriptKeys(a);
      const first = await createCall();
      expect(first.status).toBe(200);
      await receivedOn(['/answered'], 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const key = `${prefix}idem:hmac:${id}`;
      const callLegId = first.body.callLegId;
      // The claim; the push, writing the call's registration too; the answer; the shift.
      expect(sent).toEqual([
        [key],
        [`${prefix}q:calls`, `{${prefix}q:calls}:due`, `{${prefix}q:calls}:count`, `${prefix}q:{${callLegId}}`, `${prefix}q:{${callLegId}}:lease`, `${prefix}call:{${callLegId}}`],
        [key],
        [`${prefix}q:{${callLegId}}`, `${prefix}q:{${callLegId}}:lease`, `${prefix}q:calls`, `{${prefix}q:calls}:due`, `{${prefix}q:calls}:count`],
      ]);
      expect(JSON.parse((await a.hget(key, 'reply'))!)).toMatchObject({ status: 200, body: { callLegId } });
      // The repeat is answered from Redis: one claim, and the handler does not run again.
      sent.length = 0;
      expect(await createCall()).toEqual(first);
      expect(created).toBe(1);
      expect(sent).toEqual([[key]]);
    } finally {
      await server.close();
      await delivery.close(1_000);
    }
  });

  it('claims the ids asked for in one turn with one command, stores the answers of one turn with another, and only under a key still held', async () => {
    const a = await connect();
    const prefix = `rt-${crypto.randomUUID()}:`;
    const store = createRedisIdempotencyStore(a, { prefix: `${prefix}idem:` });
    const commands = scriptKeys(a);
    const expires = Date.now() + 60_000;
    // Each claim its own answer: an id claimed twice in the turn is pending the second time.
    expect(await Promise.all(['one', 'two', 'three', 'two'].map((id) => store.claim(id, 'POST /calls x', expires)))).toEqual([
      { state: 'claimed' },
      { state: 'claimed' },
      { state: 'claimed' },
      { state: 'pending', fingerprint: 'POST /calls x' },
    ]);
    expect(commands).toEqual([[`${prefix}idem:one`, `${prefix}idem:two`, `${prefix}idem:three`, `${prefix}idem:two`]]);
    commands.length = 0;
    // Three answers and one for a key no longer held (expired, or never claimed), left unwritten.
    await Promise.all([store.complete('one', { status: 200, body: { n: 1 } }), store.complete('two', { status: 200, body: { n: 2 } }), store.complete('gone', { status: 200 }), store.complete('three', { status: 201 })]);
    expect(commands).toEqual([[`${prefix}idem:one`, `${prefix}idem:two`, `${prefix}idem:gone`, `${prefix}idem:three`]]);
    expect(await store.claim('one', 'POST /calls x', expires)).toEqual({ state: 'done', fingerprint: 'POST /calls x', reply: { status: 200, body: { n: 1 } } });
    expect(await store.claim('two', 'POST /calls x', expires)).toEqual({ state: 'done', fingerprint: 'POST /calls x', reply: { status: 200, body: { n: 2 } } });
    expect(await store.claim('three', 'POST /calls x', expires)).toEqual({ state: 'done', fingerprint: 'POST /calls x', reply: { status: 201 } });
    expect(await a.exists(`${prefix}idem:gone`)).toBe(0);
  });
});
