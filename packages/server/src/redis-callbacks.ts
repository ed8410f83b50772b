import type { CallbackQueue, CallbackRegistry, DeadLetter, DeadLetterStore, GoneUriStore, PendingDelivery } from './callbacks.ts';
import { FifoMap } from './fifo-map.ts';
import { defineGatheredScript, withTimeout, type RedisClient } from './redis-common.ts';

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
  /**
   * How many of the calls this instance registered it remembers (default 10 000, the most
   * recently registered): their events are queued without asking Redis for the URI again.
   */
  remembered?: number;
}

/** A registration of the same URI again within this long is not written again. */
const rewriteAfterMs = 1_000;

/** A registration asked of a registry and not written yet, which a push of its call's event may write. */
interface UnwrittenRegistration {
  key: string;
  uri: string;
  /** Its `ttlMs`, or 0. */
  ttlMs: number;
  /** Settles the registration as the command that carries it settles (a push's script, or a SET of its own). */
  carriedBy(command: Promise<unknown>, inScript: boolean): void;
}

/**
 * Per connection to one Redis (not a Cluster), by call: the registrations asked for in this turn
 * of the event loop and not written yet (`unwritten`), and those written by a push's script and
 * not answered yet (`inScripts`). A push of the call's event on the same connection before the
 * turn's promise jobs have all run takes the registration into its script (a new call's
 * registration and first event: one round trip, one command); otherwise it is written alone
 * then. Any other command of a registry for the call writes an unwritten one first, and waits for
 * one in a script (a script Redis no longer has, after SCRIPT FLUSH or a failover, is sent again
 * once NOSCRIPT comes back, behind what was sent meanwhile), so that the commands of a call's
 * registrations take effect in the order they were asked for.
 */
interface Registrations {
  unwritten: Map<string, UnwrittenRegistration>;
  inScripts: Map<string, Promise<unknown>>;
}
const registrations = new WeakMap<object, Registrations>();

function registrationsOf(redis: RedisClient): Registrations {
  let state = registrations.get(redis);
  if (!state) registrations.set(redis, (state = { unwritten: new Map(), inScripts: new Map() }));
  return state;
}

/** The call's unwritten registration on the connection, which the caller writes from now on. */
function takeRegistration(redis: RedisClient, callLegId: string): UnwrittenRegistration | undefined {
  const unwritten = registrations.get(redis)?.unwritten;
  const registration = unwritten?.get(callLegId);
  if (registration) unwritten!.delete(callLegId);
  return registration;
}

/** Writes a registration on its own. */
function writeRegistration(redis: RedisClient, { key, uri, ttlMs }: Pick<UnwrittenRegistration, 'key' | 'uri' | 'ttlMs'>) {
  return ttlMs ? redis.set(key, uri, 'PX', ttlMs) : redis.set(key, uri);
}

/**
 * Before a registry's command for a call: sends the call's unwritten registration, and answers a
 * promise of the end of one in a push's script, if any (else nothing, so that a caller with none
 * to wait for goes on in the same promise job).
 */
function registrationsBefore(redis: RedisClient, callLegId: string): Promise<void> | undefined {
  const state = registrations.get(redis);
  if (!state) return undefined;
  const registration = takeRegistration(redis, callLegId);
  if (registration) registration.carriedBy(writeRegistration(redis, registration), false);
  return state.inScripts.get(callLegId)?.then(
    () => {},
    () => {},
  );
}

/**
 * Calls' callbackUris in Redis, so that any instance can emit a call's events: one key per call,
 * `ca:call:{<callLegId>}`, in the call's hash slot on Redis Cluster (the slot of its queued
 * events too, see createRedisCallbackQueue). The calls this instance registered (the latest
 * `remembered` of them, until their `ttlMs` ends) are answered from its memory, and the same URI
 * registered again at once (the handler's register, then the stub's) is written once: an
 * instance looks up in Redis only the calls another instance registered. A call this instance
 * registered and another unregistered is still known here, until this instance unregisters it or
 * forgets it (its `ttlMs`, or past `remembered` newer calls).
 */
