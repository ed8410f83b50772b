/**
 * `pnpm bench` (server): what the Redis stores cost when several instances share them, each row
 * against a named baseline in the same run, with its target.
 *
 * 1. Callback delivery to one callbackUri whose receiver takes 20 ms a request: events/s of
 *    createCallbackDelivery (2000 events over 200 calls, concurrencyPerUri 16, the URI guard on),
 *    with the memory queue and with the Redis queue + registry + dead letters, against a bare
 *    undici Pool posting the same bodies 16 at a time over 16 connections. Target ≥ 0.8×.
 * 2. API throughput: signed createCall requests (each with a new Repeatability-Request-ID; the
 *    handler registers the call and emits one event, delivered to a receiver answering 204 at
 *    once) to the stub with its four stores on Redis, against the same stub with the in-memory
 *    stores; wrk over loopback, interleaved rounds, medians. Target ≥ 0.7×.
 * 3. Heap over a soak (SOAK_SECONDS, 60 by default) of the Redis queue against an endpoint that
 *    refuses connections, events emitted throughout: heapUsed after full collections every few
 *    seconds; target: the last 30 s grow less than 5 MB.
 *
 * Every redis-server (free loopback ports) and child process is the bench's own, stopped by its pid,
 * also on failure. BENCH_ONLY=delivery,api,soak runs some rows; BENCH_ROUNDS, BENCH_SECONDS and
 * SOAK_SECONDS shorten a run.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Pool } from 'undici';
import { createCallbackDelivery, createUriGuard } from '@call-automation/server';
import { createRedisCallbackQueue, createRedisCallbackRegistry, createRedisDeadLetterStore } from '@call-automation/server/redis';
import { connectRedis, cpuSeconds, exited, freePort, median, startBenchRedis, startNode, stopChild, stopEverything, type Child } from './processes.ts';
import { startReceiver, type Receiver } from './receiver.ts';
import { callbackSecret, cloudEventBody, createCallBody, signedHeaders } from './shared.ts';

const run = promisify(execFile);
const here = import.meta.dirname;
const only = new Set((process.env.BENCH_ONLY ?? 'delivery,api,soak').split(',').map((s) => s.trim()));
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const soakSeconds = Number(process.env.SOAK_SECONDS ?? 60);

const verdict = (met: boolean) => (met ? 'met' : 'NOT MET');
const summary: string[] = [];

process.once('SIGINT', () => {
  void stopEverything().finally(() => process.exit(130));
});

// ---------------------------------------------------------------------------------------------
// 1. Callback delivery to one slow receiver
// ---------------------------------------------------------------------------------------------

const deliveryCalls = 200;
const eventsPerCall = 10;
const deliveryEvents = deliveryCalls * eventsPerCall;
const concurrency = 16;
const receiverDelayMs = 20;

/** createCallbackDelivery sending 2000 events of 200 calls; events/s from the first emit to the last answer. */
async function viaDelivery(receiver: Receiver, redisPort?: number): Promise<number> {
  const redis = redisPort === undefined ? undefined : await connectRedis(redisPort);
  const delivery = createCallbackDelivery({
    secret: callbackSecret,
    guard: createUriGuard({ allowLoopback: true }),
    ...(redis ? { queue: createRedisCallbackQueue(redis), registry: createRedisCallbackRegistry(redis), deadLetters: createRedisDeadLetterStore(redis) } : {}),
  });
  try {
    const ids = Array.from({ length: deliveryCalls }, () => randomUUID());
    const before = receiver.count;
    const started = performance.now();
    for (const id of ids) delivery.register(id, receiver.url);
    for (let i = 0; i < eventsPerCall; i++) {
      for (const id of ids) delivery.emit(id, 'CallLegStateChanged', { callLegId: id, callState: i % 2 ? 'established' : 'establishing' });
    }
    await Promise.all([receiver.reached(before + deliveryEvents), delivery.drain()]);
    const elapsed = performance.now() - started;
    if (receiver.count !== before + deliveryEvents) throw new Error(`The receiver got ${receiver.count - before} events, not ${deliveryEvents}.`);
    return (deliveryEvents * 1000) / elapsed;
  } finally {
    await delivery.close(1_000);
    redis?.disconnect();
  }
}

