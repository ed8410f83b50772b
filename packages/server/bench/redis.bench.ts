/**
 * `pnpm bench` (server): what the Redis stores cost when several instances share them, each row
 * against a named baseline in the same run, with its target.
 *
 * 1. Callback delivery to one callbackUri whose receiver takes 20 ms a request: events/s of
 *    createCallbackDelivery (2000 events over 200 calls, concurrencyPerUri 16, the URI guard on),
 *    with the memory queue and with the Redis queue + registry + dead letters, against a bare
 *    undici Pool posting the same bodies 16 at a time over 16 connections. Target ≥ 0.8×. A
 *    diagnostic row sends the memory queue's attempts through Pool.request (the `fetch` option).
 * 2. API throughput: signed createCall requests (each with a new Repeatability-Request-ID; the
 *    handler registers the call and emits one event, delivered to a receiver answering 204 at
 *    once) to the stub with its four stores on Redis (the connection set up as the README does,
 *    batchWrites included), against the same stub with the in-memory stores; wrk over loopback,
 *    interleaved rounds (three times BENCH_ROUNDS, or BENCH_API_ROUNDS), the median of the rounds'
 *    ratios with its 95 % interval (the host's noise moves a single round by a third). Target ≥
 *    0.7× on the sustained rate: requests answered and their events delivered, per second from the
 *    load's start to its last event's delivery. A createCall's work includes its callback, and the
 *    rate of answers alone flatters the memory stub: under load it answers while leaving most of
 *    its events for later (Node serves the requests before the deliveries' answers), a backlog
 *    that grows by thousands a second (shown) and would fill its bound (50 000) within seconds,
 *    every event past it a dead letter. The rate of answers during the load is shown beside it.
 *    2b. What batchWrites earns, against the Redis stub of 2 under the same load: writing once a
 *    turn (no bound on a write: what its maxCommands earns), without batchWrites, and with
 *    ioredis's enableAutoPipelining instead.
 * 3. Heap over a soak (SOAK_SECONDS, 60 by default) of the Redis queue against an endpoint that
 *    refuses connections, events emitted throughout: heapUsed after full collections every few
 *    seconds; target: the last 30 s grow less than 5 MB.
 * 4. FifoMap, for the registry's remembered calls and the calls waiting for a slot, against a Map
 *    taking its first key: µs per step.
 *
 * Every redis-server (free loopback ports) and child process is the bench's own, stopped by its pid,
 * also on failure. BENCH_ONLY=delivery,api,soak,structures runs some rows; BENCH_ROUNDS, BENCH_SECONDS and
 * SOAK_SECONDS shorten a run.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Pool } from 'undici';
import { createCallbackDelivery, createUriGuard } from '@call-automation/server';
import { FifoMap } from '../src/fifo-map.ts';
import { createRedisCallbackQueue, createRedisCallbackRegistry, createRedisDeadLetterStore } from '@call-automation/server/redis';
import { ask, connectRedis, cpuSeconds, exited, freePort, median, startBenchRedis, startNode, stopChild, stopEverything, type Child } from './processes.ts';
import { startReceiver, type Receiver } from './receiver.ts';
import { callbackSecret, cloudEventBody, createCallBody, signedHeaders } from './shared.ts';

const run = promisify(execFile);
const here = import.meta.dirname;
const only = new Set((process.env.BENCH_ONLY ?? 'delivery,api,soak,structures').split(',').map((s) => s.trim()));
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const soakSeconds = Number(process.env.SOAK_SECONDS ?? 60);

const verdict = (met: boolean) => (met ? 'met' : 'NOT MET');
const summary: string[] = [];

// Whatever ends the bench, the processes it started are stopped first.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void stopEverything().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143)));
}
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.once(event, (error: unknown) => {
    console.error(error);
    void stopEverything().finally(() => process.exit(1));
  });
}

// ---------------------------------------------------------------------------------------------
// 1. Callback delivery to one slow receiver
// ---------------------------------------------------------------------------------------------

const deliveryCalls = 200;
const eventsPerCall = 10;
const deliveryEvents = deliveryCalls * eventsPerCall;
const concurrency = 16;
const receiverDelayMs = 20;

interface DeliveryResult {
  eps: number;
  /** The sending process's CPU time per event. */
  cpuUs: number;
  /** Redis commands sent per event. */
  commands?: number;
  /** The median round trip of a PING on the delivery's connection while it ran. */
  rttMs?: number;
}