export function createRedisCallbackRegistry(redis: RedisClient, options: RedisCallbackRegistryOptions = {}): CallbackRegistry {
  const prefix = options.prefix ?? 'ca:call:';
  const timeoutMs = options.timeoutMs ?? 2_000;
  const remembered = options.remembered ?? 10_000;
  const key = (callLegId: string) => `${prefix}{${callLegId}}`;
  // On one Redis, a push of the call's event in the same turn may write the registration (createRedisCallbackQueue).
  const carried = !(redis as { isCluster?: boolean }).isCluster;
  /** The end of the push that carries the call's registration, if any: a command like any, waited for as long. */
  const registrationBefore = (callLegId: string) => {
    const before = carried ? registrationsBefore(redis, callLegId) : undefined;
    return before && withTimeout(before, timeoutMs, 'a callbackUri');
  };
  /** The URIs this instance wrote, with when it sent the write, oldest first. */
  const known = new FifoMap<string, { uri: string; at: number }>();
  return {
    async set(callLegId, callbackUri) {
      const entry = known.get(callLegId);
      const sent = Date.now();
      if (entry?.uri === callbackUri && sent - entry.at < rewriteAfterMs) return;
      known.delete(callLegId);
      const before = registrationBefore(callLegId);
      if (before) await before;
      await withTimeout(write(callLegId, callbackUri), timeoutMs, 'a callbackUri');
      known.set(callLegId, { uri: callbackUri, at: sent });
      if (known.size > remembered) known.shift();
    },
    async get(callLegId) {
      const entry = known.get(callLegId);
      if (entry && !(options.ttlMs && Date.now() - entry.at >= options.ttlMs)) return entry.uri;
      const before = registrationBefore(callLegId);
      if (before) await before;
      return (await withTimeout(redis.get(key(callLegId)), timeoutMs, 'a callbackUri')) ?? undefined;
    },
    async delete(callLegId) {
      known.delete(callLegId);
      const before = registrationBefore(callLegId);
      if (before) await before;
      await withTimeout(redis.del(key(callLegId)), timeoutMs, 'a callbackUri');
    },
  };

  /** Writes the call's registration, or leaves it for a push of the call's event in this turn to write (on one Redis). */
  function write(callLegId: string, callbackUri: string): Promise<unknown> {
    if (!carried) return writeRegistration(redis, { key: key(callLegId), uri: callbackUri, ttlMs: options.ttlMs ?? 0 });
    const state = registrationsOf(redis);
    return new Promise((resolve, reject) => {
      const registration: UnwrittenRegistration = {
        key: key(callLegId),
        uri: callbackUri,
        ttlMs: options.ttlMs ?? 0,
        carriedBy(command, inScript) {
          if (inScript) {
            state.inScripts.set(callLegId, command);
            const answered = () => {
              if (state.inScripts.get(callLegId) === command) state.inScripts.delete(callLegId);
            };
            command.then(answered, answered);
          }
          command.then(resolve, reject);
        },
      };
      state.unwritten.set(callLegId, registration);
      // After the promise jobs queued meanwhile (an event emitted with the registration is pushed in one of them).
      process.nextTick(() => {
        if (state.unwritten.get(callLegId) !== registration) return;
        state.unwritten.delete(callLegId);
        registration.carriedBy(writeRegistration(redis, registration), false);
      });
    });
  }
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
  /**
   * How long an instance takes a URI that Redis said is not gone for not gone, without asking
   * again. Default 1 s; 0 asks before every attempt. A 410 that another instance got stops this
   * one's deliveries to the URI within this time (those sent meanwhile get their own 410, and are
   * dead letters as well); one this instance gets stops them at once.
   */
  cacheMs?: number;
}

/** The most URIs a gone-URI store remembers as not gone. */
const rememberedUris = 10_000;

/**
 * The callbackUris that answered 410, in Redis, so that one 410 stops delivery to the URI on
 * every instance, and a redrive on any instance clears it for all. One key per URI,
 * `ca:gone:<uri>`, expiring after `ttlMs`; each command touches one key, so it works on Redis
 * Cluster as it is. A delivery attempt asks whether its URI is gone, one EXISTS, unless this
 * instance asked about the URI less than `cacheMs` ago and it was not.
 */