/** A bare undici Pool posting 2000 such bodies, 16 in flight over 16 connections. */
async function viaPool(receiver: Receiver): Promise<number> {
  const url = new URL(receiver.url);
  const bodies = Array.from({ length: deliveryEvents }, (_, i) => cloudEventBody(randomUUID(), i));
  const pool = new Pool(url.origin, { connections: concurrency });
  try {
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < bodies.length) {
          const body = bodies[next++]!;
          const response = await pool.request({ path: url.pathname, method: 'POST', body, headers: { 'content-type': 'application/cloudevents+json' } });
          await response.body.dump();
          if (response.statusCode !== 204) throw new Error(`The receiver answered ${response.statusCode}.`);
        }
      }),
    );
    return (deliveryEvents * 1000) / (performance.now() - started);
  } finally {
    await pool.close();
  }
}

async function deliveryBench() {
  const deliveryRounds = Math.max(3, Math.ceil(rounds / 2));
  console.log(
    `\n1. Callback delivery: ${deliveryEvents} events over ${deliveryCalls} calls to one callbackUri whose receiver takes ${receiverDelayMs} ms a request; ` +
      `concurrencyPerUri ${concurrency} (ceiling ${((concurrency * 1000) / receiverDelayMs).toFixed(0)} events/s), the URI guard on; ${deliveryRounds} interleaved rounds, medians`,
  );
  const redisProcess = await startBenchRedis();
  const receiver = await startReceiver({ delayMs: receiverDelayMs });
  const variants = [
    { name: 'bare undici Pool (16 connections, 16 in flight)', run: () => viaPool(receiver) },
    { name: 'createCallbackDelivery, memory queue', run: () => viaDelivery(receiver) },
    { name: 'createCallbackDelivery, Redis queue + registry', run: () => viaDelivery(receiver, redisProcess.port) },
  ];
  const results = variants.map(() => [] as number[]);
  try {
    for (const variant of variants) await variant.run(); // warm-up
    for (let round = 0; round < deliveryRounds; round++) {
      for (let k = 0; k < variants.length; k++) {
        const i = (k + round) % variants.length;
        results[i]!.push(await variants[i]!.run());
      }
    }
  } finally {
    await receiver.close();
  }
  const baseline = results[0]!;
  const rows = variants.map((variant, i) => {
    const ratio = median(results[i]!.map((value, round) => value / baseline[round]!));
    return {
      variant: variant.name,
      'events/s (median)': Math.round(median(results[i]!)),
      'events/s (each round)': results[i]!.map((v) => Math.round(v)).join(' '),
      ratio: i === 0 ? '(baseline)' : ratio.toFixed(2),
      'target ≥ 0.80': i === 0 ? '' : verdict(ratio >= 0.8),
    };
  });
  console.table(rows);
  for (const row of rows.slice(1)) summary.push(`delivery, ${row.variant} / bare undici Pool: ${row.ratio} (target ≥ 0.80: ${row['target ≥ 0.80']})`);
}

// ---------------------------------------------------------------------------------------------
// 2. API throughput with the Redis stores
// ---------------------------------------------------------------------------------------------

const hasWrk = spawnSync('wrk', ['--version']).error === undefined;

interface LoadResult {
  rps: number;
  p99ms: number;
  requests: number;
  serverCpuUs?: number;
  redisCpuUs?: number;
  delivered: number;
}

