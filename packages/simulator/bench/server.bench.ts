/**
 * `pnpm bench` (server): createCall through the full stub (HMAC, validation, the URI guard, the
 * simulator's handler), and the same stub with no-op handlers (to part the stub's cost from the
 * simulator's), against bare node:http doing the same parsing and HMAC check, bare Hono
 * with neither, and Fastify with its JSON-schema validation and the same HMAC check, once with
 * the simulator's createCall as its handler (the full stub's work) and once answering a UUID (the
 * no-op stub's). Each server is its own process, bundled by esbuild; wrk (or autocannon) loads
 * it over loopback in interleaved rounds; medians of req/s and p99 are printed with the ratios.
 * Then cold start (spawn to first answer), the replay cache's cost measured apart, and the
 * simulator on Redis with batchWrites and without it.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { createAuthenticator } from '@call-automation/server';
import { startBenchRedis, stopEverything } from '../../server/bench/processes.ts';
import { startReceiver } from '../../server/bench/receiver.ts';

const run = promisify(execFile);
const here = import.meta.dirname;
const buildDir = join(here, '.build');
const specJson = join(here, '..', '..', '..', 'spec', 'dist', 'openapi.json');
const key = Buffer.from('Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=', 'base64');
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const hasWrk = spawnSync('wrk', ['--version']).error === undefined;

const servers = [
  { name: 'full stub (HMAC, validation, simulator)', file: 'stub.ts', signed: true },
  { name: 'stub, no-op handlers (HMAC, validation)', file: 'stub-noop.ts', signed: true },
  { name: 'bare node:http (parse + HMAC)', file: 'bare-node.ts', signed: true },
  { name: 'bare Hono (parse)', file: 'bare-hono.ts', signed: false },
  { name: 'Fastify (JSON schema + HMAC)', file: 'fastify.ts', signed: true },
  { name: 'Fastify + the simulator\'s createCall', file: 'fastify.ts', signed: true, env: { HANDLER: 'simulator' } },
] as const satisfies ReadonlyArray<{ name: string; file: string; signed: boolean; env?: Record<string, string> }>;

// A public IP literal: the URI guard checks it without a DNS lookup, and nothing is sent to it.
const body = JSON.stringify({
  targets: [{ communicationUser: { id: '8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776_00000005-4f83-d4b7-a7ac-473a0d00d0c1' } }],
  callbackUri: 'https://93.184.216.34/api/callbacks',
  requestedModalities: ['audio'],
  requestedCallEvents: ['participantsUpdated'],
});

function signedHeaders(host: string, payload = body, date = new Date().toUTCString()) {
  const hash = createHash('sha256').update(payload).digest('base64');
  const signature = createHmac('sha256', key).update(`POST\n/calls\n${date};${host};${hash}`).digest('base64');
  return {
    'content-type': 'application/json',
    'x-ms-date': date,
    'x-ms-content-sha256': hash,
    authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${signature}`,
  };
}

async function bundle() {
  await mkdir(buildDir, { recursive: true });
  await build({
    entryPoints: [...new Set([...servers.map((s) => join(here, 'servers', s.file)), join(here, 'servers', 'stub-redis.ts')])],
    outdir: buildDir,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['fastify'],
    // A `require` for the CommonJS dependencies bundled into ESM, under a name the bundle's own imports do not take.
    banner: { js: "import { createRequire as createRequireForBundle } from 'node:module'; const require = createRequireForBundle(import.meta.url);" },
    logLevel: 'error',
  });
}

interface Started {
  child: ChildProcess;
  port: number;
}

function start(file: string, env: Record<string, string> = {}): Promise<Started> {
  const child = spawn(process.execPath, [join(buildDir, file.replace(/\.ts$/, '.js'))], { env: { ...process.env, SPEC_JSON: specJson, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /LISTENING (\d+)/.exec(out);
      if (match) resolve({ child, port: Number(match[1]) });
    });
    child.once('exit', (code) => reject(new Error(`${file} exited with ${code}`)));
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function firstAnswer(port: number, signed: boolean): Promise<number> {
  const host = `127.0.0.1:${port}`;
  const response = await fetch(`http://${host}/calls`, { method: 'POST', body, headers: signed ? signedHeaders(host) : { 'content-type': 'application/json' } });
  await response.text();
  return response.status;
}

/** CPU seconds a process has used (user + system, all its threads), where /proc tells. */
async function cpuSeconds(pid: number | undefined): Promise<number | undefined> {
  const stat = pid ? await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined) : undefined;
  if (!stat) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

