import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allChecks, runChecks, type CheckResult } from '../src/index.ts';
import { startCallbackReceiver, type CallbackReceiver } from '../src/harness/index.ts';
import { accessKey, brokenServers, callbackSecret, serveTarget } from './fixtures.ts';

let receiver: CallbackReceiver;
beforeAll(async () => {
  receiver = await startCallbackReceiver();
});
afterAll(() => receiver.close());

async function check(broken: (typeof brokenServers)[number] | undefined, only?: string[]): Promise<CheckResult[]> {
  const target = await serveTarget(broken);
  try {
    return await runChecks({
      baseUrl: target.url,
      accessKey,
      callbackUrl: `${receiver.url}/callbacks`,
      receiver,
      callbackSecret,
      controlUrl: target.controlUrl,
      seed: 20261123,
      only,
    });
  } finally {
    await target.close();
  }
}

describe('the suite against the simulator', () => {
  it('passes every check, and skips none', async () => {
    const results = await check(undefined);
    expect(results.filter((r) => r.status !== 'passed').map((r) => `${r.id}: ${r.message}`)).toEqual([]);
    expect(results.map((r) => r.id)).toEqual(allChecks.map((c) => c.id));
  }, 60_000);

  it('skips, and says why, what needs a callback URL or a control surface it was not given', async () => {
    const target = await serveTarget();
    try {
      const results = await runChecks({ baseUrl: target.url, accessKey, seed: 1, only: ['callbacks.*', 'lifecycle.*', 'negative.call-operations'] });
      expect(results.every((r) => r.status === 'skipped')).toBe(true);
      expect(results[0]!.message).toMatch(/--callback-url/);
    } finally {
      await target.close();
    }
  });
});

describe('the suite catches a broken server', () => {
  it.each(brokenServers.map((b) => [b.name, b] as const))('%s', async (_name, broken) => {
    const results = await check(broken, [broken.caughtBy]);
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ id: broken.caughtBy, status: 'failed' });
    expect(results[0]!.message).toMatch(broken.says);
  }, 30_000);
});
