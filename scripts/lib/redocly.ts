import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { binDir } from './paths.ts';

export interface RedoclyResult {
  code: number;
  stdout: string;
  stderr: string;
}

// Redocly prints a framed Node.js 20 end-of-life notice on every run; it says nothing about the
// spec, so it is dropped from what we show.
const banner = /^\s*[╔║╚].*$\n?/gmu;

/** Runs the Redocly CLI with telemetry off, in `cwd`, and collects its output. */
export function redocly(args: string[], cwd: string): Promise<RedoclyResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(binDir, 'redocly'), args, {
      cwd,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code: code ?? 1,
        stdout: stdout.replace(banner, '').trim(),
        stderr: stderr.replace(banner, '').trim(),
      }),
    );
  });
}
