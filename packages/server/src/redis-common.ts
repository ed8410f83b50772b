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
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RedisTimeoutError(what, ms)), ms);
  });
  // A command given up on may still fail later; that failure has no one left to hear it.
  command.catch(() => {});
  return Promise.race([command, limit]).finally(() => clearTimeout(timer));
}
