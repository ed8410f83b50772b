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

/**
 * Makes an ioredis connection send the commands issued in one turn of the event loop in one
 * socket write: the first command of a turn corks the socket, and it is uncorked once the turn's
 * I/O callbacks have run (setImmediate), so that the commands of every request served in that turn
 * go out together (node-redis batches likewise, within a tick). The commands, their order and
 * their answers are the same; what changes is the number of system calls on both sides, which
 * dominate a store's cost under load (see the server bench). On a Cluster, every node's
 * connection, those it opens later too. Returns the connection.
 */
export function batchWrites<T extends RedisClient>(redis: T): T {
  if ((redis as Cluster).isCluster) {
    const cluster = redis as Cluster;
    for (const node of cluster.nodes()) batchNode(node);
    cluster.on('+node', (node: Redis) => batchNode(node));
  } else batchNode(redis as Redis);
  return redis;
}

function batchNode(redis: Redis) {
  if (batched.has(redis)) return;
  batched.add(redis);
  let corked: Redis['stream'] | undefined;
  const send = redis.sendCommand;
  redis.sendCommand = function (this: Redis, command, stream) {
    const socket = this.stream;
    // A command written to a stream of its own (a pipeline's) is left alone.
    if (!stream && socket && corked !== socket && this.status === 'ready') {
      corked = socket;
      socket.cork();
      setImmediate(() => {
        if (corked === socket) corked = undefined;
        socket.uncork();
      });
    }
    return send.call(this, command, stream);
  };
}