/**
 * One load run against a server: its req/s and p99, and the server's CPU time per answer. On
 * this two-core machine the load generator takes one core, so req/s also depends on it; the
 * server's own CPU time per request is the steadier figure of what each server costs.
 */
async function load(port: number, signed: boolean, pid?: number, payload = body): Promise<{ rps: number; p99ms: number; requests: number; cpuUs?: number }> {
  const cpuBefore = await cpuSeconds(pid);
  const perRequest = async (requests: number) => {
    const cpuAfter = await cpuSeconds(pid);
    return cpuBefore === undefined || cpuAfter === undefined || !requests ? undefined : ((cpuAfter - cpuBefore) * 1e6) / requests;
  };
  const host = `127.0.0.1:${port}`;
  const headers: Record<string, string> = signed ? signedHeaders(host, payload) : { 'content-type': 'application/json' };
  if (hasWrk) {
    const script = join(buildDir, `post-${port}.lua`);
    await writeFile(
      script,
      [`wrk.method = "POST"`, `wrk.body = ${JSON.stringify(payload)}`, ...Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`)].join('\n'),
    );
    const { stdout } = await run('wrk', ['-t1', '-c50', `-d${seconds}s`, '--latency', '-s', script, `http://${host}/calls`]).finally(() => rm(script, { force: true }));
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)![1]);
    const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(stdout)!;
    const p99ms = Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1);
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
    if (non2xx) throw new Error(`${non2xx[1]} answers were not 2xx: the load is not measuring successes.`);
    const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
    return { rps, p99ms, requests, cpuUs: await perRequest(requests) };
  }
  const { stdout } = await run(join(here, '..', 'node_modules', '.bin', 'autocannon'), ['-c', '50', '-d', String(seconds), '-m', 'POST', '-b', payload, '-j', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}=${v}`]), `http://${host}/calls`], { maxBuffer: 1 << 24 });
  const result = JSON.parse(stdout) as { requests: { average: number; total: number }; latency: { p99: number }; non2xx: number };
  if (result.non2xx) throw new Error(`${result.non2xx} answers were not 2xx.`);
  return { rps: result.requests.average, p99ms: result.latency.p99, requests: result.requests.total, cpuUs: await perRequest(result.requests.total) };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

console.log(`Bundling the servers…  (load generator: ${hasWrk ? 'wrk -t1 -c50' : 'autocannon -c50'}, ${rounds} interleaved rounds of ${seconds} s each)`);
await bundle();

console.log('\nCold start: spawn to first 200, 7 runs each (median)');
const cold: Record<string, number> = {};
for (const server of servers) {
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    const started = await start(server.file, 'env' in server ? server.env : {});
    const status = await firstAnswer(started.port, server.signed);
    times.push(performance.now() - t0);
    await stop(started.child);
    if (status !== 200) throw new Error(`${server.name} answered ${status}`);
  }
  cold[server.name] = median(times);
  console.log(`  ${server.name.padEnd(42)} ${cold[server.name]!.toFixed(0)} ms`);
}

console.log('\nThroughput: POST /calls, one signed request repeated (the stub\'s replay cache is off for the load; its cost is measured below)');
const running = await Promise.all(servers.map((s) => start(s.file, 'env' in s ? s.env : {})));
const results: Record<string, { rps: number[]; p99: number[]; cpu: number[] }> = Object.fromEntries(servers.map((s) => [s.name, { rps: [], p99: [], cpu: [] }]));
try {
  for (const [i, server] of servers.entries()) await load(running[i]!.port, server.signed); // warm-up
  for (let round = 0; round < rounds; round++) {
    // Each round starts with a different server, so that no one always goes first.
    for (let k = 0; k < servers.length; k++) {
      const i = (k + round) % servers.length;
      const server = servers[i]!;
      const { rps, p99ms, cpuUs } = await load(running[i]!.port, server.signed, running[i]!.child.pid);
      results[server.name]!.rps.push(rps);
      results[server.name]!.p99.push(p99ms);
      if (cpuUs !== undefined) results[server.name]!.cpu.push(cpuUs);
    }
  }
} finally {
  await Promise.all(running.map((r) => stop(r.child)));
}
const hasCpu = servers.every((s) => results[s.name]!.cpu.length > 0);
const rows = servers.map((s) => ({
  server: s.name,
  'req/s (median)': Math.round(median(results[s.name]!.rps)),
  'p99 ms (median)': median(results[s.name]!.p99).toFixed(2),
  ...(hasCpu ? { 'server CPU µs/req (median)': median(results[s.name]!.cpu).toFixed(1) } : {}),
}));
console.table(rows);
const [full, noop, bareNode, bareHono, fastify, fastifySim] = servers.map((s) => s.name) as [string, string, string, string, string, string];
/**
 * The median over rounds of a req/s ratio taken within each round: both servers ran minutes
 * apart at most, so a slow phase of a shared machine weighs on both sides of each ratio.
 */
