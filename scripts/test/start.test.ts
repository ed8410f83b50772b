import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createCallAutomationClient } from '@call-automation/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binDir, repoRoot } from '../lib/paths.ts';

/**
 * Stops a start and everything it started: the children run in a process group of their own, and
 * the whole group gets SIGKILL (tsx runs the script in a child of its own, which a SIGKILL of tsx
 * alone would leave running).
 */
function killGroup(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

const accessKey = Buffer.from('start-test-access-key-0000000001').toString('base64');
const callbackSecret = `whsec_${Buffer.from('start-test-callback-secret-00001').toString('base64')}`;

/** `pnpm start`'s program, as a newcomer runs it (without the generate step, which has its own tests). */
describe('scripts/start.ts', () => {
  let child: ChildProcess;
  let output = '';
  let url: string;

  beforeAll(async () => {
    child = spawn(join(binDir, 'tsx'), [join(repoRoot, 'scripts', 'start.ts')], {
      cwd: repoRoot,
      // Targets ring for a minute before they answer, so that a call made here is still ringing when looked at.
      env: { ...process.env, PORT: '0', CONTROL_PORT: '0', CALL_AUTOMATION_ACCESS_KEY: accessKey, CALL_AUTOMATION_CALLBACK_SECRET: callbackSecret, SIMULATOR_ANSWER_DELAY_MS: '60000' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 30_000;
    while (!/Ctrl\+C stops it/.test(output)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`pnpm start did not come up:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    url = /simulator on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1]!;
  }, 60_000);

  afterAll(() => {
    killGroup(child);
  });

  it('prints the URL, a ready connection string, the docs, the spec and the control surface', () => {
    expect(output).toContain(`connection string  endpoint=${url}/;accesskey=${accessKey}`);
    expect(output).toContain(`docs               ${url}/docs`);
    expect(output).toContain(`${url}/openapi.json`);
    expect(output).toMatch(/control +http:\/\/127\.0\.0\.1:\d+ +\(loopback only\)/);
    // Every route of the control surface that the README lists.
    for (const route of ['GET  /calls', 'POST /calls/{callLegId}/hangup', 'POST /calls/{callLegId}/dtmf', 'POST /calls/{callLegId}/participants/{id}/leave', 'POST /invitations/decline', 'GET  /dead-letters', 'POST /dead-letters/{id}/redrive', 'GET  /stream', 'GET|POST|DELETE /faults']) {
      expect(output).toContain(route);
    }
    expect(output).not.toContain('made up for this run');
  });

  it('serves the docs page and the spec, and a call through the client', async () => {
    const docs = await fetch(`${url}/docs`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain('Call Automation API');
    expect(((await (await fetch(`${url}/openapi.json`)).json()) as { openapi: string }).openapi).toBe('3.1.0');
    const client = createCallAutomationClient(`endpoint=${url}/;accesskey=${accessKey}`);
    const created = await client.createCall({ targets: [{ phoneNumber: { value: '+14251001000' } }], callbackUri: 'http://127.0.0.1:9/cb', requestedModalities: ['audio'], requestedCallEvents: [] });
    expect(created.response.status).toBe(200);
    // SIMULATOR_ANSWER_DELAY_MS: its target still rings (the default delay is 200 ms).
    await new Promise((resolve) => setTimeout(resolve, 600));
    const control = /control +(http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1]!;
    const calls = (await (await fetch(`${control}/calls`)).json()) as Array<{ callLegId: string; state: string }>;
    expect(calls).toEqual([expect.objectContaining({ callLegId: created.data!.callLegId, state: 'establishing' })]);
    expect((await client.hangupCall(created.data!.callLegId)).response.status).toBe(202);
    // A browser opened at the API's root is sent to the docs.
    const root = await fetch(`${url}/`, { redirect: 'manual' });
    expect([root.status, root.headers.get('location')]).toEqual([302, '/docs']);
  });

  it('stops cleanly on SIGINT', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(output).toContain('SIGINT: stopping');
  }, 20_000);
});

/** Waits until `output()` matches, or fails with what was printed. */
async function waitForOutput(child: ChildProcess, output: () => string, pattern: RegExp, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(output())) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${pattern} in the output:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('pnpm start', () => {
  it('skips what is current, and stops on SIGTERM sent to pnpm, leaving nothing listening', async () => {
    const child = spawn('pnpm', ['start'], {
      cwd: repoRoot,
      env: { ...process.env, PORT: '0', CONTROL_PORT: '0', CALL_AUTOMATION_ACCESS_KEY: accessKey, CALL_AUTOMATION_CALLBACK_SECRET: callbackSecret },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    try {
      await waitForOutput(child, () => output, /Ctrl\+C/);
      // The committed generated files match the spec (check:generated holds them to it).
      expect(output).toContain('Generated files are current with the spec (skipped pnpm generate).');
      const url = /simulator on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1]!;
      expect((await fetch(`${url}/openapi.json`)).status).toBe(200);
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      // What pnpm ran is gone with it: the port refuses connections.
      const deadline = Date.now() + 10_000;
      let refused = false;
      while (!refused && Date.now() < deadline) {
        refused = await fetch(`${url}/openapi.json`).then(
          () => false,
          () => true,
        );
        if (!refused) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(refused).toBe(true);
    } finally {
      killGroup(child);
    }
  }, 60_000);

  it('lists its settings with --help, starting nothing, and refuses arguments it does not take', async () => {
    const run = async (args: string[]) => {
      const child = spawn(join(binDir, 'tsx'), [join(repoRoot, 'scripts', 'start.ts'), ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      return { code, output };
    };
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    for (const name of ['HOST', 'PORT', 'CONTROL_PORT', 'CALL_AUTOMATION_ACCESS_KEY', 'CALL_AUTOMATION_CALLBACK_SECRET', 'REDIS_URL', 'SIMULATOR_ANSWER_DELAY_MS', 'SIMULATOR_RING_TIMEOUT_MS', 'SIMULATOR_SCENARIOS', 'SIMULATOR_CORS_ORIGINS']) {
      expect(help.output).toMatch(new RegExp(`^  ${name} `, 'm'));
    }
    expect(help.output).not.toContain('Building the docs');
    const refused = await run(['--port', '4790']);
    expect(refused.code).toBe(1);
    expect(refused.output).toContain('pnpm start takes no arguments (--port 4790): its settings are environment variables.');
  }, 30_000);

  it('reports a port in use before any slow work', async () => {
    const { createServer } = await import('node:net');
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as { port: number };
    try {
      const child = spawn(join(binDir, 'tsx'), [join(repoRoot, 'scripts', 'start.ts')], {
        cwd: repoRoot,
        env: { ...process.env, PORT: String(port), CONTROL_PORT: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      });
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const code = await new Promise((resolve) => child.once('exit', resolve));
      expect(code).toBe(1);
      expect(output).toContain(`127.0.0.1:${port} is in use (PORT). Stop what holds it, or choose other ports: PORT=4790 CONTROL_PORT=4791 pnpm start`);
      expect(output).not.toContain('Building the docs');
      expect(output).not.toContain('regenerating');
    } finally {
      holder.close();
    }
  }, 30_000);
});

describe('pnpm start with REDIS_URL', () => {
  it('runs instances on one Redis that share their calls, and says where the state is', async () => {
    const { startRedis, stopAll } = await import('../../packages/server/test/redis-server.ts');
    const redis = await startRedis();
    const children: ChildProcess[] = [];
    try {
      const start = async () => {
        const child = spawn(join(binDir, 'tsx'), [join(repoRoot, 'scripts', 'start.ts')], {
          cwd: repoRoot,
          env: { ...process.env, PORT: '0', CONTROL_PORT: '0', REDIS_URL: `redis://127.0.0.1:${redis.port}`, CALL_AUTOMATION_ACCESS_KEY: accessKey, CALL_AUTOMATION_CALLBACK_SECRET: callbackSecret },
          stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
        });
        children.push(child);
        let output = '';
        child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
        await waitForOutput(child, () => output, /Ctrl\+C stops it/);
        return {
          output,
          url: /simulator on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1]!,
          control: /control +(http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1]!,
        };
      };
      const [a, b] = await Promise.all([start(), start()]);
      expect(a.output).toContain(`state              on Redis at redis://127.0.0.1:${redis.port}`);
      const created = await createCallAutomationClient(`endpoint=${a.url}/;accesskey=${accessKey}`).createCall({
        targets: [{ phoneNumber: { value: '+14251001000' } }],
        callbackUri: 'http://127.0.0.1:9/cb',
        requestedModalities: ['audio'],
        requestedCallEvents: [],
      });
      expect(created.response.status).toBe(200);
      const listed = (await (await fetch(`${b.control}/calls`)).json()) as Array<{ callLegId: string }>;
      expect(listed.map((call) => call.callLegId)).toEqual([created.data!.callLegId]);
      expect((await createCallAutomationClient(`endpoint=${b.url}/;accesskey=${accessKey}`).hangupCall(created.data!.callLegId)).response.status).toBe(202);
    } finally {
      for (const child of children) killGroup(child);
      await stopAll();
    }
  }, 60_000);

  it('refuses a scenario file that does not match its schema, saying where', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'ca-start-'));
    try {
      await writeFile(join(dir, 'flows.yaml'), 'identifiers:\n  "+15550100042": { outcome: hangup }\n');
      const child = spawn(join(binDir, 'tsx'), [join(repoRoot, 'scripts', 'start.ts')], {
        cwd: repoRoot,
        env: { ...process.env, PORT: '0', CONTROL_PORT: '0', SIMULATOR_SCENARIOS: join(dir, 'flows.yaml') },
        stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      });
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      expect(await new Promise<number | null>((resolve) => child.once('exit', resolve))).toBe(1);
      expect(output).toContain('/identifiers/+15550100042/outcome must be equal to one of the allowed values');
      expect(output).toContain('SIMULATOR_SCENARIOS names a JSON or YAML file');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('refuses to start, saying why, when Redis cannot be reached', async () => {
    const child = spawn(join(binDir, 'tsx'), [join(repoRoot, 'scripts', 'start.ts')], {
      cwd: repoRoot,
      env: { ...process.env, PORT: '0', CONTROL_PORT: '0', REDIS_URL: 'redis://127.0.0.1:1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(output).toContain('Cannot reach Redis at redis://127.0.0.1:1 (connect ECONNREFUSED 127.0.0.1:1). Is redis-server running there?');
  }, 30_000);
});