/** One wrk run: every request signed alike (the stub refuses no replays by default) but with a new Repeatability-Request-ID. */
async function load(server: Child, receiver: Receiver, redisPid: number | undefined): Promise<LoadResult> {
  const port = server.ready.port as number;
  const host = `127.0.0.1:${port}`;
  const body = createCallBody(receiver.url);
  const headers = signedHeaders(host, body);
  // A prefix of 24 characters new for each run, and a counter: the ids are UUIDs, none repeated.
  const prefix = randomUUID().slice(0, 24);
  const script = join(tmpdir(), `ca-bench-${port}-${prefix}.lua`);
  await writeFile(
    script,
    [
      'wrk.method = "POST"',
      `wrk.body = ${JSON.stringify(body)}`,
      ...Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`),
      'local n = 0',
      'request = function()',
      '  n = n + 1',
      `  wrk.headers["Repeatability-Request-ID"] = string.format("${prefix}%012x", n)`,
      '  return wrk.format()',
      'end',
    ].join('\n'),
  );
  const cpu = async () => [await cpuSeconds(server.pid), redisPid === undefined ? undefined : await cpuSeconds(redisPid)] as const;
  const deliveredBefore = receiver.count;
  const [serverBefore, redisBefore] = await cpu();
  const { stdout } = await run('wrk', ['-t1', '-c50', `-d${seconds}s`, '--latency', '-s', script, `http://${host}/calls`]).finally(() => rm(script, { force: true }));
  const [serverAfter, redisAfter] = await cpu();
  const delivered = receiver.count - deliveredBefore;
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  if (non2xx) throw new Error(`${non2xx[1]} answers were not 2xx: the load is not measuring successes.\n${stdout}`);
  const requests = Number(/(\d+) requests in/.exec(stdout)![1]);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(stdout)!;
  const perRequest = (before?: number, after?: number) => (before === undefined || after === undefined ? undefined : ((after - before) * 1e6) / requests);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)![1]),
    p99ms: Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1),
    requests,
    serverCpuUs: perRequest(serverBefore, serverAfter),
    redisCpuUs: perRequest(redisBefore, redisAfter),
    delivered,
  };
}

async function apiBench() {
  if (!hasWrk) throw new Error('wrk is needed for the API throughput rows (apt-get install wrk).');
  console.log(`\n2. API throughput: signed POST /calls, a new Repeatability-Request-ID each, one event per call to a receiver answering 204 at once; wrk -t1 -c50, ${rounds} interleaved rounds of ${seconds} s, medians`);
  const redisProcess = await startBenchRedis();
  const receivers = { memory: await startReceiver(), redis: await startReceiver() };
  const servers = [
    { name: 'stub, memory stores', stores: 'memory' as const },
    { name: 'stub, Redis stores (idempotency, registry, queue, dead letters)', stores: 'redis' as const },
  ];
  const running = await Promise.all(servers.map((s) => startNode(join(here, 'api-server.ts'), { STORES: s.stores, REDIS_PORT: String(redisProcess.port) })));
  const results = servers.map(() => [] as LoadResult[]);
  const redisPid = (stores: string) => (stores === 'redis' ? redisProcess.pid : undefined);
  const indexSizes: number[] = [];
  const redis = await connectRedis(redisProcess.port);
  try {
    for (const [i, server] of servers.entries()) await load(running[i]!, receivers[server.stores], redisPid(server.stores)); // warm-up
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < servers.length; k++) {
        const i = (k + round) % servers.length;
        const server = servers[i]!;
        results[i]!.push(await load(running[i]!, receivers[server.stores], redisPid(server.stores)));
      }
      indexSizes.push(await redis.zcard('ca:q:calls'));
    }
  } finally {
    redis.disconnect();
    await Promise.all(running.map((r) => stopChild(r.child)));
    await Promise.all(Object.values(receivers).map((r) => r.close()));
  }
  const baseline = results[0]!.map((r) => r.rps);
  const rows = servers.map((server, i) => {
    const ratio = median(results[i]!.map((r, round) => r.rps / baseline[round]!));
    const cpu = results[i]!.flatMap((r) => (r.serverCpuUs === undefined ? [] : [r.serverCpuUs]));
    const redisCpu = results[i]!.flatMap((r) => (r.redisCpuUs === undefined ? [] : [r.redisCpuUs]));
    return {
      server: server.name,
      'req/s (median)': Math.round(median(results[i]!.map((r) => r.rps))),
      'req/s (each round)': results[i]!.map((r) => Math.round(r.rps)).join(' '),
      'p99 ms': median(results[i]!.map((r) => r.p99ms)).toFixed(1),
      'server CPU µs/req': cpu.length ? median(cpu).toFixed(0) : '',
      'redis CPU µs/req': redisCpu.length ? median(redisCpu).toFixed(0) : '',
      'delivered / requests': median(results[i]!.map((r) => r.delivered / r.requests)).toFixed(2),
      ratio: i === 0 ? '(baseline)' : ratio.toFixed(2),
      'target ≥ 0.70': i === 0 ? '' : verdict(ratio >= 0.7),
    };
  });
  console.table(rows);
  console.log(`  calls in the Redis queue's index (ca:q:calls) after each round: ${indexSizes.join(', ')}`);
  summary.push(`API, ${rows[1]!.server} / ${rows[0]!.server}: ${rows[1]!.ratio} (target ≥ 0.70: ${rows[1]!['target ≥ 0.70']})`);
}