const ratio = (a: string, b: string) => median(results[a]!.rps.map((value, round) => value / results[b]!.rps[round]!)).toFixed(2);
console.log(`req/s ratios (median over rounds of each round's ratio):`);
console.log(`  full stub / bare node:http:                                    ${ratio(full, bareNode)}  (target ≥ 0.60)`);
// Two like-for-like pairs against Fastify: each side with the simulator's createCall, and each
// side with a handler that does nothing (the no-op stub; Fastify answering a fresh UUID).
console.log(`  full stub / Fastify, both running the simulator's createCall:  ${ratio(full, fastifySim)}  (target ≥ 0.85)`);
console.log(`  no-op stub / Fastify, neither with business logic:             ${ratio(noop, fastify)}  (target ≥ 0.85)`);
console.log(`  full stub / Fastify with no business logic (unlike work):      ${ratio(full, fastify)}`);
console.log(`  no-op stub / bare node:http: ${ratio(noop, bareNode)};  full stub / bare Hono: ${ratio(full, bareHono)}`);
if (hasCpu) {
  // The same comparisons by the servers' own CPU time per request (cost ratios, as req/s ratios are: baseline over stub).
  const cpu = (name: string) => median(results[name]!.cpu);
  console.log(
    `by server CPU per request: bare node:http / full stub ${(cpu(bareNode) / cpu(full)).toFixed(2)}, Fastify + simulator / full stub ${(cpu(fastifySim) / cpu(full)).toFixed(2)}, Fastify / no-op stub ${(cpu(fastify) / cpu(noop)).toFixed(2)}, Fastify / full stub ${(cpu(fastify) / cpu(full)).toFixed(2)}`,
  );
  console.log(
    `server CPU per request: full stub ${cpu(full).toFixed(0)} µs = no-op stub ${cpu(noop).toFixed(0)} µs + simulator ${(cpu(full) - cpu(noop)).toFixed(0)} µs; Fastify ${cpu(fastify).toFixed(0)} µs, + simulator ${cpu(fastifySim).toFixed(0)} µs; bare node:http ${cpu(bareNode).toFixed(0)} µs`,
  );
}
console.log(`cold start, full stub / bare Hono: ${(cold[full]! / cold[bareHono]!).toFixed(2)}  (target ≤ 1.20)`);

console.log('\nThe replay cache, in process: authenticating 50 000 distinct signed requests, 3 interleaved rounds');
const requests = Array.from({ length: 50_000 }, (_, i) => {
  const payload = body.replace('participantsUpdated', `participantsUpdated","n":"${i}`);
  const headers = signedHeaders('127.0.0.1:4780', payload);
  return { method: 'POST', pathAndQuery: '/calls', host: '127.0.0.1:4780', headers: { get: (name: string) => (headers as Record<string, string>)[name] }, body: payload };
});
const timings: Record<'on' | 'off', number[]> = { on: [], off: [] };
for (let round = 0; round < 3; round++) {
  for (const mode of round % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
    // A fresh authenticator per pass: every request is new to its cache, so none is a replay.
    const authenticate = createAuthenticator({ accessKeys: [key.toString('base64')], refuseReplays: mode === 'on' });
    const started = performance.now();
    for (const request of requests) await authenticate(request);
    timings[mode].push(((performance.now() - started) * 1000) / requests.length);
  }
}
const on = median(timings.on);
const off = median(timings.off);
console.log(`  on: ${on.toFixed(2)} µs, off: ${off.toFixed(2)} µs per authentication (the cache adds ${(on - off).toFixed(2)} µs)`);

/**
 * The simulator on Redis, as `REDIS_URL=… pnpm start` runs it, against the same without batchWrites
 * and with batchWrites writing once a turn (no bound on a write): what batchWrites earns for a
 * service whose requests send many commands of their own (the simulator's calls, timers and
 * journal), where the server bench measures it for the stores alone. Each variant has its own
 * redis-server; each call's events go to a receiver on loopback, and each run's CPU is read once
 * they are delivered.
 */