/** createCallbackDelivery sending 2000 events of 200 calls; events/s from the first emit to the last answer. */
async function viaDelivery(url: string, redisPort?: number, options: { poolFetch?: boolean } = {}): Promise<DeliveryResult> {
  const redis = redisPort === undefined ? undefined : await connectRedis(redisPort);
  const pool = options.poolFetch ? new Pool(new URL(url).origin, { connections: concurrency }) : undefined;
  let commands = 0;
  if (redis) {
    const send = redis.sendCommand.bind(redis);
    redis.sendCommand = (command, stream) => {
      commands++;
      return send(command, stream);
    };
  }
  let done = 0;
  let finished: () => void = () => {};
  const allDone = new Promise<void>((resolve) => (finished = resolve));
  const delivery = createCallbackDelivery({
    secret: callbackSecret,
    guard: createUriGuard({ allowLoopback: true }),
    ...(redis ? { queue: createRedisCallbackQueue(redis), registry: createRedisCallbackRegistry(redis), deadLetters: createRedisDeadLetterStore(redis) } : {}),
    ...(pool ? { fetch: fetchThrough(pool) } : {}),
    onAttempt: (_delivery, outcome) => {
      if (outcome.next !== 'done') throw new Error(`An attempt failed: ${JSON.stringify(outcome)}`);
      if (++done === deliveryEvents) finished();
    },
  });
  try {
    const ids = Array.from({ length: deliveryCalls }, () => randomUUID());
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (const id of ids) delivery.register(id, url);
    for (let i = 0; i < eventsPerCall; i++) {
      for (const id of ids) delivery.emit(id, 'CallLegStateChanged', { callLegId: id, callState: i % 2 ? 'established' : 'establishing' });
    }
    // What a round trip to Redis takes meanwhile, on the delivery's own connection (its queue included).
    const pings: number[] = [];
    const pinger = redis
      ? setInterval(() => {
          const sent = performance.now();
          void redis.ping().then(() => pings.push(performance.now() - sent), () => {});
        }, 20)
      : undefined;
    await allDone;
    clearInterval(pinger);
    const elapsed = performance.now() - started;
    const { user, system } = process.cpuUsage(cpu);
    const sent = commands;
    await delivery.drain();
    return { eps: (deliveryEvents * 1000) / elapsed, cpuUs: (user + system) / deliveryEvents, commands: redis ? sent / deliveryEvents : undefined, rttMs: pings.length ? median(pings) : undefined };
  } finally {
    await delivery.close(1_000);
    redis?.disconnect();
    await pool?.close();
  }
}

/**
 * A `fetch` for the delivery's `fetch` option that sends through an undici Pool's request(), with
 * no WHATWG Request, Response or streams: what the attempts cost on a leaner path (the delivery
 * then checks the URI with the guard before each attempt, as it does for any fetch of one's own).
 */
function fetchThrough(pool: Pool): typeof fetch {
  const send = async (input: string, init: RequestInit) => {
    const response = await pool.request({
      path: new URL(input).pathname,
      method: 'POST',
      body: init.body as string,
      headers: init.headers as Record<string, string>,
      signal: init.signal ?? undefined,
    });
    await response.body.dump();
    const header = (name: string) => response.headers[name];
    return { status: response.statusCode, headers: { get: (name: string) => (header(name) === undefined ? null : String(header(name))) }, body: null };
  };
  return send as unknown as typeof fetch;
}

/** A bare undici Pool posting 2000 such bodies, 16 in flight over 16 connections. */
async function viaPool(receiverUrl: string): Promise<DeliveryResult> {
  const url = new URL(receiverUrl);
  const bodies = Array.from({ length: deliveryEvents }, (_, i) => cloudEventBody(randomUUID(), i));
  const pool = new Pool(url.origin, { connections: concurrency });
  try {
    let next = 0;
    const cpu = process.cpuUsage();
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
    const eps = (deliveryEvents * 1000) / (performance.now() - started);
    const { user, system } = process.cpuUsage(cpu);
    return { eps, cpuUs: (user + system) / deliveryEvents };
  } finally {
    await pool.close();
  }
}

