import type { Cluster, Redis } from 'ioredis';

/** An ioredis connection: one Redis, or a Cluster. ioredis itself is an optional peer dependency. */
export type RedisClient = Redis | Cluster;

/** Thrown when Redis does not answer within a store's time limit. */
export class RedisTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`Redis did not answer ${what} within ${ms} ms.`);
    this.name = 'RedisTimeoutError';
  }
}

/**
 * Thrown for a command ioredis did not send because its connection to Redis is down (with
 * `enableOfflineQueue: false`, or once the connection is closed); ioredis reconnects by itself.
 * `cause` is ioredis's own error.
 */
export class RedisUnavailableError extends Error {
  constructor(what: string, cause: unknown) {
    super(`Redis is not connected (ioredis is reconnecting), so ${what} could not be read or written.`, { cause });
    this.name = 'RedisUnavailableError';
  }
}

/** ioredis's errors for a command it did not send: its connection is down (their messages are all it gives to tell them by). */
const notSent = /^(Stream isn't writeable and enableOfflineQueue options is false|Connection is closed\.?)$/;

/**
 * `command`'s answer, or a RedisTimeoutError after `ms`; a command ioredis did not send, its
 * connection being down, rejects with a RedisUnavailableError that says so. ioredis queues
 * commands while it reconnects (unless `enableOfflineQueue: false`) and `commandTimeout` is off by
 * default, so a store cannot count on the connection's settings to bound a request's wait.
 */
export function withTimeout<T>(command: Promise<T>, ms: number, what: string): Promise<T> {
  // One promise and one timer per command (every store command goes through here): a command
  // given up on may still settle later, and is not heard then.
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new RedisTimeoutError(what, ms)), ms);
    command.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error && notSent.test(error.message) ? new RedisUnavailableError(what, error) : error);
      },
    );
  });
}

const batched = new WeakSet<Redis>();

export interface BatchWritesOptions {
  /**
   * The most commands one write carries. Default 16. Past it the batch is written at once and
   * the turn's next commands start another, so that Redis works on a busy turn's first commands
   * while the service is still issuing the rest, rather than the service waiting, idle, for the
   * whole turn's batch to come back (measured when each request sent three commands: 0.93 of a
   * core busy against 0.88 with one write a turn; with the stores' scripts gathered the benches
   * read the two within their spread). `Infinity`: one write a turn, however many.
   */
  maxCommands?: number;
}

/**
 * Makes an ioredis connection send the commands issued in one turn of the event loop together,
 * in writes of at most `maxCommands`: the first command of a batch corks the socket, and it is
 * uncorked once the batch is full or the turn's I/O callbacks have run (setImmediate), so that
 * the commands of the requests served in that turn go out together (node-redis batches likewise,
 * within a tick). The commands, their order and their answers are the same; what changes is the
 * number of system calls on both sides, which counts where requests send many commands (the
 * simulator's bench on Redis: redis-server's CPU a request 0.70 to 0.78 of what it is without;
 * the stores' own scripts are gathered, see GatheredScript, and gain little more). On a
 * Cluster, every node's connection, those it opens later too. A connection batched already
 * keeps the options it was batched with. Returns the connection.
 */
export function batchWrites<T extends RedisClient>(redis: T, options: BatchWritesOptions = {}): T {
  const max = options.maxCommands ?? 16;
  if (!(max >= 1)) throw new RangeError(`maxCommands must be at least 1, not ${max}.`);
  if ((redis as Cluster).isCluster) {
    const cluster = redis as Cluster;
    for (const node of cluster.nodes()) batchNode(node, max);
    cluster.on('+node', (node: Redis) => batchNode(node, max));
  } else batchNode(redis as Redis, max);
  return redis;
}

/** Commands corked on a socket, to be written together. */
interface Batch {
  socket: NonNullable<Redis['stream']>;
  commands: number;
  written: boolean;
}

/** Per batched connection: writes the commands corked on it now, if any. */
const openBatches = new WeakMap<object, () => void>();

function batchNode(redis: Redis, max: number) {
  if (batched.has(redis)) return;
  batched.add(redis);
  let open: Batch | undefined;
  const write = (batch: Batch) => {
    if (batch.written) return;
    batch.written = true;
    if (open === batch) open = undefined;
    batch.socket.uncork();
  };
  openBatches.set(redis, () => open && write(open));
  const send = redis.sendCommand;
  redis.sendCommand = function (this: Redis, command, stream) {
    const socket = this.stream;
    // A command written to a stream of its own (a pipeline's) is left alone.
    if (stream || !socket || this.status !== 'ready') return send.call(this, command, stream);
    if (open?.socket !== socket) {
      const batch: Batch = { socket, commands: 0, written: false };
      open = batch;
      socket.cork();
      // At the end of the turn: the scripts gathered meanwhile go out in this write too.
      setImmediate(() => {
        sendGathered(redis);
        write(batch);
      });
    }
    const batch = open;
    const answer = send.call(this, command, stream);
    if (++batch.commands >= max) write(batch);
    return answer;
  };
}