export function createRedisGoneUriStore(redis: RedisClient, options: RedisGoneUriStoreOptions = {}): GoneUriStore {
  const prefix = options.prefix ?? 'ca:gone:';
  const ttlMs = options.ttlMs ?? 24 * 3_600_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  const cacheMs = options.cacheMs ?? 1_000;
  /** When (performance.now()) Redis last said each URI was not gone, asked then; oldest first, at most 10 000. */
  const notGone = new FifoMap<string, number>();
  /** How many URIs this instance has marked gone: an answer read before one of them is not kept. */
  let added = 0;
  return {
    async has(uri) {
      const asked = performance.now();
      const checked = notGone.get(uri);
      if (checked !== undefined && asked - checked < cacheMs) return false;
      const addedBefore = added;
      const gone = (await withTimeout(redis.exists(prefix + uri), timeoutMs, 'a gone callbackUri')) === 1;
      notGone.delete(uri);
      if (!gone && cacheMs > 0 && added === addedBefore) {
        notGone.set(uri, asked);
        if (notGone.size > rememberedUris) notGone.shift();
      }
      return gone;
    },
    async add(uri) {
      added++;
      notGone.delete(uri);
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
  /**
   * The most deliveries waiting in the whole queue, every call and instance together (default
   * 1 000 000); past that an event is a dead letter (`overflow`). Counted as events are pushed
   * and removed; a command that fails halfway can leave the count high, never low.
   */
  maxEntries?: number;
  /** How many calls one poll takes up at most (default 1 000); the next poll goes on from there. */
  pollBatch?: number;
  /** How long a command may take before the queue gives up on it. Default 2 s. */
  timeoutMs?: number;
}

// Per call, in the call's hash slot: `ca:q:{<id>}` a list of deliveries (JSON) oldest first, and
// `ca:q:{<id>}:lease` the instance delivering it. Scripts that change the list check the head's
// id, so that an instance that lost its lease cannot change what another delivers now.
// A push carries its deadline, as a claim of the idempotency store does: one that reaches Redis
// after the instance gave up on it (and will push the event again) is not applied, so that a
// slow Redis does not queue an event twice.
//
// Given an owner (ARGV[4], or ''), a push of a call's only event whose lease (KEYS[2]) no one
// holds takes the lease for it (ARGV[5] ms) and answers 2: the owner delivers the event at once,
// without a round trip for the lease and the head.
const pushScript = `
local time = redis.call('TIME')
if tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) > tonumber(ARGV[3]) then return -1 end
local length = redis.call('LLEN', KEYS[1])
if length >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
if ARGV[4] ~= '' and length == 0 and not redis.call('GET', KEYS[2]) then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
  return 2
end
return 1
`;

// Whether a queued delivery (JSON.stringify's text, its id first as the queue writes it) has the
// id given: by the text's beginning where the id needs no escaping, else by decoding it (decoding
// a delivery of a few kB was most of a shift's own cost in Redis).
const isHeadLua = `
local function isHead(head, id)
  local prefix = '{"id":"' .. id .. '",'
  if string.sub(head, 1, #prefix) == prefix and not string.find(id, '[\\\\"]') then return true end
  return cjson.decode(head).id == id
end
`;

const updateScript = `${isHeadLua}
local head = redis.call('LINDEX', KEYS[1], 0)
if not head or not isHead(head, ARGV[1]) then return 0 end
redis.call('LSET', KEYS[1], 0, ARGV[2])
return 1
`;

// KEYS: the call's list and lease. Answers {1 when it removed the head, 0, the head then} or,
// when the list is left empty, {1 when it removed the head, 1 when it gave up the lease of ARGV[2]
// (the owner, or '')}. With the index's keys too (one Redis, not a Cluster, where they live in
// another slot) it also counts the event off, and takes the call out of the index when its list
// is left empty: on one Redis every push indexes and queues in one script, so none can come
// between (forgetScript's grace is for the reads and pushes that are apart). ARGV: the id, or
// ''; the owner, or ''; for the index, the callLegId.
//
// With a next call's list and lease too (KEYS[6], KEYS[7]; one Redis), when this call's list is
// left empty and the owner's lease of it given up, it takes the next call's lease for the owner
// (ARGV[4] ms) if no other instance holds it and events wait there, puts off the next call's due
// time to the lease's end (ARGV[5] its callLegId, ARGV[6] the time), and answers its head as a
// fourth value: the next call's worker starts without a round trip for its lease and head.
const shiftScript = `${isHeadLua}
local first = redis.call('LRANGE', KEYS[1], 0, 1)
local head = first[1]
local removed = 0
if head and (ARGV[1] == '' or isHead(head, ARGV[1])) then
  redis.call('LPOP', KEYS[1])
  removed = 1
  if KEYS[5] and redis.call('DECR', KEYS[5]) < 0 then redis.call('SET', KEYS[5], 0) end
  head = first[2]
end
if head then return {removed, 0, head} end
local released = 0
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
  released = 1
end
if KEYS[3] then
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('ZREM', KEYS[4], ARGV[3])
end
if KEYS[6] and released == 1 then
  local nextHead = redis.call('LINDEX', KEYS[6], 0)
  if nextHead then
    local taken = redis.call('SET', KEYS[7], ARGV[2], 'PX', ARGV[4], 'NX')
    if not taken and redis.call('GET', KEYS[7]) == ARGV[2] then
      redis.call('SET', KEYS[7], ARGV[2], 'PX', ARGV[4])
      taken = true
    end
    if taken then
      local due = redis.call('ZSCORE', KEYS[4], ARGV[5])
      local ends = tonumber(ARGV[6]) + tonumber(ARGV[4])
      if due and tonumber(due) < ends then redis.call('ZADD', KEYS[4], ends, ARGV[5]) end
      return {removed, released, false, nextHead}
    end
  end
end
return {removed, released}
`;

// ARGV[3] is 1 to take a free lease, 0 only to extend one already held. Held by another, it
// answers minus the milliseconds left of that lease.
const leaseScript = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return -math.max(1, redis.call('PTTL', KEYS[1])) end
if ARGV[3] == '0' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

// Takes a lease (KEYS[1]) as leaseScript does, answering {its answer, and when taken the head of
// the call's list KEYS[2] (none when empty)}: the lease and the first read in one round trip.
const leaseHeadScript = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {-math.max(1, redis.call('PTTL', KEYS[1]))} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local head = redis.call('LINDEX', KEYS[2], 0)
if head then return {1, head} end
return {1}
`;

// Gives up a lease held by ARGV[1], answering {1, the head of the call's list (none when empty)}:
// an event pushed while the lease was held is taken up at once.
const releaseHeadScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local head = redis.call('LINDEX', KEYS[2], 0)
if head then return {1, head} end
return {1}
`;

// Beside the calls' keys, in one slot of their own (the hash tag of the index's name, so that an
// index written before them is still theirs): `ca:q:calls` every call with events, scored by its
// last push's time; `{ca:q:calls}:due` the same calls scored by when one may need an instance
// (now, on a push; a retry's time; a lease's end); `{ca:q:calls}:count` how many events wait.
// A poll reads only the due calls, a batch at a time: a call waiting for a retry, or delivered
// under another's lease, costs nothing until then.
//
// A push counts and indexes before it queues: an event is never in a list the index misses.
// ARGV: callLegId, the push's time, maxEntries. Answers 0 when the queue is full.
const indexScript = `
local count = tonumber(redis.call('GET', KEYS[3]) or '0')
if count >= tonumber(ARGV[3]) then return 0 end
redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local due = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) end
return 1
`;

// indexScript then pushScript in one, on one Redis (not a Cluster, where the call's list lives in
// another slot than the index). KEYS: index, due, count, list, lease. ARGV: callLegId, the push's
// time, maxEntries, the delivery, maxPerCall, the deadline, the owner or '', the lease's ms.
// Answers as pushScript does, 0 also when the queue is full; nothing is written unless the event
// is queued, and it is counted, indexed and due before it is in the list. A call whose lease is
// held (by this push, or by an instance delivering it, which takes up what is pushed meanwhile)
// is due when the lease would end at the latest: polls leave it to its owner, and take it up only
// if the owner dies. Any other is due at once.
//
// With a sixth key, the call's key in the registry, it also writes the call's callbackUri there
// (ARGV[9]; ARGV[10] its time to live in ms, or 0), whether or not the event is queued (unless
// late: then nothing is written).
const indexPushScript = `
local time = redis.call('TIME')
if tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) > tonumber(ARGV[6]) then return -1 end
if KEYS[6] then
  if ARGV[10] == '0' then redis.call('SET', KEYS[6], ARGV[9]) else redis.call('SET', KEYS[6], ARGV[9], 'PX', ARGV[10]) end
end
if tonumber(redis.call('GET', KEYS[3]) or '0') >= tonumber(ARGV[3]) then return 0 end
local length = redis.call('LLEN', KEYS[4])
if length >= tonumber(ARGV[5]) then return 0 end
redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if ARGV[7] ~= '' and length == 0 and redis.call('SET', KEYS[5], ARGV[7], 'PX', ARGV[8], 'NX') then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[8]), ARGV[1])
  redis.call('RPUSH', KEYS[4], ARGV[4])
  return 2
end
local at = tonumber(ARGV[2]) + math.max(0, redis.call('PTTL', KEYS[5]))
local due = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not due or tonumber(due) > at then redis.call('ZADD', KEYS[2], at, ARGV[1]) end
redis.call('RPUSH', KEYS[4], ARGV[4])
return 1
`;


// A call whose list was found empty leaves the index only if its last push is a while ago: a
// push since the list was read has refreshed the score, and keeps it (due again once that while
// has passed, to be looked at once more).
const forgetScript = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) < tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
redis.call('ZADD', KEYS[2], tonumber(score) + tonumber(ARGV[3]), ARGV[1])
return 0
`;

// The due calls of a poll: ARGV[2] of them from offset ARGV[3], due by ARGV[1]. The two sets hold
// the same calls; where their sizes differ, a version of the queue without the due set has
// indexed or forgotten calls: the union makes the calls it indexed due at once (it keeps every
// due time and gives the others 0), the intersection drops those it forgot.
const dueScript = `
if redis.call('ZCARD', KEYS[1]) ~= redis.call('ZCARD', KEYS[2]) then
  redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1], 'WEIGHTS', 1, 0, 'AGGREGATE', 'MAX')
  redis.call('ZINTERSTORE', KEYS[2], 2, KEYS[2], KEYS[1], 'WEIGHTS', 1, 0, 'AGGREGATE', 'MAX')
