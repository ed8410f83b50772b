/**
 * The stub under load, in a process of its own: createCall registers the call and emits one event
 * (so that the registry and the queue are on every request's path), the answer waiting for them to
 * be recorded as the service does. STORES=memory: the in-memory defaults (idempotency store,
 * registry, queue, dead letters, gone URIs); STORES=redis: all five on the redis-server at REDIS_PORT, as the README sets them up.
 */
import { createCallAutomationService, createCallbackDelivery, createMemoryIdempotencyStore, createUriGuard, type CallAutomationHandlers } from '@call-automation/server';
import { serveApp } from '@call-automation/server/node';
import { createRedisCallbackQueue, createRedisCallbackRegistry, createRedisDeadLetterStore, createRedisGoneUriStore, createRedisIdempotencyStore } from '@call-automation/server/redis';
import { connectRedis } from './processes.ts';
import { invocations } from '../test/redis-server.ts';
import { accessKey, callbackSecret } from './shared.ts';

const stores = process.env.STORES;
if (stores !== 'memory' && stores !== 'redis') throw new Error('STORES must be memory or redis.');
// As the README sets it up (batchWrites), unless BATCH_WRITES=0; BATCH_WRITES=turn for one write a
// turn however many commands (no maxCommands); AUTO_PIPELINING=1 for ioredis's own batching instead.
const redis =
  stores === 'redis'
    ? await connectRedis(Number(process.env.REDIS_PORT), {
        autoPipelining: process.env.AUTO_PIPELINING === '1',
        batch: process.env.BATCH_WRITES !== '0',
        ...(process.env.BATCH_WRITES === 'turn' ? { maxCommands: Infinity } : {}),
      })
    : undefined;
// Every command the stores send, by name, and every script they run, by kind (a command sent for
// many invocations, defineGatheredScript's, counted by invocation), to say what a request costs in
// round trips and in scripts. Kinds are told apart by script (its SHA) and their numbers of keys
// and arguments, and labelled once per kind, so that the counting costs the measured server little.
const commandCounts = new Map<string, number>();
const scriptCounts = new Map<string, { label: string; n: number }>();
if (redis) {
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (command, stream) => {
    commandCounts.set(command.name, (commandCounts.get(command.name) ?? 0) + 1);
    if (command.name === 'evalsha' || command.name === 'eval') {
      const [sha, ...args] = command.args.map(String);
      for (const { keys, argv } of invocations(args)) {
        const kind = `${command.name === 'eval' ? 'eval' : sha} ${keys.length} ${argv.length}`;
        const count = scriptCounts.get(kind);
        if (count) count.n++;
        else scriptCounts.set(kind, { label: label(keys, argv), n: 1 });
      }
    }
    return send(command, stream);
  };
}
/** The counts by label (kinds of one label added up). */
function scripts(): Record<string, number> {
  const byLabel: Record<string, number> = {};
  for (const { label, n } of scriptCounts.values()) byLabel[label] = (byLabel[label] ?? 0) + n;
  return byLabel;
}
/**
 * A script's keys (ids as *) and the shape of its arguments (numbers as #, JSON as json, URIs as
 * uri, other long strings as text), e.g. `ca:q:{*} json # #`, so that the stores' scripts can be
 * told apart. A run of the same key or JSON (a push carrying answers) reads as one, followed by `…`.
 */
function label(keys: string[], argv: string[]): string {
  const id = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
  const shape = (text: string, i: number) => {
    if (i < keys.length) return text.replace(id, '*');
    if (text.startsWith('{"')) return 'json';
    if (/^-?\d+(\.\d+)?$/.test(text)) return '#';
    if (/^evt_(seed_)?[0-9a-f]+$/.test(text)) return 'evt';
    if (/^https?:\/\//.test(text)) return 'uri';
    return text.length > 40 ? 'text' : text.replace(id, '*');
  };
  const shapes = [...keys, ...argv].map(shape);
  const runs: string[] = [];
  for (const [i, token] of shapes.entries()) {
    if (token !== shapes[i - 1] || (i >= keys.length && token !== 'json')) runs.push(token);
    else if (!runs.at(-1)!.endsWith('…')) runs[runs.length - 1] += '…';
  }
  return `script ${runs.join(' ')}`;
}
let created = 0;
const guard = createUriGuard({ allowLoopback: true });
let logged = 0;
let attempts = 0;
if (process.env.BENCH_DEBUG) setInterval(() => console.error(`attempts so far: ${attempts}`), 1_000).unref();
const callbacks = createCallbackDelivery({
  secret: callbackSecret,
  guard,
  ...(redis
    ? { queue: createRedisCallbackQueue(redis), registry: createRedisCallbackRegistry(redis), deadLetters: createRedisDeadLetterStore(redis), gone: createRedisGoneUriStore(redis) }
    : {}),
  ...(process.env.POLL_MS ? { pollIntervalMs: Number(process.env.POLL_MS) } : {}),
  onAttempt: () => void attempts++,
  log: (message) => {
    if (logged++ < 5) console.error(message);
  },
});
const accepted = () => ({ status: 202 as const });
const handlers: CallAutomationHandlers = {
  createCall: ({ body }, context) => {
    const callLegId = crypto.randomUUID();
    created++;
    context.events.register(callLegId, body.callbackUri);
    context.events.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'establishing' });
    return { status: 200, body: { callLegId } };
  },
  hangupCall: accepted,
  playAudio: () => ({ status: 202, body: { id: crypto.randomUUID(), status: 'running' } }),
  cancelMediaProcessing: () => ({ status: 202, body: { id: crypto.randomUUID(), status: 'completed' } }),
  inviteParticipants: accepted,
  removeParticipant: accepted,
};
let errors = 0;
const service = createCallAutomationService({
  handlers,
  auth: { accessKeys: [accessKey] },
  callbacks,
  checkUri: async (uri, field) => void (await guard.check(uri, field)),
  // Room for every run's request ids (a bench of five rounds sends over 100 000, the memory
  // store's default bound, within their 10 minutes), as Redis has: a full store answers 503.
  idempotency: redis ? createRedisIdempotencyStore(redis) : createMemoryIdempotencyStore({ maxEntries: 2_000_000 }),
  onError: (error) => {
    if (errors++ < 5) console.error(error);
  },
});
const running = await serveApp(service);
process.stdout.write(`READY ${JSON.stringify({ port: Number(new URL(running.url).port) })}\n`);

// The bench asks for the counts before and after each run.
process.on('SIGUSR2', () => process.stdout.write(`DATA ${JSON.stringify({ created, commands: Object.fromEntries(commandCounts), scripts: scripts() })}\n`));
process.once('SIGTERM', () => {
  void (async () => {
    await running.close();
    // What is still queued stays in Redis; the memory queue's rest would be dead letters.
    await callbacks.close(1_000);
    redis?.disconnect();
    process.exit(0);
  })();
});
