// The service an implementer copies from packages/server/README.md ("A service in thirty
// lines"), run as written on a free loopback port, passes the conformance suite: every check
// that can run against it passes, and the ones skipped are only those that need what the README's
// service does not have (a control surface that makes participants act) or was not asked to do
// (refuse replayed signatures).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { allChecks, runChecks, type CheckResult } from '@call-automation/conformance';
import { startCallbackReceiver, type CallbackReceiver } from '@call-automation/conformance/harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './packing.ts';

const serverDir = join(repoRoot, 'packages', 'server');
const accessKey = Buffer.from('readme-conformance-access-key-01').toString('base64');
const callbackSecret = `whsec_${Buffer.from('readme-conformance-callback-secret').toString('base64')}`;

/**
 * The README's example, as a file that runs here: the package imported from its source, and
 * served on a free loopback port rather than 0.0.0.0:8080. Its URI guard allows loopback, where
 * the suite's callback receiver listens (this machine reaches nothing else); the README's guard,
 * for a real deployment, refuses it.
 */
async function readmeService(dir: string): Promise<string> {
  const readme = await readFile(join(serverDir, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((code) => code.includes('createCallAutomationService('));
  expect(blocks).toHaveLength(1);
  let code = blocks[0]!;
  const substitutions: Array<[string, string]> = [
    ["'@call-automation/server/node'", `'${join(serverDir, 'src', 'node.ts')}'`],
    ["'@call-automation/server'", `'${join(serverDir, 'src', 'index.ts')}'`],
    ["{ host: '0.0.0.0', port: 8080 }", "{ host: '127.0.0.1', port: 0 }"],
    ['createUriGuard()', 'createUriGuard({ allowLoopback: true })'],
  ];
  for (const [from, to] of substitutions) {
    expect(code, `the README's example has ${from}`).toContain(from);
    code = code.replaceAll(from, to);
  }
  const file = join(dir, 'service.ts');
  await writeFile(file, code);
  return file;
}

/** Starts the example and answers the URL it prints ("listening on …"). */
function start(file: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(join(repoRoot, 'node_modules', '.bin', 'tsx'), [file], {
    env: { ...process.env, ACCESS_KEY: accessKey, CALLBACK_SECRET: callbackSecret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`The README's service did not start within 30 s:\n${output}`)), 30_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = /listening on (http:\/\/\S+)/.exec(output);
      if (listening) {
        clearTimeout(timer);
        resolve({ child, url: listening[1]!.replace(/\/$/, '') });
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`The README's service exited (${code}) before listening:\n${output}`));
    });
  });
}

describe("the README's service", () => {
  let dir: string;
  let service: { child: ChildProcess; url: string } | undefined;
  let receiver: CallbackReceiver;
  let results: CheckResult[];

  beforeAll(async () => {
    dir = await mkdtemp(join(import.meta.dirname, '.readme-conformance-'));
    receiver = await startCallbackReceiver();
    service = await start(await readmeService(dir));
    results = await runChecks({ baseUrl: service.url, accessKey, callbackUrl: `${receiver.url}/callbacks`, receiver, callbackSecret, seed: 20261201 });
  }, 120_000);
  afterAll(async () => {
    if (service && service.child.exitCode === null) {
      const exited = new Promise((resolve) => service!.child.once('exit', resolve));
      service.child.kill('SIGTERM');
      await exited;
    }
    await receiver?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('passes every check of the conformance suite that it can run', () => {
    expect(results.map((r) => r.id)).toEqual(allChecks.map((c) => c.id));
    expect(results.filter((r) => r.status === 'failed').map((r) => `${r.id}: ${r.message}`)).toEqual([]);
  });

  it('skips only what needs a control surface, or a refusal of replays it was not asked for', () => {
    const skipped = results.filter((r) => r.status === 'skipped');
    for (const result of skipped) expect(`${result.id}: ${result.message}`).toMatch(/--control-url|--expect-replay-refusal/);
    // Today: DTMF, which needs a participant to press keys, and auth.replay.
    expect(skipped.map((r) => r.id).sort()).toEqual(['auth.replay', 'callbacks.dtmf']);
  });
});
