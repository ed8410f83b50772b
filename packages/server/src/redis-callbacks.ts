import type { CallbackQueue, CallbackRegistry, DeadLetter, DeadLetterStore, GoneUriStore, PendingDelivery } from './callbacks.ts';
import { withTimeout, type RedisClient } from './redis-common.ts';

export interface RedisDeadLetterStoreOptions {
  /** Put before every key. Default `ca:dl:`. */
  prefix?: string;
  /** The most letters kept (default 10 000). Past that the oldest is given up, and `onEvict` hears which. */
  maxEntries?: number;
  onEvict?: (letter: DeadLetter) => void;
  /** How long a command may take before the store gives up on it. Default 2 s. */
  timeoutMs?: number;
}

// Letters by id in a hash, their order in a sorted set scored by a counter, so that a letter
// added again moves to the end as in the memory store. The three keys share one hash tag: each
// script touches all of them, which Redis Cluster allows only within one slot. The store is
// bounded, so one slot holds it.
const addScript = `
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local evicted = {}
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    evicted[#evicted + 1] = redis.call('HGET', KEYS[1], id)
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  end
end
return evicted
`;

const listScript = `
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(ids))
`;

const takeScript = `
local letter = redis.call('HGET', KEYS[1], ARGV[1])
if not letter then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return letter
`;

interface DeadLetterScripts {
  caDeadLetterAdd(letters: string, order: string, seq: string, id: string, letter: string, max: number): Promise<string[]>;
  caDeadLetterList(letters: string, order: string): Promise<Array<string | null>>;
  caDeadLetterTake(letters: string, order: string, id: string): Promise<string | null>;
}

/**
 * Dead letters in Redis, seen and redriven from any instance: `deadLetters()` on one lists what
 * every instance buried. Bounded like the memory store: past `maxEntries` the oldest letter is
 * given up, and `onEvict` (on the instance that added the newest) hears which.
 */
export function createRedisDeadLetterStore(redis: RedisClient, options: RedisDeadLetterStoreOptions = {}): DeadLetterStore {
  const tag = `{${options.prefix ?? 'ca:dl:'}}`;
  const keys = [`${tag}letters`, `${tag}order`, `${tag}seq`] as const;
  const max = options.maxEntries ?? 10_000;
  if (!(max >= 1)) throw new RangeError(`maxEntries must be at least 1, not ${max}.`);
  const timeoutMs = options.timeoutMs ?? 2_000;
  redis.defineCommand('caDeadLetterAdd', { numberOfKeys: 3, lua: addScript });
  redis.defineCommand('caDeadLetterList', { numberOfKeys: 2, lua: listScript });
  redis.defineCommand('caDeadLetterTake', { numberOfKeys: 2, lua: takeScript });
  const scripts = redis as unknown as DeadLetterScripts;
  return {
    async add(letter) {
      const evicted = await withTimeout(scripts.caDeadLetterAdd(...keys, letter.id, JSON.stringify(letter), max), timeoutMs, 'a dead letter');
      for (const text of evicted) if (text) options.onEvict?.(JSON.parse(text) as DeadLetter);
    },
    async list() {
      const letters = await withTimeout(scripts.caDeadLetterList(keys[0], keys[1]), timeoutMs, 'the dead letters');
      return letters.flatMap((text) => (text ? [JSON.parse(text) as DeadLetter] : []));
    },
    async take(id) {
      const text = await withTimeout(scripts.caDeadLetterTake(keys[0], keys[1], id), timeoutMs, 'a dead letter');
      return text ? (JSON.parse(text) as DeadLetter) : undefined;
    },
  };
}

export interface RedisCallbackRegistryOptions {
  /** Put before every key. Default `ca:call:`. */
  prefix?: string;
  /**
   * Forget a call's callbackUri this long after it was registered, in case `unregister` never
   * comes (an instance died before the call ended). Default: kept until `unregister`. Set it
   * longer than any call lasts: an event emitted after it is a dead letter (`unregistered`).
   */
  ttlMs?: number;
  /** How long a command may take before the registry gives up on it (the delivery retries). Default 2 s. */
  timeoutMs?: number;
}

/**
 * Calls' callbackUris in Redis, so that any instance can emit a call's events: one key per call,
 * `ca:call:{<callLegId>}`, in the call's hash slot on Redis Cluster (the slot of its queued
 * events too, see createRedisCallbackQueue).
 */
