/**
 * The runtimes' executables as the workspace installed them (the real binaries, not the npm
 * wrappers, so that the pid a test holds is the runtime's own), and a run of one program that is
 * always ended by its pid: when it outlives its time, and when the test that started it ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../packing.ts';

const executables = {
  bun: join(repoRoot, 'node_modules', 'bun', 'bin', 'bun.exe'),
  deno: join(repoRoot, 'node_modules', 'deno', 'deno'),
} as const;

/** A runtime's executable; throws, saying how to get it, when the workspace has none. */
export function executable(runtime: keyof typeof executables): string {
  const path = executables[runtime];
  if (!existsSync(path)) throw new Error(`No ${runtime} at ${path}: the root's dev dependency "${runtime}" installs it (pnpm install).`);
  return path;
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

/** Runs a program to its end, or kills it by its pid after `timeoutMs`. */
export function runToEnd(file: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      stderr += `\n[killed by the test after ${options.timeoutMs} ms]`;
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      running.delete(child);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Kills, by pid, every program `runToEnd` started that is still running (for afterAll). */
export function killRunning(): void {
  for (const child of running) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  }
  running.clear();
}
