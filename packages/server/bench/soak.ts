/**
 * The soak, in a process of its own (run with --expose-gc): a delivery on the Redis queue, registry
 * and dead-letter store sends to DEAD_URI, where nothing listens (every attempt is refused), while
 * calls come and go: every 50 ms a new call is registered, given 10 events and unregistered
 * (200 events a second); with SOAK_CALLS, a fixed set of calls takes them in turn instead. Waits between attempts are 1 s, so that every waiting call is tried
 * again each second and the retry path runs all the time. Every SAMPLE_MS, after two full
 * collections, heapUsed is printed; at the end the delivery closes and says what it left queued.
 */
import { createCallbackDelivery, createUriGuard } from '@call-automation/server';
import { createRedisCallbackQueue, createRedisCallbackRegistry, createRedisDeadLetterStore } from '@call-automation/server/redis';
import { connectRedis } from './processes.ts';
import { callbackSecret } from './shared.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('Run the soak with --expose-gc.');
const seconds = Number(process.env.SOAK_SECONDS ?? 60);
const sampleMs = Number(process.env.SAMPLE_MS ?? 5_000);
const deadUri = process.env.DEAD_URI!;
const redis = await connectRedis(Number(process.env.REDIS_PORT));

let attempts = 0;
let logs = 0;
const outcomes = new Map<string, number>();
const delivery = createCallbackDelivery({
  secret: callbackSecret,
  guard: createUriGuard({ allowLoopback: true }),
  queue: createRedisCallbackQueue(redis),
  registry: createRedisCallbackRegistry(redis),
  deadLetters: createRedisDeadLetterStore(redis),
  retryDelaysMs: [1_000],
  onAttempt: (_delivery, outcome) => {
    attempts++;
    const key = outcome.next === 'retry' ? `retry (${outcome.error?.replace(/^.*\((\w+)\)$/, '$1') ?? outcome.status})` : outcome.next;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  },
  log: (message) => {
    if (logs++ < 5) console.error(message);
  },
});

// SOAK_CALLS=n: the same n calls, registered once, take the events in turn (no new calls), to
// tell what grows with the number of calls waiting from what grows with events and attempts.
const reused = process.env.SOAK_CALLS ? Array.from({ length: Number(process.env.SOAK_CALLS) }, () => crypto.randomUUID()) : undefined;
for (const callLegId of reused ?? []) delivery.register(callLegId, deadUri);
let calls = reused?.length ?? 0;
let emitted = 0;
let tick = 0;
const emitter = setInterval(() => {
  const callLegId = reused ? reused[tick++ % reused.length]! : crypto.randomUUID();
  if (!reused) {
    calls++;
    delivery.register(callLegId, deadUri);
  }
  for (let i = 0; i < 10; i++) {
    delivery.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: i % 2 ? 'established' : 'establishing' });
    emitted++;
  }
  if (!reused) delivery.unregister(callLegId);
}, 50);

function sample() {
  gc!();
  gc!();
  const { heapUsed, rss } = process.memoryUsage();
  return { t: Math.round(performance.now() - started) / 1000, heapUsed, rss, calls, emitted, attempts };
}

const started = performance.now();
process.stdout.write(`READY ${JSON.stringify(sample())}\n`);
for (let next = sampleMs; next <= seconds * 1000; next += sampleMs) {
  await new Promise((resolve) => setTimeout(resolve, started + next - performance.now()));
  process.stdout.write(`DATA ${JSON.stringify(sample())}\n`);
}
clearInterval(emitter);
const report = await delivery.close(1_000);
const queued = await redis.zcard('ca:q:calls');
const redisMemory = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
process.stdout.write(`DATA ${JSON.stringify({ done: true, report, outcomes: Object.fromEntries(outcomes), logs, queuedCalls: queued, redisMemory })}\n`);
redis.disconnect();
process.exit(0);