async function deliveryBench() {
  const deliveryRounds = Math.max(3, rounds);
  console.log(
    `\n1. Callback delivery: ${deliveryEvents} events over ${deliveryCalls} calls to one callbackUri whose receiver (a process of its own) takes ${receiverDelayMs} ms a request; ` +
      `concurrencyPerUri ${concurrency} (ceiling ${((concurrency * 1000) / receiverDelayMs).toFixed(0)} events/s), the URI guard on; ${deliveryRounds} interleaved rounds, medians. ` +
      `Load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`,
  );
  const redisProcess = await startBenchRedis();
  const receiver = await startNode(join(here, 'receiver-process.ts'), { DELAY_MS: String(receiverDelayMs) });
  const url = receiver.ready.url as string;
  const variants = [
    { name: 'bare undici Pool (16 connections, 16 in flight)', run: () => viaPool(url) },
    { name: 'createCallbackDelivery, memory queue', run: () => viaDelivery(url) },
    { name: 'createCallbackDelivery, Redis queue + registry (batchWrites)', run: () => viaDelivery(url, redisProcess.port) },
    { name: '  memory queue, attempts through Pool.request (diagnostic)', run: () => viaDelivery(url, undefined, { poolFetch: true }), diagnostic: true },
  ];
  const results = variants.map(() => [] as DeliveryResult[]);
  try {
    for (const variant of variants) await variant.run(); // warm-up
    for (let round = 0; round < deliveryRounds; round++) {
      for (let k = 0; k < variants.length; k++) {
        const i = (k + round) % variants.length;
        results[i]!.push(await variants[i]!.run());
      }
    }
  } finally {
    await stopChild(receiver.child);
  }
  const baseline = results[0]!;
  const rows = variants.map((variant, i) => {
    const ratio = median(results[i]!.map((value, round) => value.eps / baseline[round]!.eps));
    const commands = results[i]!.flatMap((r) => (r.commands === undefined ? [] : [r.commands]));
    return {
      variant: variant.name,
      'events/s (median)': Math.round(median(results[i]!.map((r) => r.eps))),
      'each round': results[i]!.map((r) => Math.round(r.eps)).join(' '),
      'sender CPU µs/event': median(results[i]!.map((r) => r.cpuUs)).toFixed(0),
      'Redis commands/event': commands.length ? median(commands).toFixed(1) : '',
      'Redis round trip ms': results[i]!.some((r) => r.rttMs !== undefined) ? median(results[i]!.flatMap((r) => (r.rttMs === undefined ? [] : [r.rttMs]))).toFixed(2) : '',
      ratio: i === 0 ? '(baseline)' : ratio.toFixed(2),
      'target ≥ 0.80': i === 0 || 'diagnostic' in variant ? '' : verdict(ratio >= 0.8),
    };
  });
  console.table(rows);
  for (const row of rows.slice(1, 3)) summary.push(`delivery, ${row.variant} / bare undici Pool: ${row.ratio} (target ≥ 0.80: ${row['target ≥ 0.80']})`);
  summary.push(`  diagnostic: ${rows[3]!.variant.trim()} ${rows[3]!.ratio}, sender CPU ${rows[3]!['sender CPU µs/event']} µs/event against ${rows[1]!['sender CPU µs/event']} through fetch`);
}

// ---------------------------------------------------------------------------------------------
// 2. API throughput with the Redis stores
// ---------------------------------------------------------------------------------------------

const hasWrk = spawnSync('wrk', ['--version']).error === undefined;

interface LoadResult {
  rps: number;
  p99ms: number;
  /** Requests wrk gave up on (its limit is 2 s). */
  timeouts: number;
  /** Calls the server created during the run (what its events are counted against). */
  created: number;
  serverCpuUs?: number;
  redisCpuUs?: number;
  /** The CPU of the append-only file's rewrites that ended during the run (redis-server's children), per request. */
  rewriteCpuUs?: number;
  /** Redis commands sent per created call during the run and its drain, by name. */
  commands: Record<string, number>;
  /** Scripts run per created call, by kind (each invocation of a command sent for many counted). */
  scripts: Record<string, number>;
  /** The share of the events delivered while the load ran. */
  deliveredDuringLoad: number;
  /** After the load, until every created call's event was delivered (NaN: not within a minute). */
  drainMs: number;
  /** Requests answered and their events delivered, per second from the load's start to the last delivery. */
  sustained: number;
  /** How long wrk ran. */
  loadMs: number;
}

type Counts = { created: number; commands: Record<string, number>; scripts: Record<string, number> };

