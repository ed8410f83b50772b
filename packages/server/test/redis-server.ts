/**
 * Real redis-server processes for the tests of the Redis stores: each on a free 127.0.0.1 port,
 * with its own data directory and the append-only file on, synced on every write (what a restart
 * after SIGKILL reads back). Every
 * process is stopped by its pid; `stopAll` is for afterAll, whatever the tests did.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';

const started = new Set<ChildProcess>();
const dirs = new Set<string>();

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function tempDir(name = 'redis'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `ca-${name}-`));
  dirs.add(dir);
  return dir;
}

export interface RedisProcess {
  readonly port: number;
  readonly dir: string;
  readonly pid: number;
  /** Ends the process with SIGKILL, as a crash would: only what the append-only file holds survives. */
  kill(): Promise<void>;
  /** Starts redis-server again on the same port and directory. */
  restart(): Promise<void>;
}

/** Starts redis-server and resolves once it accepts connections. */
export async function startRedis(options: { port?: number; dir?: string; args?: string[] } = {}): Promise<RedisProcess> {
  const dir = options.dir ?? (await tempDir());
  let port = options.port ?? (await freePort());
  let args: string[];
  let child: ChildProcess;
  for (let attempt = 1; ; attempt++) {
    // appendfsync always: the tests kill Redis with SIGKILL, and under everysec Redis may answer a
    // write it has not yet handed to the file (while an fsync is running), which a kill then loses.
    args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir, ...(options.args ?? [])];
    try {
      child = await launch(args);
      break;
    } catch (error) {
      // Test files run in parallel: another may have taken the port between its check and here.
      if (options.port !== undefined || attempt === 3) throw error;
      port = await freePort();
    }
  }
  return {
    port,
    dir,
    get pid() {
      return child.pid!;
    },
    async kill() {
      await stop(child, 'SIGKILL');
    },
    async restart() {
      child = await launch(args);
    },
  };
}

async function launch(args: string[]): Promise<ChildProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(child);
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s:\n${output}`)), 10_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}:\n${output}`));
    });
  }).catch(async (error) => {
    await stop(child, 'SIGKILL');
    throw error;
  });
  return child;
}

async function stop(child: ChildProcess, signal: NodeJS.Signals) {
  started.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid!, signal);
  await exited;
}

/** A port that is free, and whose cluster bus port (10 000 above it) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10_000 > 65_535) continue;
    const bus = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port + 10_000, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (bus) return port;
  }
}

/** A Redis Cluster of three masters and no replicas, each a redis-server of its own. */
export async function startCluster(): Promise<RedisProcess[]> {
  const nodes: RedisProcess[] = [];
  for (let i = 0; i < 3; i++) {
    const dir = await tempDir('redis-cluster');
    nodes.push(await startRedis({ port: await clusterPort(), dir, args: ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf')] }));
  }
  redisCli(['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '0', '--cluster-yes']);
  const deadline = Date.now() + 20_000;
  for (const node of nodes) {
    while (!redisCli(['-p', String(node.port), 'cluster', 'info']).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error('The cluster did not come up within 20 s.');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return nodes;
}

/** redis-cli, for what the tests set up around the stores (joining a cluster). */
export function redisCli(args: string[]): string {
  const result = spawnSync('redis-cli', args, { encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
  return result.stdout;
}

/** Stops every redis-server the tests started, by pid, and removes their directories. */
export async function stopAll(): Promise<void> {
  try {
    await Promise.all([...started].map((child) => stop(child, 'SIGKILL')));
  } finally {
    await Promise.all([...dirs].map((dir) => rm(dir, { recursive: true, force: true })));
    dirs.clear();
  }
}

/**
 * An ioredis connection to a test's redis-server, ready: refused reconnections while Redis is down
 * are expected (requests see them as failed commands), so its error events are not reported.
 * Commands fail at once while it is away unless `options` say otherwise.
 */
export async function connectRedis(port: number, options: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 1 }): Promise<Redis> {
  const connection = new Redis({ host: '127.0.0.1', port, ...options });
  connection.on('error', () => {});
  await ready(connection).catch((error: unknown) => {
    connection.disconnect();
    throw error;
  });
  return connection;
}

/** Resolves once a connection is ready (again, after a restart of Redis), or fails after 10 s. */
export async function ready(connection: Redis): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (connection.status !== 'ready') {
    if (Date.now() > deadline) throw new Error(`The connection is ${connection.status}, not ready.`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Counts the writes a connection's socket makes from now on: its stream's `_write` for one chunk,
 * `_writev` for several written at once (a corked socket's). `stop()` puts the socket back.
 */
export function countWrites(connection: Redis): { readonly count: number; stop(): void } {
  const socket = connection.stream as unknown as { _write: (...args: unknown[]) => void; _writev: (...args: unknown[]) => void };
  const [write, writev] = [socket._write, socket._writev];
  const counter = { count: 0, stop: () => Object.assign(socket, { _write: write, _writev: writev }) };
  socket._write = function (...args) {
    counter.count++;
    return write.apply(this, args);
  };
  socket._writev = function (...args) {
    counter.count++;
    return writev.apply(this, args);
  };
  return counter;
}

/**
 * A script's invocations in its arguments (after the SHA): of a script sent for many
 * (defineGatheredScript: ARGV is their number, each's numbers of keys and arguments, then their
 * arguments), each's keys and arguments; of another script, its own.
 */
export function invocations([numberOfKeys, ...rest]: string[]): Array<{ keys: string[]; argv: string[] }> {
  const keys = rest.slice(0, Number(numberOfKeys));
  const argv = rest.slice(keys.length);
  const n = Number(argv[0]);
  const counts = argv.slice(1, 1 + 2 * n).map(Number);
  const total = (parity: number) => counts.reduce((sum, count, i) => (i % 2 === parity ? sum + count : sum), 0);
  if (!(n >= 1) || counts.some((count) => !Number.isInteger(count)) || total(0) !== keys.length || total(1) !== argv.length - 1 - 2 * n) return [{ keys, argv }];
  const result: Array<{ keys: string[]; argv: string[] }> = [];
  let [k, a] = [0, 1 + 2 * n];
  for (let i = 0; i < n; i++) {
    const [nk, na] = [counts[2 * i]!, counts[2 * i + 1]!];
    result.push({ keys: keys.slice(k, k + nk), argv: argv.slice(a, a + na) });
    [k, a] = [k + nk, a + na];
  }
  return result;
}