// ---------------------------------------------------------------------------------------------
// 3. Heap over a soak against a dead endpoint
// ---------------------------------------------------------------------------------------------

async function soakBench() {
  const sampleMs = Number(process.env.SAMPLE_MS ?? (soakSeconds >= 30 ? 5_000 : Math.max(1_000, (soakSeconds * 1000) / 6)));
  const tail = Math.min(30, soakSeconds / 2);
  const boundMb = 5;
  console.log(
    `\n3. Heap over ${soakSeconds} s: the Redis queue delivering to an endpoint that refuses connections, a new call with 10 events every 50 ms (200 events/s), ` +
      `waits of 1 s between attempts; heapUsed after gc every ${sampleMs / 1000} s`,
  );
  const redisProcess = await startBenchRedis();
  const deadPort = await freePort(); // nothing listens there: every attempt is refused
  const soak = await startNode(join(here, 'soak.ts'), { REDIS_PORT: String(redisProcess.port), DEAD_URI: `http://127.0.0.1:${deadPort}/callbacks`, SOAK_SECONDS: String(soakSeconds), SAMPLE_MS: String(sampleMs) }, ['--expose-gc']);
  const code = await exited(soak.child);
  if (code !== 0) throw new Error(`The soak exited with ${code}.`);
  const samples = [soak.ready, ...soak.data.filter((d) => !d.done)] as Array<{ t: number; heapUsed: number; rss: number; calls: number; emitted: number; attempts: number }>;
  const end = soak.data.find((d) => d.done) as { report: unknown; outcomes: Record<string, number>; logs: number; queuedCalls: number; redisMemory: number };
  const mb = (bytes: number) => bytes / 2 ** 20;
  console.table(samples.map((s) => ({ 't s': s.t, 'heapUsed MB': mb(s.heapUsed).toFixed(2), 'rss MB': mb(s.rss).toFixed(1), 'events emitted': s.emitted, attempts: s.attempts })));
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const max = samples.reduce((a, b) => (b.heapUsed > a.heapUsed ? b : a));
  // Least squares over every sample, MB per minute.
  const n = samples.length;
  const mt = samples.reduce((s, x) => s + x.t, 0) / n;
  const mh = samples.reduce((s, x) => s + mb(x.heapUsed), 0) / n;
  const slope = (samples.reduce((s, x) => s + (x.t - mt) * (mb(x.heapUsed) - mh), 0) / samples.reduce((s, x) => s + (x.t - mt) ** 2, 0)) * 60;
  const tailStart = samples.find((s) => s.t >= last.t - tail - 0.5)!;
  const tailGrowth = mb(last.heapUsed - tailStart.heapUsed);
  console.log(
    `  heapUsed: first ${mb(first.heapUsed).toFixed(2)} MB, last ${mb(last.heapUsed).toFixed(2)} MB, max ${mb(max.heapUsed).toFixed(2)} MB (at ${max.t} s); ` +
      `slope ${slope.toFixed(2)} MB/min; the last ${(last.t - tailStart.t).toFixed(0)} s grew ${tailGrowth.toFixed(2)} MB (target < ${boundMb} MB: ${verdict(tailGrowth < boundMb)})`,
  );
  console.log(`  attempts: ${JSON.stringify(end.outcomes)}; store failures logged: ${end.logs}; at close: ${JSON.stringify(end.report)}, ${end.queuedCalls} calls queued, Redis used_memory ${mb(end.redisMemory).toFixed(1)} MB`);
  summary.push(`soak, heap growth over the last ${(last.t - tailStart.t).toFixed(0)} s: ${tailGrowth.toFixed(2)} MB, slope ${slope.toFixed(2)} MB/min (target < ${boundMb} MB: ${verdict(tailGrowth < boundMb)})`);
}

try {
  if (only.has('delivery')) await deliveryBench();
  if (only.has('api')) await apiBench();
  if (only.has('soak')) await soakBench();
  console.log('\nSummary:');
  for (const line of summary) console.log(`  ${line}`);
} finally {
  await stopEverything();
}