/** Each count's growth from `before` to `after`, per created call. */
function perCall(before: Record<string, number>, after: Record<string, number>, created: number): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([name, n]) => [name, (n - (before[name] ?? 0)) / (created || NaN)]));
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
  const cpu = async () =>
    [await cpuSeconds(server.pid), redisPid === undefined ? undefined : await cpuSeconds(redisPid), redisPid === undefined ? undefined : await cpuSeconds(redisPid, true)] as const;
  const deliveredBefore = receiver.count;
  const countsBefore = (await ask(server)) as Counts;
  const [serverBefore, redisBefore, rewritesBefore] = await cpu();
  const loadStarted = performance.now();
  const { stdout } = await run('wrk', ['-t1', '-c50', `-d${seconds}s`, '--latency', '-s', script, `http://${host}/calls`]).finally(() => rm(script, { force: true }));
  const loadEnded = performance.now();
  const loadMs = loadEnded - loadStarted;
  const deliveredDuring = receiver.count - deliveredBefore;
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  if (non2xx) throw new Error(`${non2xx[1]} answers were not 2xx: the load is not measuring successes.\n${stdout}`);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(stdout);
  // The next run starts once this one's events are out: a backlog would take CPU from it (and
  // from the other servers' runs, all sharing the machine).
  const created = ((await ask(server)) as Counts).created - countsBefore.created;
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  const caughtUp = await Promise.race([
    receiver.reached(deliveredBefore + created).then(() => true),
    new Promise<false>((resolve) => (drainTimer = setTimeout(resolve, 60_000, false))),
  ]);
  clearTimeout(drainTimer);
  const drainMs = caughtUp ? performance.now() - loadEnded : NaN;
  // CPU time and commands over the load and its drain: what each request cost, its delivery included.
  const [serverAfter, redisAfter, rewritesAfter] = await cpu();
  const countsAfter = (await ask(server)) as Counts;
  const perRequest = (before?: number, after?: number) => (before === undefined || after === undefined || !created ? undefined : ((after - before) * 1e6) / created);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)![1]),
    p99ms: p99 ? Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1) : NaN,
    timeouts: Number(/timeout (\d+)/.exec(stdout)?.[1] ?? 0),
    created,
    serverCpuUs: perRequest(serverBefore, serverAfter),
    redisCpuUs: perRequest(redisBefore, redisAfter),
    rewriteCpuUs: perRequest(rewritesBefore, rewritesAfter),
    commands: perCall(countsBefore.commands, countsAfter.commands, created),
    scripts: perCall(countsBefore.scripts, countsAfter.scripts, created),
    deliveredDuringLoad: created ? deliveredDuring / created : NaN,
    drainMs,
    sustained: created / ((loadMs + drainMs) / 1000),
    loadMs,
  };
}

interface ApiVariant {
  name: string;
  redis: boolean;
  env?: Record<string, string>;
}

/**
 * Runs each variant's server under the same load, round after round, in turn (interleaved, the
 * first of a round changing each round), after one warm-up run each; answers each variant's runs.
 */
async function loadRounds(variants: ApiVariant[], roundCount: number): Promise<{ results: LoadResult[][]; indexSizes: number[][] }> {
  const servers = await Promise.all(
    variants.map(async (variant) => {
      const redisProcess = variant.redis ? await startBenchRedis() : undefined;
      const receiver = await startReceiver();
      const child = await startNode(join(here, 'api-server.ts'), { STORES: variant.redis ? 'redis' : 'memory', REDIS_PORT: String(redisProcess?.port ?? 0), ...variant.env });
      const redis = redisProcess ? await connectRedis(redisProcess.port) : undefined;
      return { variant, redisProcess, receiver, child, redis };
    }),
  );
  const runOne = (server: (typeof servers)[number]) => load(server.child, server.receiver, server.redisProcess?.pid);
  const results = variants.map(() => [] as LoadResult[]);
  const indexSizes = variants.map(() => [] as number[]);
  try {
    for (const server of servers) await runOne(server); // warm-up
    for (let round = 0; round < roundCount; round++) {
      for (let k = 0; k < servers.length; k++) {
        const i = (k + round) % servers.length;
        results[i]!.push(await runOne(servers[i]!));
        if (servers[i]!.redis) indexSizes[i]!.push(await servers[i]!.redis!.zcard('ca:q:calls'));
      }
    }
  } finally {
    for (const server of servers) {
      server.redis?.disconnect();
      await stopChild(server.child.child);
      await server.receiver.close();
    }
  }
  return { results, indexSizes };
}

/**
 * The order statistics that bound the median of `n` values with at least 95 % confidence, whatever
 * their distribution (the sign test's interval): 1-based ranks [k, n + 1 - k].
 */
function medianInterval(n: number): [number, number] | undefined {
  // P(at most j of n fall below the median) = sum of C(n, i) / 2^n for i ≤ j.
  let cumulative = 0;
  let k = 0;
  for (let j = 0, c = 1; j < n; j++, c = (c * (n - j + 1)) / j) {
    const p = c / 2 ** n;
    if (cumulative + p > 0.025) break;
    cumulative += p;
    k = j + 1;
  }
  return k >= 1 ? [k, n + 1 - k] : undefined;
}