export function createRedisCallbackRegistry(redis: RedisClient, options: RedisCallbackRegistryOptions = {}): CallbackRegistry {
  const prefix = options.prefix ?? 'ca:call:';
  const timeoutMs = options.timeoutMs ?? 2_000;
  const key = (callLegId: string) => `${prefix}{${callLegId}}`;
  return {
    async set(callLegId, callbackUri) {
      const set = options.ttlMs ? redis.set(key(callLegId), callbackUri, 'PX', options.ttlMs) : redis.set(key(callLegId), callbackUri);
      await withTimeout(set, timeoutMs, 'a callbackUri');
    },
    async get(callLegId) {
      return (await withTimeout(redis.get(key(callLegId)), timeoutMs, 'a callbackUri')) ?? undefined;
    },
    async delete(callLegId) {
      await withTimeout(redis.del(key(callLegId)), timeoutMs, 'a callbackUri');
    },
  };
}

export interface RedisGoneUriStoreOptions {
  /** Put before every key. Default `ca:gone:`. */
  prefix?: string;
  /**
   * How long a URI that answered 410 stays gone, unless a redrive clears it sooner. Default 24 h,
   * an event's lifetime: a receiver that comes back under the same URI is sent events again a
   * day later. The memory store keeps a URI until the process ends.
   */
  ttlMs?: number;
  /** How long a command may take before the store gives up on it (the delivery tries again a second later). Default 2 s. */
  timeoutMs?: number;
}

/**
 * The callbackUris that answered 410, in Redis, so that one 410 stops delivery to the URI on
 * every instance, and a redrive on any instance clears it for all. One key per URI,
 * `ca:gone:<uri>`, expiring after `ttlMs`; each command touches one key, so it works on Redis
 * Cluster as it is. Each delivery attempt asks whether its URI is gone: one EXISTS.
 */
export function createRedisGoneUriStore(redis: RedisClient, options: RedisGoneUriStoreOptions = {}): GoneUriStore {
  const prefix = options.prefix ?? 'ca:gone:';
  const ttlMs = options.ttlMs ?? 24 * 3_600_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  return {
    async has(uri) {
      return (await withTimeout(redis.exists(prefix + uri), timeoutMs, 'a gone callbackUri')) === 1;
    },
    async add(uri) {
      await withTimeout(redis.set(prefix + uri, '1', 'PX', ttlMs), timeoutMs, 'a gone callbackUri');
    },
    async delete(uri) {
      await withTimeout(redis.del(prefix + uri), timeoutMs, 'a gone callbackUri');
    },
  };
}

export interface RedisCallbackQueueOptions {
  /** Put before every key. Default `ca:q:`. */
  prefix?: string;
  /** The most deliveries one call may have waiting (default 10 000); past that an event is a dead letter (`overflow`). */
  maxPerCall?: number;
  /** How long a command may take before the queue gives up on it. Default 2 s. */
  timeoutMs?: number;
}

// Per call, in the call's hash slot: `ca:q:{<id>}` a list of deliveries (JSON) oldest first, and
// `ca:q:{<id>}:lease` the instance delivering it. Scripts that change the list check the head's
// id, so that an instance that lost its lease cannot change what another delivers now.
// A push carries its deadline, as a claim of the idempotency store does: one that reaches Redis
// after the instance gave up on it (and will push the event again) is not applied, so that a
// slow Redis does not queue an event twice.
const pushScript = `
local time = redis.call('TIME')
if tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) > tonumber(ARGV[3]) then return -1 end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
`;

const updateScript = `
local head = redis.call('LINDEX', KEYS[1], 0)
if not head or cjson.decode(head).id ~= ARGV[1] then return 0 end
redis.call('LSET', KEYS[1], 0, ARGV[2])
return 1
`;

const shiftScript = `
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return 0 end
if ARGV[1] ~= '' and cjson.decode(head).id ~= ARGV[1] then return 0 end
redis.call('LPOP', KEYS[1])
return 1
`;

// ARGV[3] is 1 to take a free lease, 0 only to extend one already held.
const leaseScript = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder or ARGV[3] == '0' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

