import type { Cluster, Redis } from 'ioredis';
import { withTimeout } from '@call-automation/server/redis';
import type { CallRecord, SimulatorState, Timer } from './state.ts';

export interface RedisStateOptions {
  /** Put before every key. Default `ca:sim:`. */
  prefix?: string;
  /**
   * How often this instance looks for timers that are due, its own and those of other instances
   * (one that died, one that scheduled a timer and stopped). Its own fire at their time. Default 100 ms.
   */
  pollIntervalMs?: number;
  /**
   * How long a timer taken by an instance is its alone: one that dies while running a timer leaves
   * it to another after this. Default 5 s. One that stops hands back at once the timers it took and
   * did not fire.
   */
  claimMs?: number;
  /** A call not changed for this long is forgotten (an instance died before it ended). Default 24 h. */
  callTtlMs?: number;
  /** How long a command may take before it is given up (the request answers 503). Default 2 s. */
  timeoutMs?: number;
  /** Where failures of the timers' polling are reported (once per outage). Default console.warn. */
  log?: (line: string) => void;
}

// A call is a hash `ca:sim:call:{<id>}` of its version `v` and its record `d` (JSON), in its own
// slot on Redis Cluster. Writes compare the version, so two instances changing one call at once
// cannot lose either change. A write whose events are still on their way holds the call with a
// key of the same slot, `ca:sim:hold:{<id>}` (its token, expiring), set with the version it made:
// a read answers how long the hold has left.
const getScript = `
local call = redis.call('HMGET', KEYS[1], 'v', 'd')
return {call[1], call[2], redis.call('PTTL', KEYS[2])}
`;

const putScript = `
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', tonumber(ARGV[1]) + 1, 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] then redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5]) end
return 1
`;

const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

const removeScript = `
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '0') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`;

// Timers: ids in a sorted set by due time, their data in a hash, both under one hash tag. Taking
// the due ones pushes their time `claimMs` on, so that another instance takes them only if this
// one has not said they are done by then.
const claimScript = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
if #due == 0 then return {} end
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return redis.call('HMGET', KEYS[2], unpack(due))
`;

const scheduleScript = `
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
`;

const doneScript = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`;

const cancelScript = `
for _, id in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return 1
`;

interface Scripts {
  caSimGet(key: string, hold: string): Promise<[string | null, string | null, number]>;
  caSimPut(key: string, hold: string, version: number, data: string, ttl: number, token?: string, holdMs?: number): Promise<number>;
  caSimRelease(hold: string, token: string): Promise<number>;
  caSimRemove(key: string, version: number): Promise<number>;
  caSimClaim(due: string, data: string, now: number, until: number, limit: number): Promise<Array<string | null>>;
  caSimSchedule(due: string, data: string, id: string, at: number, timer: string): Promise<number>;
  caSimDone(due: string, data: string, id: string): Promise<number>;
  caSimCancel(due: string, data: string, ...ids: string[]): Promise<number>;
}

/**
 * The simulator's calls and timers in Redis, shared by every instance given the same Redis: any
 * instance serves any call, and a timer fires on whichever instance takes it first, also when the
 * one that scheduled it has died. Timers fire at least once; the simulator makes a second firing
 * do nothing. Keys are ready for Redis Cluster: a call's hash has its own slot; the index of calls
 * and the timers each have one.
 */