/** The median of `values` and, when there are enough of them, its 95 % interval. */
function medianWithInterval(values: number[]): { median: number; low?: number; high?: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const ranks = medianInterval(sorted.length);
  return { median: median(sorted), ...(ranks ? { low: sorted[ranks[0] - 1]!, high: sorted[ranks[1] - 1]! } : {}) };
}

/** The tables of one comparison, each variant against the first, round by round. */
function printLoadTables(variants: ApiVariant[], results: LoadResult[][], indexSizes: number[][], target?: { index: number; bound: number }) {
  /** A variant's figure against the baseline's in the same round, round by round. */
  const against = (i: number, figure: (r: LoadResult) => number) => results[i]!.map((r, round) => figure(r) / figure(results[0]![round]!));
  const sustained = variants.map((_, i) => medianWithInterval(against(i, (r) => r.sustained)));
  const answered = variants.map((_, i) => median(against(i, (r) => r.rps)));
  const interval = ({ low, high }: { low?: number; high?: number }) => (low === undefined ? '' : `${low.toFixed(2)}–${high!.toFixed(2)}`);
  console.table(
    variants.map((variant, i) => ({
      server: variant.name,
      'sustained req/s': Math.round(median(results[i]!.map((r) => r.sustained))),
      'sustained, each round': results[i]!.map((r) => Math.round(r.sustained)).join(' '),
      ratio: i === 0 ? '(baseline)' : sustained[i]!.median.toFixed(2),
      // How far the rounds are apart: on a shared host the baseline alone swings by a third.
      'ratio, each round': i === 0 ? '' : against(i, (r) => r.sustained).map((ratio) => ratio.toFixed(2)).join(' '),
      'median, 95 % interval': i === 0 ? '' : interval(sustained[i]!),
      ...(target ? { [`target ≥ ${target.bound.toFixed(2)}`]: i === target.index ? verdict(sustained[i]!.median >= target.bound) : '' } : {}),
      'answered req/s': Math.round(median(results[i]!.map((r) => r.rps))),
      'answered ratio': i === 0 ? '(baseline)' : answered[i]!.toFixed(2),
      'p99 ms': median(results[i]!.map((r) => r.p99ms)).toFixed(1),
      'wrk timeouts (2 s)': results[i]!.reduce((sum, r) => sum + r.timeouts, 0),
    })),
  );
  /** Median over runs of the commands (or scripts) per request named (all when none is). */
  const perRequest = (i: number, names?: string[], of: 'commands' | 'scripts' = 'commands') =>
    median(results[i]!.map((r) => Object.entries(r[of]).reduce((sum, [name, n]) => (!names || names.includes(name) ? sum + n : sum), 0))).toFixed(2);
  const all = (i: number, of: 'commands' | 'scripts') => [...new Set(results[i]!.flatMap((r) => Object.keys(r[of])))];
  console.log('  What each request cost (medians; CPU over the load and the drain of its events):');
  console.table(
    variants.map((variant, i) => {
      const cpu = results[i]!.flatMap((r) => (r.serverCpuUs === undefined ? [] : [r.serverCpuUs]));
      const redisCpu = results[i]!.flatMap((r) => (r.redisCpuUs === undefined ? [] : [r.redisCpuUs]));
      const rewrites = results[i]!.flatMap((r) => (r.rewriteCpuUs === undefined ? [] : [r.rewriteCpuUs]));
      return {
        server: variant.name,
        'server CPU µs': cpu.length ? median(cpu).toFixed(0) : '',
        // How much of the time from the load's start to the last delivery the server was running
        // (its helper threads, GC's, counted too): below the baseline's, it waited (for Redis).
        'server cores busy': cpu.length ? median(results[i]!.flatMap((r) => (r.serverCpuUs === undefined ? [] : [(r.serverCpuUs * r.sustained) / 1e6]))).toFixed(2) : '',
        'redis-server CPU µs': redisCpu.length ? median(redisCpu).toFixed(0) : '',
        // Its rewrites of the append-only file, in children of their own (the rounds' mean: a rewrite comes every few rounds).
        'AOF rewrites CPU µs': rewrites.length ? (rewrites.reduce((sum, us) => sum + us, 0) / rewrites.length).toFixed(0) : '',
        'Redis commands': variant.redis ? perRequest(i) : '',
        'scripts run': variant.redis ? perRequest(i, undefined, 'scripts') : '',
        'events delivered during the load': median(results[i]!.map((r) => r.deliveredDuringLoad)).toFixed(2),
        // What the load left for later, per second of it: a backlog that grows without end (the memory queue's bound is 50 000).
        'backlog grew, events/s': Math.round(median(results[i]!.map((r) => (r.created * (1 - r.deliveredDuringLoad)) / (r.loadMs / 1000)))),
        'rest delivered in s': median(results[i]!.map((r) => r.drainMs / 1000)).toFixed(1),
      };
    }),
  );
  for (const [i, variant] of variants.entries()) {
    if (!variant.redis) continue;
    console.log(`  ${variant.name.trim()}: calls in the queue's index after each run ${indexSizes[i]!.join(', ')}; Redis commands per request:`);
    for (const name of all(i, 'commands').sort()) console.log(`    ${perRequest(i, [name]).padStart(6)}  ${name}`);
    console.log(`  and the scripts those ran per request (a command sent for many invocations counted by invocation):`);
    for (const name of all(i, 'scripts').sort()) console.log(`    ${perRequest(i, [name], 'scripts').padStart(6)}  ${name}`);
  }
  return { sustained, answered, eachRound: (i: number) => against(i, (r) => r.sustained).map((ratio) => ratio.toFixed(2)).join(' '), interval };
}

