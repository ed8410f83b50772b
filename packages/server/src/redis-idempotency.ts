import type { Claim, IdempotencyStore, StoredReply } from './idempotency.ts';
import { defineGatheredScript, withTimeout, type RedisClient } from './redis-common.ts';

export interface RedisIdempotencyStoreOptions {
  /** How long after a request was first sent its answer is honoured. Default 10 minutes, as the spec documents. */
  lifetimeMs?: number;
  /** Put before every key. Default `ca:idem:`. */
  prefix?: string;
  /**
   * How long a request waits for Redis before the store gives up (the API then answers 503 with
   * Retry-After). Default 1 s. A claim carries this deadline to Redis, which refuses to apply one
   * that arrives later (a command ioredis queued while Redis was away), so that a request answered
   * 503 leaves no claim behind to answer its retry 409.
   */
  timeoutMs?: number;
}

// One hash per request id: `fingerprint` from the claim, `reply` once answered. Expiry is set once,
// by the claim; HSET leaves a key's expiry as it is, so `complete` keeps it (KEEPTTL's effect
// for a hash). The deadline is compared with Redis's clock: instances and Redis must agree on
// the time within `timeoutMs`, as the stored answers' expiry already assumes.
const claimScript = `
local held = redis.call('HMGET', KEYS[1], 'fingerprint', 'reply')
if held[1] then return {'held', held[1], held[2]} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if now > tonumber(ARGV[3]) then return {'late', tostring(now)} end
redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return {'claimed'}
`;

// Only a key that is still held takes an answer; one that expired meanwhile stays gone.
const completeScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'reply', ARGV[1]) end
return 1
`;

type ClaimAnswer = [state: string, held?: string, reply?: string | null];

/**
 * Repeatable requests' answers in Redis, shared by every instance. `claim` is one script, so
 * two instances claiming one id at once cannot both win. Each request id is one key and each
 * script touches only that key, so the store works on Redis Cluster as it is: no hash tag is
 * needed. Redis must not evict keys (`maxmemory-policy noeviction`): an answer forgotten early
 * would let a repeat create a second call. A Redis that is down, full or slow makes `claim`
 * throw, which the service answers with 503 and Retry-After. On one Redis, the claims asked for
 * on a connection in one turn of the event loop go as one command, and so do the answers.
 */
export function createRedisIdempotencyStore(redis: RedisClient, options: RedisIdempotencyStoreOptions = {}): IdempotencyStore {
  const prefix = options.prefix ?? 'ca:idem:';
  const timeoutMs = options.timeoutMs ?? 1_000;
  // The claims of one turn are one command, and so are the answers (on one Redis; see defineGatheredScript).
  const claim = defineGatheredScript<ClaimAnswer>(redis, 'caIdempotencyClaim', claimScript);
  const store = defineGatheredScript<number>(redis, 'caIdempotencyComplete', completeScript);
  return {
    lifetimeMs: options.lifetimeMs ?? 10 * 60_000,
    async claim(key, fingerprint, expires): Promise<Claim> {
      const sent = Date.now();
      const [state, held, reply] = await withTimeout(claim([prefix + key], [fingerprint, expires, sent + timeoutMs]), timeoutMs, 'a repeatable request');
      if (state === 'claimed') return { state: 'claimed' };
      if (state === 'late') {
        throw new Error(`Redis refused a claim as late: its clock reads ${held}, ${Number(held) - sent} ms after the claim was sent. Are the clocks of this instance and Redis apart?`);
      }
      if (reply) return { state: 'done', fingerprint: held!, reply: JSON.parse(reply) as StoredReply };
      return { state: 'pending', fingerprint: held! };
    },
    async complete(key, reply) {
      await withTimeout(store([prefix + key], [JSON.stringify(reply)]), timeoutMs, 'a stored answer');
    },
    async release(key) {
      await withTimeout(redis.del(prefix + key), timeoutMs, 'a released request id');
    },
  };
}
