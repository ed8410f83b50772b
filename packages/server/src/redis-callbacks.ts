import type { CallbackRegistry, DeadLetter, DeadLetterStore } from './callbacks.ts';
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