end
return redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', ARGV[3], ARGV[2])
`;

// Brings a call's due time forward to ARGV[2] (an instance handing it over at shutdown).
const hurryScript = `
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) > tonumber(ARGV[2]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
return 1
`;

// An event off the queue. Never below 0: events queued before the count existed are not in it.
const uncountScript = `
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 1
`;

// Puts off a call's due time to ARGV[2], if it is indexed and due sooner.
const deferScript = `
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) < tonumber(ARGV[2]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
return 1
`;

/** indexPushScript's own keys and arguments (its sixth key and ninth and tenth arguments, a registration's, apart). */
type IndexPushKeys = [index: string, due: string, count: string, list: string, lease: string];
type IndexPushArgv = [callLegId: string, time: number, max: number, delivery: string, maxPerCall: number, deadline: number, owner: string, ms: number];

interface QueueScripts {
  caQueuePush(list: string, lease: string, delivery: string, max: number, deadline: number, owner: string, ms: number): Promise<number>;
  caQueueUpdate(list: string, id: string, delivery: string): Promise<number>;
  caQueueLeaseHead(lease: string, list: string, owner: string, ms: number): Promise<[number, string?]>;
  caQueueReleaseHead(lease: string, list: string, owner: string): Promise<[number, string?]>;
  caQueueLease(lease: string, owner: string, ms: number, take: 0 | 1): Promise<number>;
  caQueueIndex(index: string, due: string, count: string, callLegId: string, time: number, max: number): Promise<number>;
  caQueueForget(index: string, due: string, callLegId: string, staleBefore: number, graceMs: number): Promise<number>;
  caQueueDefer(due: string, callLegId: string, until: number): Promise<number>;
  caQueueHurry(due: string, callLegId: string, until: number): Promise<number>;
  caQueueDue(index: string, due: string, now: number, batch: number, offset: number): Promise<string[]>;
  caQueueUncount(count: string): Promise<number>;
}

/**
 * A callback queue in Redis, shared by every instance: durable (a shutdown leaves events queued
 * for the others), in order per call, with per-call leases so that one instance at a time
 * delivers a call, and another takes over when the lease of one that died expires. Each call's
 * keys share its hash tag, `ca:q:{<callLegId>}`, so the queue works on Redis Cluster. Polls read
 * only the calls due (`pollBatch` at a time), whatever the number waiting.
 */
export function createRedisCallbackQueue(redis: RedisClient, options: RedisCallbackQueueOptions = {}): CallbackQueue {
  const prefix = options.prefix ?? 'ca:q:';
  const index = `${prefix}calls`;
  const dueKey = `{${index}}:due`;
  const countKey = `{${index}}:count`;
  const list = (callLegId: string) => `${prefix}{${callLegId}}`;
  const lease = (callLegId: string) => `${prefix}{${callLegId}}:lease`;
  const max = options.maxPerCall ?? 10_000;
  const maxEntries = options.maxEntries ?? 1_000_000;
  const pollBatch = options.pollBatch ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  // A call found empty by a read apart from the pushes (a poll, a head, a lease, and on a Cluster
  // every shift) stays indexed this long after its last push: longer than a push takes.
  const emptyGraceMs = 60_000;
  redis.defineCommand('caQueuePush', { numberOfKeys: 2, lua: pushScript });
  redis.defineCommand('caQueueUpdate', { numberOfKeys: 1, lua: updateScript });
  // A shift's keys: the call's list and lease; on one Redis the index's three keys too, and the
  // next call's list and lease when it hands its slot on. The shifts of one turn are one command
  // on one Redis, as are the pushes (see defineGatheredScript).
  const shiftScripts = defineGatheredScript<[removed: number, released: number, head?: string | null, nextHead?: string]>(redis, 'caQueueShift', shiftScript);
  redis.defineCommand('caQueueLeaseHead', { numberOfKeys: 2, lua: leaseHeadScript });
  redis.defineCommand('caQueueReleaseHead', { numberOfKeys: 2, lua: releaseHeadScript });
  // Five keys, or six with a registration.
  const indexPush = defineGatheredScript<number>(redis, 'caQueueIndexPush', indexPushScript);
  redis.defineCommand('caQueueLease', { numberOfKeys: 1, lua: leaseScript });
  redis.defineCommand('caQueueIndex', { numberOfKeys: 3, lua: indexScript });
  redis.defineCommand('caQueueForget', { numberOfKeys: 2, lua: forgetScript });
  redis.defineCommand('caQueueDefer', { numberOfKeys: 1, lua: deferScript });
  redis.defineCommand('caQueueHurry', { numberOfKeys: 1, lua: hurryScript });
  redis.defineCommand('caQueueDue', { numberOfKeys: 2, lua: dueScript });
  redis.defineCommand('caQueueUncount', { numberOfKeys: 1, lua: uncountScript });
  const scripts = redis as unknown as QueueScripts;
  const limit = <T>(command: Promise<T>) => withTimeout(command, timeoutMs, 'the callback queue');
  /** Where this instance's polls go on from: an offset among the due calls. */
  let cursor = 0;
  // On one Redis a script may touch a call's keys and the index's together: a push, or a shift
  // with its count and index, is then one round trip. A Cluster keeps them in different slots.
  const single = !(redis as { isCluster?: boolean }).isCluster;
  const parse = (text: string | undefined) => (text ? (JSON.parse(text) as PendingDelivery) : undefined);

  /** The calls with events waiting and how many each has; forgets calls long empty. */
  async function waiting(): Promise<Array<[string, number]>> {
    const calls = await limit(redis.zrange(index, '0', '-1'));
    // One command per call: on Redis Cluster the lists live on different nodes.
    const lengths = await Promise.all(calls.map((callLegId) => limit(redis.llen(list(callLegId)))));
    await Promise.all(calls.map((callLegId, i) => (lengths[i] === 0 ? forget(callLegId) : undefined)));
    return calls.flatMap((callLegId, i): Array<[string, number]> => (lengths[i]! > 0 ? [[callLegId, lengths[i]!]] : []));
  }

  function forget(callLegId: string) {
    return limit(scripts.caQueueForget(index, dueKey, callLegId, Date.now() - emptyGraceMs, emptyGraceMs));
  }

  /** Counts an event off the queue; a failure leaves the count high, which errs toward overflow. */
  function uncount() {
    void limit(scripts.caQueueUncount(countKey)).catch(() => {});
  }

  return {
    durable: true,
    takesNext: single,
    async push(delivery, leaseFor) {
      const sent = Date.now();
      const { callLegId } = delivery;
      const owner = leaseFor?.owner ?? '';
      const ms = leaseFor?.ms ?? 0;
      let pushed: number;
      if (single) {
        const body = JSON.stringify(delivery);
        // A registration of the call asked for in this turn is written with the event.
        const registration = takeRegistration(redis, callLegId);
        const keys: IndexPushKeys = [index, dueKey, countKey, list(callLegId), lease(callLegId)];
        const argv: IndexPushArgv = [callLegId, sent, maxEntries, body, max, sent + timeoutMs, owner, ms];
        const [registered, registering] = registration ? [[registration.key], [registration.uri, registration.ttlMs]] : [[], []];
        const command = indexPush([...keys, ...registered], [...argv, ...registering]);
        registration?.carriedBy(
          command.then((answer) => {
            if (answer === -1) throw new Error(`Redis refused the callbackUri of call ${callLegId} as late (${Date.now() - sent} ms after it was sent).`);
          }),
          true,
        );
        pushed = await limit(command);
      } else {
        if ((await limit(scripts.caQueueIndex(index, dueKey, countKey, callLegId, sent, maxEntries))) === 0) return false;
        // A push that fails leaves the count as it is: whether it was queued is not known.
        pushed = await limit(scripts.caQueuePush(list(callLegId), lease(callLegId), JSON.stringify(delivery), max, sent + timeoutMs, owner, ms));
        if (pushed !== 1 && pushed !== 2) uncount();
      }
      if (pushed === -1) throw new Error(`Redis refused event ${delivery.id} as late (${Date.now() - sent} ms after it was sent). Are the clocks of this instance and Redis apart?`);
      return pushed === 2 ? 'leased' : pushed === 1;
    },
    async head(callLegId) {
      const head = await limit(redis.lindex(list(callLegId), 0));
      if (head) return JSON.parse(head) as PendingDelivery;
      // Empty: not due again unless pushed to (or the grace ends, to be forgotten then).
      await forget(callLegId);
      return undefined;
    },
    async update(delivery) {
      await limit(scripts.caQueueUpdate(list(delivery.callLegId), delivery.id, JSON.stringify(delivery)));
    },
    async shift(callLegId, id, owner, next) {
      if (single && next && owner) {
        const [, released, head, nextHead] = await limit(
          shiftScripts(
            [list(callLegId), lease(callLegId), index, dueKey, countKey, list(next.callLegId), lease(next.callLegId)],
            [id ?? '', owner, callLegId, next.ms, next.callLegId, Date.now()],
          ),
        );
        return { head: parse(head ?? undefined), released: released === 1, ...(nextHead ? { next: parse(nextHead) } : {}) };
      }
      if (single) {
        const [, released, head] = await limit(shiftScripts([list(callLegId), lease(callLegId), index, dueKey, countKey], [id ?? '', owner ?? '', callLegId]));
        return { head: parse(head ?? undefined), released: released === 1 };
      }
      const [removed, released, head] = await limit(shiftScripts([list(callLegId), lease(callLegId)], [id ?? '', owner ?? '']));
      if (removed === 1) uncount();
      // Empty: not due again unless pushed to (a hint; a poll that finds it empty forgets it too).
      if (!head) void forget(callLegId).catch(() => {});
      return { head: parse(head ?? undefined), released: released === 1 };
    },
    async calls() {
      return (await waiting()).map(([callLegId]) => callLegId);
    },
    async size() {
      return (await waiting()).reduce((sum, [, length]) => sum + length, 0);
    },
    async counted() {
      return Number((await limit(redis.get(countKey))) ?? 0);
    },
    async length(callLegId) {
      return limit(redis.llen(list(callLegId)));
    },
    async due() {
      const calls = await limit(scripts.caQueueDue(index, dueKey, Date.now(), pollBatch, cursor));
      // A full batch: the next poll goes on after it (a call taken up now is due later, and
      // leaves the range); a short one: the next starts again from the earliest.
      cursor = calls.length === pollBatch ? cursor + pollBatch : 0;
      return calls;
    },
    async defer(callLegId, until) {
      await limit(scripts.caQueueDefer(dueKey, callLegId, until));
    },
    async lease(callLegId, owner, ms) {
      const [taken, head] = await limit(scripts.caQueueLeaseHead(lease(callLegId), list(callLegId), owner, ms));
      // Another instance delivers it: polls skip it till its lease would end.
      if (taken < 0) await limit(scripts.caQueueDefer(dueKey, callLegId, Date.now() - taken)).catch(() => {});
      if (taken !== 1) return false;
      // Empty: not due again unless pushed to (or the grace ends, to be forgotten then).
      if (!head) await forget(callLegId);
      return { head: parse(head) };
    },
    async renew(callLegId, owner, ms) {
      return (await limit(scripts.caQueueLease(lease(callLegId), owner, ms, 0))) === 1;
    },
    async releaseLease(callLegId, owner, handOver) {
      const [, head] = await limit(scripts.caQueueReleaseHead(lease(callLegId), list(callLegId), owner));
      // Another instance takes it up at its next poll, whatever due time polls had put off to.
      if (handOver) await limit(scripts.caQueueHurry(dueKey, callLegId, Date.now()));
      return { head: parse(head) };
    },
  };
}