export function createRedisState(redis: Redis | Cluster, options: RedisStateOptions = {}): SimulatorState {
  const prefix = options.prefix ?? 'ca:sim:';
  const callKey = (id: string) => `${prefix}call:{${id}}`;
  const holdKey = (id: string) => `${prefix}hold:{${id}}`;
  const index = `${prefix}calls`;
  const timerTag = `{${prefix}timers}`;
  const dueKey = `${timerTag}due`;
  const dataKey = `${timerTag}data`;
  const declining = `${prefix}declining`;
  const pollIntervalMs = options.pollIntervalMs ?? 100;
  const claimMs = options.claimMs ?? 5_000;
  const callTtlMs = options.callTtlMs ?? 24 * 3_600_000;
  const timeoutMs = options.timeoutMs ?? 2_000;
  const log = options.log ?? ((line: string) => console.warn(line));
  redis.defineCommand('caSimGet', { numberOfKeys: 2, lua: getScript });
  redis.defineCommand('caSimPut', { numberOfKeys: 2, lua: putScript });
  redis.defineCommand('caSimRelease', { numberOfKeys: 1, lua: releaseScript });
  redis.defineCommand('caSimRemove', { numberOfKeys: 1, lua: removeScript });
  redis.defineCommand('caSimClaim', { numberOfKeys: 2, lua: claimScript });
  redis.defineCommand('caSimSchedule', { numberOfKeys: 2, lua: scheduleScript });
  redis.defineCommand('caSimDone', { numberOfKeys: 2, lua: doneScript });
  redis.defineCommand('caSimCancel', { numberOfKeys: 2, lua: cancelScript });
  const scripts = redis as unknown as Scripts;

  /** `command`'s answer, or a RedisTimeoutError after `timeoutMs` (ioredis queues commands while it reconnects). */
  const limit = <T>(command: Promise<T>) => withTimeout(command, timeoutMs, "the simulator's state");

  let onTimer: ((timer: Timer) => Promise<void>) | undefined;
  let poller: ReturnType<typeof setInterval> | undefined;
  /** This instance's own timers, fired at their time rather than at the next poll. */
  const soon = new Set<ReturnType<typeof setTimeout>>();
  const running = new Set<Promise<void>>();
  let polling = false;
  let again = false;
  let failing = false;

  /** Takes the timers due and fires them: one call's in their order, calls side by side. */
  async function poll() {
    if (!onTimer) return;
    if (polling) {
      again = true;
      return;
    }
    polling = true;
    try {
      do {
        again = false;
        const now = Date.now();
        const taken = await limit(scripts.caSimClaim(dueKey, dataKey, now, now + claimMs, 256));
        const byCall = new Map<string, Timer[]>();
        for (const text of taken) {
          if (!text) continue;
          const timer = JSON.parse(text) as Timer;
          const list = byCall.get(timer.callLegId);
          if (list) list.push(timer);
          else byCall.set(timer.callLegId, [timer]);
        }
        for (const timers of byCall.values()) {
          const run = (async () => {
            for (const timer of timers.sort((a, b) => a.at - b.at)) {
              if (onTimer) await onTimer(timer);
              // Stopped meanwhile: handed back, due at its time, for another instance's next poll
              // rather than once this one's claim lapses (a Redis failing leaves it to the claim).
              else await limit(redis.zadd(dueKey, 'XX', String(timer.at), timer.id)).catch(() => {});
            }
          })();
          running.add(run);
          void run.finally(() => running.delete(run));
        }
        if (taken.length === 256) again = true;
      } while (again && onTimer);
      if (failing) log('Simulator timers can be read from Redis again.');
      failing = false;
    } catch (error) {
      if (!failing) log(`Simulator timers cannot be read from Redis: ${(error as Error).message}`);
      failing = true;
    } finally {
      polling = false;
    }
  }

  return {
    shared: true,
    async get(callLegId) {
      const [version, data, heldMs] = await limit(scripts.caSimGet(callKey(callLegId), holdKey(callLegId)));
      if (!version || !data) return undefined;
      return { call: JSON.parse(data) as CallRecord, version: Number(version), ...(heldMs > 0 && { heldMs }) };
    },
    async put(call, version, hold) {
      // A new call is indexed first: the index may name a call not written (yet, or ever), never the reverse.
      if (version === 0) await limit(redis.zadd(index, String(Date.now()), call.callLegId));
      const { callLegId } = call;
      const written = hold
        ? scripts.caSimPut(callKey(callLegId), holdKey(callLegId), version, JSON.stringify(call), callTtlMs, hold.token, hold.ms)
        : scripts.caSimPut(callKey(callLegId), holdKey(callLegId), version, JSON.stringify(call), callTtlMs);
      return (await limit(written)) === 1;
    },
    async release(callLegId, token) {
      await limit(scripts.caSimRelease(holdKey(callLegId), token));
    },
    async remove(callLegId, version) {
      const removed = (await limit(scripts.caSimRemove(callKey(callLegId), version))) === 1;
      if (removed) await limit(redis.zrem(index, callLegId));
      return removed;
    },
    async list() {
      const ids = await limit(redis.zrange(index, '0', '-1'));
      // One command per call: on Redis Cluster the calls live on different nodes.
      const records = await Promise.all(ids.map((id) => limit(redis.hget(callKey(id), 'd'))));
      const gone = ids.filter((_, i) => !records[i]);
      if (gone.length) await limit(redis.zrem(index, ...gone));
      return records.flatMap((text) => (text ? [JSON.parse(text) as CallRecord] : []));
    },
    async count() {
      return limit(redis.zcard(index));
    },
    async oldest() {
      for (;;) {
        const [id] = await limit(redis.zrange(index, '0', '0'));
        if (id === undefined) return undefined;
        if (await limit(redis.exists(callKey(id)))) return id;
        // Expired, or indexed by a create that failed: not a call.
        await limit(redis.zrem(index, id));
      }
    },
    async schedule(timer) {
      await limit(scripts.caSimSchedule(dueKey, dataKey, timer.id, timer.at, JSON.stringify(timer)));
      if (!onTimer) return;
      const handle = setTimeout(() => {
        soon.delete(handle);
        void poll();
      }, Math.max(0, timer.at - Date.now()));
      soon.add(handle);
    },
    async done(timer) {
      await limit(scripts.caSimDone(dueKey, dataKey, timer.id));
    },
    async postpone(timer, ms) {
      // Only while it is still scheduled: one done meanwhile stays done.
      await limit(redis.zadd(dueKey, 'XX', String(Date.now() + ms), timer.id));
      const handle = setTimeout(() => {
        soon.delete(handle);
        void poll();
      }, ms);
      soon.add(handle);
    },
    async cancel(timerIds) {
      if (timerIds.length) await limit(scripts.caSimCancel(dueKey, dataKey, ...timerIds));
    },
    async decline(rawId) {
      await limit(redis.sadd(declining, rawId));
    },
    async declines(rawIds) {
      if (rawIds.length === 0) return [];
      const answers = await limit(redis.smismember(declining, ...rawIds));
      return answers.map((answer) => answer === 1);
    },
    start(handler) {
      onTimer = handler;
      poller = setInterval(() => void poll(), pollIntervalMs);
      poller.unref?.();
      void poll();
    },
    async stop() {
      onTimer = undefined;
      clearInterval(poller);
      for (const handle of soon) clearTimeout(handle);
      soon.clear();
      await Promise.allSettled([...running]);
    },
  };
}