// The index of calls with events: a sorted set scored by the last push's time. It lives in one
// slot, apart from the calls' keys, so a push adds to it before it queues: an event is never in
// a list the index misses. A call whose list was found empty leaves it only if its last push is
// a while ago: a push since the list was read has refreshed the score, and keeps it.
const forgetScript = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) < tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 1
`;

interface QueueScripts {
  caQueuePush(list: string, delivery: string, max: number, deadline: number): Promise<number>;
  caQueueUpdate(list: string, id: string, delivery: string): Promise<number>;
  caQueueShift(list: string, id: string): Promise<number>;
  caQueueLease(lease: string, owner: string, ms: number, take: 0 | 1): Promise<number>;
  caQueueRelease(lease: string, owner: string): Promise<number>;
  caQueueForget(index: string, callLegId: string, staleBefore: number): Promise<number>;
}

/**
 * A callback queue in Redis, shared by every instance: durable (a shutdown leaves events queued
 * for the others), in order per call, with per-call leases so that one instance at a time
 * delivers a call, and another takes over when the lease of one that died expires. Each call's
 * keys share its hash tag, `ca:q:{<callLegId>}`, so the queue works on Redis Cluster.
 */
export function createRedisCallbackQueue(redis: RedisClient, options: RedisCallbackQueueOptions = {}): CallbackQueue {
  const prefix = options.prefix ?? 'ca:q:';
  const index = `${prefix}calls`;
  const list = (callLegId: string) => `${prefix}{${callLegId}}`;
  const lease = (callLegId: string) => `${prefix}{${callLegId}}:lease`;
  const max = options.maxPerCall ?? 10_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  // An empty call stays indexed this long after its last push: longer than a push takes.
  const emptyGraceMs = 60_000;
  redis.defineCommand('caQueuePush', { numberOfKeys: 1, lua: pushScript });
  redis.defineCommand('caQueueUpdate', { numberOfKeys: 1, lua: updateScript });
  redis.defineCommand('caQueueShift', { numberOfKeys: 1, lua: shiftScript });
  redis.defineCommand('caQueueLease', { numberOfKeys: 1, lua: leaseScript });
  redis.defineCommand('caQueueRelease', { numberOfKeys: 1, lua: releaseScript });
  redis.defineCommand('caQueueForget', { numberOfKeys: 1, lua: forgetScript });
  const scripts = redis as unknown as QueueScripts;
  const limit = <T>(command: Promise<T>) => withTimeout(command, timeoutMs, 'the callback queue');

  /** The calls with events waiting and how many each has; forgets calls long empty. */
  async function waiting(): Promise<Array<[string, number]>> {
    const calls = await limit(redis.zrange(index, '0', '-1'));
    // One command per call: on Redis Cluster the lists live on different nodes.
    const lengths = await Promise.all(calls.map((callLegId) => limit(redis.llen(list(callLegId)))));
    const staleBefore = Date.now() - emptyGraceMs;
    await Promise.all(calls.map((callLegId, i) => (lengths[i] === 0 ? limit(scripts.caQueueForget(index, callLegId, staleBefore)) : undefined)));
    return calls.flatMap((callLegId, i): Array<[string, number]> => (lengths[i]! > 0 ? [[callLegId, lengths[i]!]] : []));
  }

  return {
    durable: true,
    async push(delivery) {
      const sent = Date.now();
      await limit(redis.zadd(index, String(sent), delivery.callLegId));
      const pushed = await limit(scripts.caQueuePush(list(delivery.callLegId), JSON.stringify(delivery), max, sent + timeoutMs));
      if (pushed === -1) throw new Error(`Redis refused event ${delivery.id} as late (${Date.now() - sent} ms after it was sent). Are the clocks of this instance and Redis apart?`);
      return pushed === 1;
    },
    async head(callLegId) {
      const head = await limit(redis.lindex(list(callLegId), 0));
      return head ? (JSON.parse(head) as PendingDelivery) : undefined;
    },
    async update(delivery) {
      await limit(scripts.caQueueUpdate(list(delivery.callLegId), delivery.id, JSON.stringify(delivery)));
    },
    async shift(callLegId, id) {
      await limit(scripts.caQueueShift(list(callLegId), id ?? ''));
    },
    async calls() {
      return (await waiting()).map(([callLegId]) => callLegId);
    },
    async size() {
      return (await waiting()).reduce((sum, [, length]) => sum + length, 0);
    },
    async length(callLegId) {
      return limit(redis.llen(list(callLegId)));
    },
    async lease(callLegId, owner, ms) {
      return (await limit(scripts.caQueueLease(lease(callLegId), owner, ms, 1))) === 1;
    },
    async renew(callLegId, owner, ms) {
      return (await limit(scripts.caQueueLease(lease(callLegId), owner, ms, 0))) === 1;
    },
    async releaseLease(callLegId, owner) {
      await limit(scripts.caQueueRelease(lease(callLegId), owner));
    },
  };
}
