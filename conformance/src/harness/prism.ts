import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { freePort } from './ports.ts';

const require = createRequire(import.meta.url);

/** Prism's own entry point, run with this Node directly, so that its pid is Prism's. */
function prismEntry(): string {
  let manifest: string;
  try {
    manifest = require.resolve('@stoplight/prism-cli/package.json');
  } catch (cause) {
    throw new Error('startPrism needs Prism, an optional peer dependency: install it beside this package (npm install -D @stoplight/prism-cli@^5.14.2).', { cause });
  }
  const { bin } = JSON.parse(readFileSync(manifest, 'utf8')) as { bin: string | Record<string, string> };
  return join(dirname(manifest), typeof bin === 'string' ? bin : bin.prism!);
}

export interface PrismOptions {
  /** `mock` answers from the spec's examples; `proxy` forwards to `upstream` and validates both ways. */
  mode: 'mock' | 'proxy';
  /** The spec file to serve. */
  spec: string;
  /** The server a proxy forwards to. */
  upstream?: string;
  /** For a proxy: turn any response that breaks the spec into a 500, and block invalid requests. */
  errors?: boolean;
  host?: string;
  /** A port to listen on; by default a free one. */
  port?: number;
  /** Receives Prism's log lines. */
  log?: (line: string) => void;
  /** How long to wait for Prism to listen. */
  startTimeoutMs?: number;
}

export interface RunningPrism {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts Prism as a real process, waits until it listens, and gives back its URL and a way to stop it. */
export async function startPrism(options: PrismOptions): Promise<RunningPrism> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const args = [prismEntry(), options.mode, options.spec];
  if (options.mode === 'proxy') {
    if (!options.upstream) throw new Error('A Prism proxy needs an upstream URL.');
    args.push(options.upstream);
    if (options.errors) args.push('--errors');
  }
  args.push('--host', host, '--port', String(port));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const stop = () => stopProcess(child);
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Prism did not start within ${options.startTimeoutMs ?? 30_000} ms:\n${output}`)),
      options.startTimeoutMs ?? 30_000,
    );
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      for (const line of text.split('\n')) if (line.trim()) options.log?.(line);
      if (output.includes('Prism is listening')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Prism exited with code ${code} before it listened:\n${output}`));
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, pid: child.pid!, stop };
}

/** Ends a child process by its pid: SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
export function stopProcess(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
