import type { ReplayStore, ReplayVerdict } from './auth.ts';
import { withTimeout, type RedisClient } from './redis-common.ts';

export interface RedisReplayStoreOptions {
  /**
   * The most signatures held at once, across every instance (default 1 000 000, about 170 bytes
   * each in Redis, as measured with the default prefix: 170 MB). Past that a new signature is refused, 503 with Retry-After until the earliest
   * held one expires, rather than fill Redis: the stores of idempotent create and of callback
   * deliveries share its memory, and with noeviction a full Redis would refuse them too.
   */
  maxEntries?: number;
  /** Put before every key, inside the hash tag. Default `ca:replay:`. */
  prefix?: string;
  /**
   * How many parts the cache is split into, each in a hash slot of its own, a signature's part
   * chosen by its bytes; each holds its share of `maxEntries`. Default 1: every key shares the tag
   * `{ca:replay:}`, one slot, on one node of a Redis Cluster. On a Cluster, 16 or more spread the
   * cache and its load over the nodes (`{ca:replay:0}` … `{ca:replay:15}`). Every instance must
   * use the same number: a signature recorded in one layout is not looked up in another.
   */
  shards?: number;
  /**
   * How long a request waits for Redis before the store gives up (the API then answers 503 with
   * `Retry-After: 1`). Default 1 s. As the idempotency store's claim does, a check carries this
   * deadline to Redis, which does not apply one that arrives later (queued while Redis was away).
   */
  timeoutMs?: number;
}

// Each signature is a key (`{ca:replay:}<signature>`) that expires when its x-ms-date leaves the
// window; beside them a hash counts the held ones by the second they expire in, with the total,
// so that the bound is exact and a full store knows when it has room again. The signature is
// checked and set, and counted, by one script, so a signature's key and its count share one hash
// tag: on Redis Cluster one slot, on one node, unless `shards` splits the cache into parts, each
// a tag (`{ca:replay:<n>}`) with its keys, its count and its share of the bound.
// Expired seconds are dropped from the count at most once a second of Redis's clock, reading the
// hash (one field per second of the window, about 1 800 at most); the earliest second left is
// kept beside them, so that a full store answers when it has room without reading them.
const rememberScript = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if now > tonumber(ARGV[3]) then return {'late', tostring(now)} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'replayed'} end
local current = math.floor(now / 1000)
local total = tonumber(redis.call('HGET', KEYS[2], 'total') or '0')
local earliest = tonumber(redis.call('HGET', KEYS[2], 'earliest') or '0')
if tonumber(redis.call('HGET', KEYS[2], 'pruned') or '-1') < current then
  local fields = redis.call('HGETALL', KEYS[2])
  earliest = 0
  for i = 1, #fields, 2 do
    local second = tonumber(fields[i])
    if second and second <= current then
      total = total - tonumber(fields[i + 1])
      redis.call('HDEL', KEYS[2], fields[i])
    elseif second and (earliest == 0 or second < earliest) then
      earliest = second
    end
  end
  redis.call('HSET', KEYS[2], 'pruned', current, 'total', total, 'earliest', earliest)
end
if total >= tonumber(ARGV[2]) then
  return {'full', tostring(earliest > 0 and math.max(0, earliest * 1000 - now) or 1000)}
end
local expires = math.max(tonumber(ARGV[1]), now + 1)
local second = math.ceil(expires / 1000)
redis.call('SET', KEYS[1], '1')
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('HINCRBY', KEYS[2], tostring(second), 1)
redis.call('HINCRBY', KEYS[2], 'total', 1)
if earliest == 0 or second < earliest then redis.call('HSET', KEYS[2], 'earliest', second) end
return {'recorded'}
`;

interface ReplayScripts {
  caReplayRemember(signature: string, counts: string, expires: number, max: number, deadline: number): Promise<[string, string?]>;
}

const recorded: ReplayVerdict = Object.freeze({ state: 'recorded' });
const replayed: ReplayVerdict = Object.freeze({ state: 'replayed' });

/**
 * The replay cache of `auth.refuseReplays` in Redis, shared by every instance: a signature one
 * instance accepted is refused by every other until its x-ms-date leaves the window. The check
 * and the record are one script (SET NX PX, in effect), so two instances given one signature at
 * once accept it once. Bounded by `maxEntries`; a Redis that is down, slow or failing makes the
 * request answer 503 with `Retry-After: 1`, never 500 or a hang.
 */
export function createRedisReplayStore(redis: RedisClient, options: RedisReplayStoreOptions = {}): ReplayStore {
  const prefix = options.prefix ?? 'ca:replay:';
  const max = options.maxEntries ?? 1_000_000;
  if (!(max >= 1)) throw new RangeError(`maxEntries must be at least 1, not ${max}.`);
  const shards = options.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > max) throw new RangeError(`shards must be a whole number from 1 to maxEntries (${max}), not ${shards}.`);
  // Each part's tag, and its share of the bound: together exactly maxEntries.
  const parts = Array.from({ length: shards }, (_, n) => {
    const tag = shards === 1 ? `{${prefix}}` : `{${prefix}${n}}`;
    return { tag, counts: `${tag}counts`, max: Math.floor(max / shards) + (n < max % shards ? 1 : 0) };
  });
  const timeoutMs = options.timeoutMs ?? 1_000;
  redis.defineCommand('caReplayRemember', { numberOfKeys: 2, lua: rememberScript });
  const scripts = redis as unknown as ReplayScripts;
  return {
    async remember(signature, expires) {
      const sent = Date.now();
      const part = parts[shards === 1 ? 0 : partOf(signature, shards)]!;
      const [state, detail] = await withTimeout(scripts.caReplayRemember(part.tag + signature, part.counts, expires, part.max, sent + timeoutMs), timeoutMs, 'a signature check');
      if (state === 'recorded') return recorded;
      if (state === 'replayed') return replayed;
      if (state === 'full') return { state: 'full', retryAfterMs: Number(detail) };
      throw new Error(`Redis refused a signature check as late: its clock reads ${detail}, ${Number(detail) - sent} ms after the check was sent. Are the clocks of this instance and Redis apart?`);
    },
  };
}

/** A signature's part: FNV-1a of its characters (a signature is base64, already evenly spread). */
function partOf(signature: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < signature.length; i++) hash = Math.imul(hash ^ signature.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % shards;
}
