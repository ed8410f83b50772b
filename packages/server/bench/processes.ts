/**
 * The processes a bench starts: redis-servers (through the tests' helper: each on a free loopback
 * port, in its own directory), Node children (a server under load, the soak) and their CPU time.
 * Every process is stopped by its pid, also when the bench fails or is interrupted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { batchWrites } from '@call-automation/server/redis';
import { freePort, startRedis, stopAll, type RedisProcess } from '../test/redis-server.ts';

export { freePort };

/**
 * A redis-server set up as the package README asks of production: the append-only file on
 * (`everysec`, the helper's default for crash tests being `always`) and no eviction.
 */
export function startBenchRedis(): Promise<RedisProcess> {
  return startRedis({ args: ['--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction'] });
}

/**
 * A connection as the README sets one up (batchWrites included, unless `batch: false`; with its
 * default bound on a write, unless `maxCommands`), resolved once it is ready.
 */
export async function connectRedis(port: number, options: { autoPipelining?: boolean; batch?: boolean; maxCommands?: number } = {}): Promise<Redis> {
  const redis = new Redis({ host: '127.0.0.1', port, enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, enableAutoPipelining: options.autoPipelining ?? false });
  await redis.connect();
  return options.batch === false ? redis : batchWrites(redis, options.maxCommands === undefined ? {} : { maxCommands: options.maxCommands });
}

const children = new Set<ChildProcess>();

export interface Child {
  child: ChildProcess;
  pid: number;
  /** The JSON the child printed on its first `READY ` line. */
  ready: Record<string, unknown>;
  /** Every later line the child prints that starts with `DATA `, parsed. */
  data: Array<Record<string, unknown>>;
}

/**
 * Runs a TypeScript file of this folder in a Node child under the same loader (tsx) as the bench,
 * and resolves once it prints `READY {json}`. Its other output goes to the bench's stderr.
 */
export function startNode(file: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Child> {
  const child = spawn(process.execPath, [...process.execArgv, ...nodeArgs, file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const data: Array<Record<string, unknown>> = [];
  return new Promise((resolve, reject) => {
    let buffered = '';
    let ready = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (!ready && line.startsWith('READY ')) {
          ready = true;
          resolve({ child, pid: child.pid!, ready: JSON.parse(line.slice(6)) as Record<string, unknown>, data });
        } else if (line.startsWith('DATA ')) data.push(JSON.parse(line.slice(5)) as Record<string, unknown>);
        else if (line) process.stderr.write(`  [${file.split('/').pop()}] ${line}\n`);
      }
    });
    child.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`${file} exited with ${code ?? signal} before it was ready.`));
    });
  });
}

/** Sends the child SIGUSR2 and resolves with the next `DATA` line it prints. */
export async function ask(child: Child, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const seen = child.data.length;
  process.kill(child.pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  while (child.data.length === seen) {
    if (Date.now() > deadline) throw new Error(`The child ${child.pid} did not answer SIGUSR2 within ${timeoutMs} ms.`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return child.data[seen]!;
}

/** Resolves when the child has exited (by itself). */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Stops a child by its pid: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = exited(child);
  process.kill(child.pid!, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  }, graceMs);
  await gone;
  clearTimeout(timer);
}

/** Stops every child and every redis-server the bench started, each by its pid. */
export async function stopEverything(): Promise<void> {
  try {
    await Promise.all([...children].map((child) => stopChild(child)));
  } finally {
    await stopAll();
  }
}

/**
 * CPU seconds a process has used (user + system), where /proc tells; with `children`, those of
 * its children that ended and were waited for instead (a redis-server's rewrites of its
 * append-only file, each in a child of its own).
 */
export async function cpuSeconds(pid: number, children = false): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime + stime (cutime + cstime for the children), in ticks of 1/100 s
  return children ? (Number(fields[13]) + Number(fields[14])) / 100 : (Number(fields[11]) + Number(fields[12])) / 100;
}

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
