// The service an implementer copies from packages/server/README.md ("A service in seventy
// lines"), run as written on a free loopback port, passes the conformance suite: every check
// that can run against it passes, and the ones skipped are only those that need what the README's
// service does not have (a control surface that makes participants act) or was not asked to do
// (refuse replayed signatures). scripts/test/registry.test.ts runs the same service from the
// packages as published, against the conformance CLI as installed.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { allChecks, runChecks, type CheckResult } from '@call-automation/conformance';
import { startCallbackReceiver, type CallbackReceiver } from '@call-automation/conformance/harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './packing.ts';
import { readmeCredentials, readmeServiceCode, readmeSkips, serverDir, startReadmeService, stop } from './readme-service.ts';

const { accessKey, callbackSecret } = readmeCredentials;

/**
 * The README's example, as a file that runs here: the package imported from its source (the one
 * swap beyond those readmeServiceCode always makes: a free loopback port, a guard that allows
 * loopback).
 */
async function readmeService(dir: string): Promise<string> {
  const code = await readmeServiceCode([
    ["'@call-automation/server/node'", `'${join(serverDir, 'src', 'node.ts')}'`],
    ["'@call-automation/server'", `'${join(serverDir, 'src', 'index.ts')}'`],
  ]);
  const file = join(dir, 'service.ts');
  await writeFile(file, code);
  return file;
}

describe("the README's service", () => {
  let dir: string;
  let service: Awaited<ReturnType<typeof startReadmeService>> | undefined;
  let receiver: CallbackReceiver;
  let results: CheckResult[];

  beforeAll(async () => {
    dir = await mkdtemp(join(import.meta.dirname, '.readme-conformance-'));
    receiver = await startCallbackReceiver();
    service = await startReadmeService(join(repoRoot, 'node_modules', '.bin', 'tsx'), [await readmeService(dir)]);
    results = await runChecks({ baseUrl: service.url, accessKey, callbackUrl: `${receiver.url}/callbacks`, receiver, callbackSecret, seed: 20261201 });
  }, 120_000);
  afterAll(async () => {
    await stop(service?.child);
    await receiver?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('passes every check of the conformance suite that it can run', () => {
    expect(results.map((r) => r.id)).toEqual(allChecks.map((c) => c.id));
    expect(results.filter((r) => r.status === 'failed').map((r) => `${r.id}: ${r.message}`)).toEqual([]);
  });

  it('skips only what needs a control surface, or a refusal of replays it was not asked for', () => {
    const skipped = results.filter((r) => r.status === 'skipped');
    // Today: DTMF, which needs a participant to press keys, and auth.replay (readmeSkips says why).
    expect(skipped.map((r) => r.id).sort()).toEqual(Object.keys(readmeSkips).sort());
    for (const result of skipped) expect(`${result.id}: ${result.message}`).toMatch(readmeSkips[result.id]!.needs);
  });
});