async function apiBench() {
  if (!hasWrk) throw new Error('wrk is needed for the API throughput rows (apt-get install wrk).');
  const targetRounds = Number(process.env.BENCH_API_ROUNDS ?? 3 * rounds);
  console.log(
    `\n2. API throughput: signed POST /calls, a new Repeatability-Request-ID each; the handler registers the call and emits one event, delivered to a receiver answering 204 at once. ` +
      `wrk -t1 -c50, ${targetRounds} interleaved rounds of ${seconds} s, medians; each run waits for its events to be delivered before the next starts. ` +
      `Sustained: requests answered and their events delivered, per second from the load's start to its last delivery (the target's figure); answered: requests answered per second of the load alone. ` +
      `The target's ratio is the median of the rounds' ratios, with the range that holds the true median with 95 % confidence (sign test). Load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`,
  );
  const redisStub: ApiVariant = { name: 'stub, Redis stores (idempotency, registry, queue, dead letters, gone URIs), batchWrites', redis: true };
  const pair: ApiVariant[] = [{ name: 'stub, memory stores', redis: false }, redisStub];
  const target = await loadRounds(pair, targetRounds);
  const { sustained, answered, eachRound, interval } = printLoadTables(pair, target.results, target.indexSizes, { index: 1, bound: 0.7 });
  const ratio = sustained[1]!;
  const sure = ratio.low === undefined ? '' : ratio.low >= 0.7 ? ', the whole interval above it' : ratio.high! < 0.7 ? ', the whole interval below it' : ', the interval across it';
  summary.push(
    `API, sustained (requests answered and their events delivered, per second), ${pair[1]!.name} / ${pair[0]!.name}: ${ratio.median.toFixed(3)} (${ratio.low === undefined ? 'too few rounds for an interval' : `95 % interval ${interval(ratio)}`}; target ≥ 0.70: ${verdict(ratio.median >= 0.7)}${sure}; rounds ${eachRound(1)})`,
  );
  summary.push(
    `  answers during the load alone: ${answered[1]!.toFixed(2)} (the memory stub delivered ${median(target.results[0]!.map((r) => r.deliveredDuringLoad)).toFixed(2)} of its events meanwhile, the Redis one ${median(target.results[1]!.map((r) => r.deliveredDuringLoad)).toFixed(2)})`,
  );

  // What the batching of writes earns, against the Redis stub as the README sets it up.
  console.log(`\n2b. The same load, ${rounds} interleaved rounds: what batchWrites and its bound on a write earn, against the Redis stub as the README sets it up (the row above).`);
  const batching: ApiVariant[] = [
    redisStub,
    { name: '  batchWrites writing once a turn, however many commands', redis: true, env: { BATCH_WRITES: 'turn' } },
    { name: '  without batchWrites', redis: true, env: { BATCH_WRITES: '0' } },
    { name: '  with ioredis enableAutoPipelining instead', redis: true, env: { BATCH_WRITES: '0', AUTO_PIPELINING: '1' } },
  ];
  const diagnostics = await loadRounds(batching, rounds);
  const against = printLoadTables(batching, diagnostics.results, diagnostics.indexSizes).sustained;
  summary.push(
    `  against batchWrites as set up (sustained): writing once a turn ${against[1]!.median.toFixed(2)}, without batchWrites ${against[2]!.median.toFixed(2)}, with enableAutoPipelining instead ${against[3]!.median.toFixed(2)}`,
  );
}

// ---------------------------------------------------------------------------------------------
// 3. Heap over a soak against a dead endpoint
// ---------------------------------------------------------------------------------------------