/** What `send` answers, or its synchronous throw as a rejection, so that one failed send leaves the turn's others sent. */
function attempt<T>(send: () => Promise<T>): Promise<T> {
  try {
    return send();
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * A Lua script that one command runs for many invocations. `run(keys, argv)` answers what the
 * script answers for those KEYS and ARGV. On one Redis (not a Cluster), the invocations asked
 * for on the connection in one turn of the event loop are sent together at its end (with the
 * commands that batchWrites holds for it, if any) as one EVALSHA, at most `maxPerCommand` (64)
 * each: the script runs for each in the order asked, with its own KEYS and ARGV, and each hears
 * its own answer, or its own error (the script's error for one is not the others'). On a
 * Cluster, where their keys are in different slots, each is sent at once, on its own.
 *
 * Invocations of one script run in the order asked. Across commands the order is not kept: a
 * plain command asked after an invocation in the same turn reaches Redis before it, and a
 * script's full command (at `maxPerCommand`) before another script's earlier invocations. What
 * must run after an invocation waits for its answer.
 *
 * For an instance under load this is what costs: not Redis's work for each invocation, but the
 * command around it, on both sides (in the server bench, a claim of the idempotency store sent
 * on its own cost the stub about 20 µs of CPU, and Redis as much again).
 */
export interface GatheredScript<T> {
  (keys: string[], argv: Array<string | number>): Promise<T>;
}

/** Invocations of one script asked for in this turn on one connection, not sent yet. */
interface Gathering {
  keys: string[];
  counts: Array<string | number>;
  argv: Array<string | number>;
  settle: Array<{ resolve: (answer: unknown) => void; reject: (error: unknown) => void }>;
}

interface GatheredScripts {
  send: Map<string, (gathering: Gathering) => void>;
  pending: Map<string, Gathering>;
}
const gatheredScripts = new WeakMap<object, GatheredScripts>();

/** Sends the connection's gathered invocations, then writes what batchWrites holds for it. */
function sendGathered(redis: object) {
  const scripts = gatheredScripts.get(redis);
  if (scripts?.pending.size) {
    const pending = [...scripts.pending];
    scripts.pending.clear();
    for (const [name, gathering] of pending) scripts.send.get(name)!(gathering);
  }
  openBatches.get(redis)?.();
}

/** `lua` wrapped so that it runs for each invocation: ARGV is their number, each's numbers of keys and arguments, then their arguments. */
function manyLua(lua: string): string {
  return `local run = function(KEYS, ARGV)
${lua}
end
local n = tonumber(ARGV[1])
local answers = {}
local k, a = 0, 1 + 2 * n
for i = 1, n do
  local nk, na = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  -- Copied in loops: unpack of thousands would fail the whole command, not this invocation.
  local keys, argv = {}, {}
  for j = 1, nk do keys[j] = KEYS[k + j] end
  for j = 1, na do argv[j] = ARGV[a + j] end
  local ok, answer = pcall(run, keys, argv)
  if not ok then answer = {err = type(answer) == 'table' and answer.err or tostring(answer)} end
  if answer == nil then answer = false end
  answers[i] = answer
  k, a = k + nk, a + na
end
return answers
`;
}

/** Defines `name` on the connection as `lua` run for many invocations in one command (see GatheredScript). */
export function defineGatheredScript<T>(redis: RedisClient, name: string, lua: string, options: { maxPerCommand?: number } = {}): GatheredScript<T> {
  const max = options.maxPerCommand ?? 64;
  redis.defineCommand(name, { lua: manyLua(lua) });
  const command = (redis as unknown as Record<string, (...args: Array<string | number | Array<string | number>>) => Promise<unknown[]>>)[name]!.bind(redis);
  const send = ({ keys, counts, argv, settle }: Gathering) => {
    // Arrays, which ioredis flattens, not spread: a spread of many arguments overflows the stack.
    attempt(() => command(keys.length, keys, settle.length, counts, argv)).then(
      (answers) => {
        for (const [i, { resolve, reject }] of settle.entries()) {
          const answer = answers[i];
          if (answer instanceof Error) reject(answer);
          else resolve(answer);
        }
      },
      (error: unknown) => {
        for (const { reject } of settle) reject(error);
      },
    );
  };
  if ((redis as { isCluster?: boolean }).isCluster) {
    return (keys, argv) =>
      new Promise((resolve, reject) => send({ keys, counts: [keys.length, argv.length], argv, settle: [{ resolve: resolve as (answer: unknown) => void, reject }] }));
  }
  let scripts = gatheredScripts.get(redis);
  if (!scripts) gatheredScripts.set(redis, (scripts = { send: new Map(), pending: new Map() }));
  const { pending } = scripts;
  scripts.send.set(name, send);
  return (keys, argv) =>
    new Promise((resolve, reject) => {
      let gathering = pending.get(name);
      if (!gathering) {
        if (pending.size === 0) setImmediate(() => sendGathered(redis));
        pending.set(name, (gathering = { keys: [], counts: [], argv: [], settle: [] }));
      }
      // Appended one by one (a spread of many could throw halfway, leaving the others misaligned).
      for (const key of keys) gathering.keys.push(key);
      gathering.counts.push(keys.length, argv.length);
      for (const arg of argv) gathering.argv.push(arg);
      gathering.settle.push({ resolve: resolve as (answer: unknown) => void, reject });
      if (gathering.settle.length >= max) {
        pending.delete(name);
        send(gathering);
      }
    });
}
