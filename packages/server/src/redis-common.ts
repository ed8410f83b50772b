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
 * `command`'s answer, or a RedisTimeoutError after `ms`. ioredis queues commands while it
 * reconnects (unless `enableOfflineQueue: false`) and `commandTimeout` is off by default, so a
 * store cannot count on the connection's settings to bound a request's wait.
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
        reject(error);
      },
    );
  });
}

const batched = new WeakSet<Redis>();

export interface BatchWritesOptions {
  /**
   * The most commands one write carries. Default 16. Past it the batch is written at once and
   * the turn's next commands start another, so that Redis works on a busy turn's first commands
   * while the service is still issuing the rest. Otherwise the service would wait, idle, for the
   * whole turn's batch to come back (in the server bench, 0.93 of a core busy against 0.88 with
   * one write a turn, for about the same CPU a request). `Infinity`: one write a turn, however many.
   */
  maxCommands?: number;
}

/**
 * Makes an ioredis connection send the commands issued in one turn of the event loop together,
 * in writes of at most `maxCommands`: the first command of a batch corks the socket, and it is
 * uncorked once the batch is full or the turn's I/O callbacks have run (setImmediate), so that
 * the commands of the requests served in that turn go out together (node-redis batches likewise,
 * within a tick). The commands, their order and their answers are the same; what changes is the
 * number of system calls on both sides, which dominate a store's cost under load (see the server
 * bench). On a Cluster, every node's connection, those it opens later too. A connection batched
 * already keeps the options it was batched with. Returns the connection.
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
  const send = redis.sendCommand;
  redis.sendCommand = function (this: Redis, command, stream) {
    const socket = this.stream;
    // A command written to a stream of its own (a pipeline's) is left alone.
    if (stream || !socket || this.status !== 'ready') return send.call(this, command, stream);
    if (open?.socket !== socket) {
      const batch: Batch = { socket, commands: 0, written: false };
      open = batch;
      socket.cork();
      setImmediate(() => write(batch));
    }
    const batch = open;
    const answer = send.call(this, command, stream);
    if (++batch.commands >= max) write(batch);
    return answer;
  };
}