async function onRedis() {
  const variants: Array<{ name: string; env: Record<string, string> }> = [
    { name: 'on Redis, batchWrites (as pnpm start runs it)', env: {} },
    { name: 'on Redis, without batchWrites', env: { BATCH_WRITES: '0' } },
    { name: 'on Redis, batchWrites writing once a turn', env: { BATCH_WRITES: 'turn' } },
  ];
  const receiver = await startReceiver();
  const payload = body.replace('https://93.184.216.34/api/callbacks', receiver.url);
  const started: Array<Started & { redisPid: number }> = [];
  const results = variants.map(() => ({ rps: [] as number[], p99: [] as number[], cpu: [] as number[], redisCpu: [] as number[], events: [] as number[] }));
  /** Resolves once the receiver has had nothing new for 300 ms (at most 60 s). */
  const settled = async () => {
    for (let last = -1, quiet = 0, waited = 0; quiet < 3 && waited < 60_000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      quiet = receiver.count === last ? quiet + 1 : 0;
      last = receiver.count;
    }
  };
  try {
    for (const variant of variants) {
      const redis = await startBenchRedis();
      started.push({ ...(await start('stub-redis.ts', { REDIS_URL: `redis://127.0.0.1:${redis.port}`, ...variant.env })), redisPid: redis.pid });
    }
    for (const server of started) await load(server.port, true, undefined, payload); // warm-up
    await settled();
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < variants.length; k++) {
        const i = (k + round) % variants.length;
        const server = started[i]!;
        const [cpuBefore, redisBefore, deliveredBefore] = [await cpuSeconds(server.child.pid), await cpuSeconds(server.redisPid), receiver.count];
        const { rps, p99ms, requests } = await load(server.port, true, undefined, payload);
        await settled();
        const [cpuAfter, redisAfter] = [await cpuSeconds(server.child.pid), await cpuSeconds(server.redisPid)];
        const result = results[i]!;
        result.rps.push(rps);
        result.p99.push(p99ms);
        if (cpuBefore !== undefined && cpuAfter !== undefined) result.cpu.push(((cpuAfter - cpuBefore) * 1e6) / requests);
        if (redisBefore !== undefined && redisAfter !== undefined) result.redisCpu.push(((redisAfter - redisBefore) * 1e6) / requests);
        result.events.push((receiver.count - deliveredBefore) / requests);
      }
    }
  } finally {
    await Promise.all(started.map((server) => stop(server.child)));
    await stopEverything();
    await receiver.close();
  }
  const orBlank = (values: number[], digits = 0) => (values.length ? median(values).toFixed(digits) : '');
  console.table(
    variants.map((variant, i) => ({
      server: variant.name,
      'req/s (median)': Math.round(median(results[i]!.rps)),
      'p99 ms (median)': median(results[i]!.p99).toFixed(2),
      'server CPU µs/req': orBlank(results[i]!.cpu),
      'redis-server CPU µs/req': orBlank(results[i]!.redisCpu),
      'events delivered/req': orBlank(results[i]!.events, 2),
    })),
  );
  const [withBatch, without, onceATurn] = results as [(typeof results)[0], (typeof results)[0], (typeof results)[0]];
  const against = (other: typeof withBatch) => {
    const rps = median(withBatch.rps.map((value, round) => value / other.rps[round]!)).toFixed(2);
    const cpu = withBatch.cpu.length && other.cpu.length ? (median(other.cpu) / median(withBatch.cpu)).toFixed(2) : 'unknown (no /proc)';
    return `req/s ${rps}, by server CPU per request ${cpu}`;
  };
  console.log(`  batchWrites as set up, against without it: ${against(without)}; against writing once a turn: ${against(onceATurn)} (req/s: median over rounds of each round's ratio; CPU: the other's over batchWrites')`);
}

console.log(`\nThe simulator on Redis (as \`REDIS_URL=… pnpm start\` runs it, with batchWrites), without batchWrites, and with one write a turn: POST /calls, each call's events delivered to a receiver on loopback, ${rounds} interleaved rounds of ${seconds} s`);
if (spawnSync('redis-server', ['--version']).error) console.log('  not measured: redis-server is not installed (apt-get install redis-server).');
else await onRedis();
