/**
 * `@call-automation/server/redis`: the stores on Redis, for several instances sharing calls,
 * repeatable requests' answers and callback deliveries. It needs ioredis (an optional peer
 * dependency); the main entry does not, so a service in memory installs nothing of Redis.
 */
export { createRedisIdempotencyStore } from './redis-idempotency.ts';
export type { RedisIdempotencyStoreOptions } from './redis-idempotency.ts';
export { batchWrites, defineGatheredScript, RedisTimeoutError, RedisUnavailableError, withTimeout } from './redis-common.ts';
export type { BatchWritesOptions, GatheredScript, RedisClient } from './redis-common.ts';
export { createRedisCallbackQueue, createRedisCallbackRegistry, createRedisDeadLetterStore, createRedisGoneUriStore } from './redis-callbacks.ts';
export type { RedisCallbackQueueOptions, RedisCallbackRegistryOptions, RedisDeadLetterStoreOptions, RedisGoneUriStoreOptions } from './redis-callbacks.ts';
export { createRedisReplayStore } from './redis-replay.ts';
export type { RedisReplayStoreOptions } from './redis-replay.ts';