/** The least-squares slope of [seconds, MB] points, in MB per minute. */
function leastSquares(points: Array<[number, number]>): number {
  const n = points.length;
  const mt = points.reduce((sum, [t]) => sum + t, 0) / n;
  const mv = points.reduce((sum, [, v]) => sum + v, 0) / n;
  return (points.reduce((sum, [t, v]) => sum + (t - mt) * (v - mv), 0) / points.reduce((sum, [t]) => sum + (t - mt) ** 2, 0)) * 60;
}

interface SoakSample {
  t: number;
  heapUsed: number;
  rss: number;
  calls: number;
  emitted: number;
  attempts: number;
}

async function soakBench() {
  const sampleMs = Number(process.env.SAMPLE_MS ?? (soakSeconds >= 30 ? 5_000 : Math.max(1_000, (soakSeconds * 1000) / 6)));
  const tail = Math.min(30, soakSeconds / 2);
  const boundMb = 5;
  const reusedCalls = 200;
  console.log(
    `\n3. Heap over ${soakSeconds} s: the Redis queue delivering to an endpoint that refuses connections, a new call with 10 events every 50 ms (200 events/s), ` +
      `waits of 1 s between attempts; heapUsed after gc every ${sampleMs / 1000} s. Beside it, at the same time (a process and redis-server of its own), ` +
      `the same events to ${reusedCalls} calls taken in turn (diagnostic: what grows with the calls waiting rather than with events)`,
  );
  const deadPort = await freePort(); // nothing listens there: every attempt is refused
  const variants: Array<{ name: string; env: Record<string, string> }> = [
    { name: 'new calls', env: {} },
    { name: `${reusedCalls} calls reused (diagnostic)`, env: { SOAK_CALLS: String(reusedCalls) } },
  ];
  const soaks = await Promise.all(
    variants.map(async (variant) => {
      const redisProcess = await startBenchRedis();
      const env = { REDIS_PORT: String(redisProcess.port), DEAD_URI: `http://127.0.0.1:${deadPort}/callbacks`, SOAK_SECONDS: String(soakSeconds), SAMPLE_MS: String(sampleMs), ...variant.env };
      return startNode(join(here, 'soak.ts'), env, ['--expose-gc']);
    }),
  );
  for (const soak of soaks) {
    const code = await exited(soak.child);
    if (code !== 0) throw new Error(`The soak exited with ${code}.`);
  }
  const mb = (bytes: number) => bytes / 2 ** 20;
  const runs = soaks.map((soak) => ({
    samples: [soak.ready, ...soak.data.filter((d) => !d.done)] as unknown as SoakSample[],
    end: soak.data.find((d) => d.done) as { report: unknown; outcomes: Record<string, number>; logs: number; queuedCalls: number; redisMemory: number },
  }));
  const [main, reused] = runs as [(typeof runs)[number], (typeof runs)[number]];
  console.table(
    main.samples.map((s, i) => ({
      't s': s.t,
      'heapUsed MB': mb(s.heapUsed).toFixed(2),
      'rss MB': mb(s.rss).toFixed(1),
      calls: s.calls,
      'events emitted': s.emitted,
      attempts: s.attempts,
      [`heapUsed MB, ${reusedCalls} calls reused`]: reused.samples[i] ? mb(reused.samples[i]!.heapUsed).toFixed(2) : '',
      [`attempts, ${reusedCalls} calls reused`]: reused.samples[i]?.attempts ?? '',
    })),
  );
  for (const [i, run] of runs.entries()) {
    const { samples, end } = run;
    const first = samples[0]!;
    const last = samples.at(-1)!;
    const max = samples.reduce((a, b) => (b.heapUsed > a.heapUsed ? b : a));
    const slope = leastSquares(samples.map((s) => [s.t, mb(s.heapUsed)]));
    const tailStart = samples.find((s) => s.t >= last.t - tail - 0.5)!;
    const tailGrowth = mb(last.heapUsed - tailStart.heapUsed);
    const tailSlope = leastSquares(samples.filter((s) => s.t >= tailStart.t).map((s) => [s.t, mb(s.heapUsed)]));
    const span = (last.t - tailStart.t).toFixed(0);
    const target = i === 0 ? ` (target < ${boundMb} MB: ${verdict(tailGrowth < boundMb)})` : '';
    console.log(
      `  ${variants[i]!.name}: heapUsed first ${mb(first.heapUsed).toFixed(2)} MB, last ${mb(last.heapUsed).toFixed(2)} MB, max ${mb(max.heapUsed).toFixed(2)} MB (at ${max.t} s); ` +
        `slope ${slope.toFixed(2)} MB/min over the run, ${tailSlope.toFixed(2)} MB/min over the last ${span} s; the last ${span} s grew ${tailGrowth.toFixed(2)} MB${target}`,
    );
    console.log(`    attempts: ${JSON.stringify(end.outcomes)}; at close: ${JSON.stringify(end.report)}, ${end.queuedCalls} calls queued, Redis used_memory ${mb(end.redisMemory).toFixed(1)} MB`);
    summary.push(
      `${i === 0 ? 'soak' : '  diagnostic soak'}, ${variants[i]!.name}: heap growth over the last ${span} s ${tailGrowth.toFixed(2)} MB (slope there ${tailSlope.toFixed(2)} MB/min; over the run ${slope.toFixed(2)} MB/min, warm-up included)${target}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// 4. FifoMap against a Map, where the delivery and the registry take from the front
// ---------------------------------------------------------------------------------------------

/** µs per step of `step`, best of three runs of `n` steps (after a warm-up run). */
function perStep(n: number, setup: () => (i: number) => void): number {
  const times: number[] = [];
  for (let run = 0; run < 4; run++) {
    const step = setup();
    const started = performance.now();
    for (let i = 0; i < n; i++) step(i);
    if (run > 0) times.push(((performance.now() - started) * 1000) / n);
  }
  return Math.min(...times);
}

function structuresBench() {
  console.log('\n4. FifoMap against a Map taking its first key (keys().next()): µs per step, best of three runs of 200 000 steps.');
  const n = 200_000;
  type Front = { set(key: string, value: number): unknown; readonly size: number; shift(): void };
  const map = (): Front => {
    const m = new Map<string, number>();
    return { set: (k, v) => m.set(k, v), get size() { return m.size; }, shift: () => void m.delete(m.keys().next().value!) };
  };
  const fifo = (): Front => new FifoMap<string, number>();
  // The front taken as the delivery takes a waiting call: a look at the first (oldest()), then a delete.
  const fifoLooked = (): Front => {
    const m = new FifoMap<string, number>();
    return {
      set: (k, v) => m.set(k, v),
      get size() {
        return m.size;
      },
      shift: () => {
        for (const k of m.oldest()) {
          m.delete(k);
          break;
        }
      },
    };
  };
  const keys = Array.from({ length: n + 10_000 }, (_, i) => `call-${i}`);
  const shapes = [
    // The registry's remembered calls: a new call in, the oldest out past 10 000.
    { name: 'bounded cache of 10 000 (the registry)', make: (front: () => Front) => () => {
      const m = front();
      for (let i = 0; i < 10_000; i++) m.set(keys[i]!, i);
      return (i: number) => { m.set(keys[i + 10_000]!, i); if (m.size > 10_000) m.shift(); };
    } },
    // The calls waiting for a URI's slot: one in at the back, one out at the front, 5 000 waiting.
    { name: 'first-come queue of 5 000 (calls waiting for a slot)', looked: true, make: (front: () => Front) => () => {
      const m = front();
      for (let i = 0; i < 5_000; i++) m.set(keys[i]!, i);
      return (i: number) => { m.set(keys[i + 5_000]!, i); m.shift(); };
    } },
  ];
  console.table(
    shapes.map((shape) => {
      const baseline = perStep(n, shape.make(map));
      const ours = perStep(n, shape.make(shape.looked ? fifoLooked : fifo));
      summary.push(`FifoMap / Map, ${shape.name}: ${(ours / baseline).toFixed(2)}`);
      return { shape: shape.name, 'Map µs': baseline.toFixed(3), 'FifoMap µs': ours.toFixed(3), 'FifoMap / Map': (ours / baseline).toFixed(2) };
    }),
  );
}

const git = (args: string[]) => spawnSync('git', args, { cwd: here, encoding: 'utf8' }).stdout?.trim() ?? '';
const changed = git(['status', '--porcelain', '--', '../src']).split('\n').filter(Boolean).length;
console.log(
  `Redis scale-out bench: server source at ${git(['rev-parse', '--short', 'HEAD']) || 'unknown'}${changed ? ` with ${changed} uncommitted file(s) in src` : ''}; ` +
    `${spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout?.trim().split(' ').slice(0, 3).join(' ')}; Node ${process.version}; ${cpus().length} CPUs`,
);

try {
  if (only.has('delivery')) await deliveryBench();
  if (only.has('api')) await apiBench();
  if (only.has('soak')) await soakBench();
  if (only.has('structures')) structuresBench();
  console.log('\nSummary:');
  for (const line of summary) console.log(`  ${line}`);
} finally {
  await stopEverything();
}
