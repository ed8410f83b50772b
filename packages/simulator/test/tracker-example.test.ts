/**
 * The client README's reminder call, run as written (its port swapped for a free one) against the
 * simulator, with callbacks duplicated and delivered before the answers that caused them: the
 * callback handler and the event tracker take each event once, early or not.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { serveApp, type RunningServer } from '@call-automation/server/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulatorService } from '../src/index.ts';

const accessKey = Buffer.from('tracker-example-access-key-00001').toString('base64');
const callbackSecret = `whsec_${Buffer.from('tracker-example-callback-secret1').toString('base64')}`;
const tsx = join(import.meta.dirname, '..', '..', '..', 'node_modules', '.bin', 'tsx');

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

describe('the client README’s reminder call', () => {
  let service: ReturnType<typeof createSimulatorService>;
  let api: RunningServer;
  let control: RunningServer;
  let dir: string;

  beforeAll(async () => {
    service = createSimulatorService({ accessKeys: [accessKey], callbackSecret, allowLoopback: true, log: () => {} });
    api = await serveApp(service.api);
    control = await serveApp(service.control);
    // Placed in this package's test folder, so that its imports resolve as a user's would.
    dir = await mkdtemp(join(import.meta.dirname, '.example-'));
  });

  afterAll(async () => {
    await api?.close();
    await control?.close();
    await service?.close(500);
    await rm(dir, { recursive: true, force: true });
  });

  it('places the call, waits for the answer, the play and the key, and hangs up, with every event sent twice and early', async () => {
    const readme = await readFile(join(import.meta.dirname, '..', '..', 'client', 'README.md'), 'utf8');
    const example = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).find((code) => code.includes('createEventTracker()'));
    expect(example).toBeDefined();
    const port = await freePort();
    const file = join(dir, 'reminder.ts');
    await writeFile(file, example!.replaceAll('8000', String(port)));
    expect(
      (await fetch(`${control.url}/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ callbacks: { duplicateRate: 1, beforeAnswer: true } }) })).status,
    ).toBe(200);

    const child = spawn(tsx, [file], {
      env: { ...process.env, CALL_AUTOMATION_CONNECTION_STRING: `endpoint=${api.url}/;accesskey=${accessKey}`, CALL_AUTOMATION_CALLBACK_SECRET: callbackSecret },
      stdio: ['ignore', 'pipe', 'pipe'],
      // A group of its own: tsx runs the example in a child process, which must be stopped too.
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const requests = () => service.journal.list().flatMap((e) => (e.kind === 'request' ? [`${e.operationId} ${e.status}`] : []));
    try {
      // The example keeps its callback endpoint open, as an app does: it is stopped once it has hung up.
      const deadline = Date.now() + 30_000;
      while (!/confirmed/.test(output) || !requests().includes('hangupCall 202')) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`The example did not finish:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(output.trim()).toBe('completed confirmed');
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
    // The simulator's side: the call was placed, played to and hung up, its events delivered.
    expect(requests()).toEqual(['createCall 200', 'playAudio 202', 'hangupCall 202']);
    const attempts = service.journal.list().filter((e) => e.kind === 'attempt' && e.next === 'done');
    expect(attempts.length).toBeGreaterThanOrEqual(5);
  }, 60_000);
});
