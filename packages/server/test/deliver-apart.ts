/**
 * A delivery on the shared Redis queue in a process of its own, so that a test can kill it with
 * SIGKILL mid-delivery, as a crashed instance stops: no lease released, no attempt finished.
 * Registers CALL_LEG_ID at CALLBACK_URI and emits EVENTS events for it; stops on SIGTERM.
 */
import { Redis } from 'ioredis';
import { createCallbackDelivery, createUriGuard } from '../src/index.ts';
import { createRedisCallbackQueue, createRedisCallbackRegistry } from '../src/redis.ts';

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set.`);
  return value;
};
const redis = new Redis({ host: '127.0.0.1', port: Number(env('REDIS_PORT')), enableOfflineQueue: false, maxRetriesPerRequest: 1 });
redis.on('error', () => {});
await new Promise((resolve) => redis.once('ready', resolve));
const prefix = env('PREFIX');
const delivery = createCallbackDelivery({
  secret: env('SECRET'),
  guard: createUriGuard({ allowLoopback: true }),
  queue: createRedisCallbackQueue(redis, { prefix: `${prefix}q:` }),
  registry: createRedisCallbackRegistry(redis, { prefix: `${prefix}call:` }),
  attemptTimeoutMs: 500,
  leaseMs: Number(env('LEASE_MS')),
  pollIntervalMs: 50,
  log: () => {},
});
const callLegId = env('CALL_LEG_ID');
delivery.register(callLegId, env('CALLBACK_URI'));
for (let i = 0; i < Number(env('EVENTS')); i++) delivery.emit(callLegId, 'DtmfReceived', { callLegId, toneInfo: { sequenceId: i, tone: 'tone1' } });
console.log('emitted');
process.once('SIGTERM', () => void delivery.close(100).then(() => process.exit(0)));
