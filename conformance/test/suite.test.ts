import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allChecks, runChecks, summaryTable, type CheckResult } from '../src/index.ts';
import { startCallbackReceiver, type CallbackReceiver } from '../src/harness/index.ts';
import { accessKey, brokenServers, callbackSecret, serveReplayTarget, serveTarget } from './fixtures.ts';

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
  it('passes every check, and skips only auth.replay, which runs when asked', async () => {
    const results = await check(undefined);
    expect(results.filter((r) => r.status === 'failed').map((r) => `${r.id}: ${r.message}`)).toEqual([]);
    expect(results.filter((r) => r.status === 'skipped').map((r) => r.id)).toEqual(['auth.replay']);
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

describe('auth.replay', () => {
  async function replay(refuseReplays: boolean, expectReplayRefusal?: boolean): Promise<CheckResult> {
    const target = await serveReplayTarget(refuseReplays);
    try {
      const results = await runChecks({ baseUrl: target.url, accessKey, seed: 11, only: ['auth.replay'], expectReplayRefusal });
      expect(results).toHaveLength(1);
      return results[0]!;
    } finally {
      await target.close();
    }
  }

  it('is skipped without expectReplayRefusal, saying how to run it, and never counted as passed', async () => {
    const result = await replay(true);
    expect(result).toMatchObject({ id: 'auth.replay', status: 'skipped', requests: 0 });
    expect(result.message).toMatch(/--expect-replay-refusal/);
    expect(result.reproduce).toBeUndefined();
    expect(summaryTable([result])).toMatch(/^total +0 +0 +1$/m);
  });

  it('passes with expectReplayRefusal against a server that refuses replays', async () => {
    const result = await replay(true, true);
    expect(result).toMatchObject({ id: 'auth.replay', status: 'passed', requests: 2 });
  });

  it('with expectReplayRefusal, leaves the other checks unrefused: the suite never repeats a signature', async () => {
    const target = await serveReplayTarget(true);
    try {
      const results = await runChecks({ baseUrl: target.url, accessKey, seed: 12, only: ['auth.*', 'errors.*', 'negative.create-call', 'negative.odd-ids'], expectReplayRefusal: true });
      expect(results.filter((r) => r.status !== 'passed').map((r) => `${r.id}: ${r.message}`)).toEqual([]);
      expect(results.map((r) => r.id)).toContain('auth.replay');
    } finally {
      await target.close();
    }
  });

  it('fails with expectReplayRefusal against a server that accepts replays, showing the replay', async () => {
    const result = await replay(false, true);
    expect(result).toMatchObject({ id: 'auth.replay', status: 'failed', requests: 2 });
    expect(result.message).toMatch(/^a replayed signature: POST \/calls\/conformance-no-such-call\/Hangup answered 404, not 401/);
    expect(result.reproduce!.command).toMatch(/ --expect-replay-refusal --only auth\.replay --seed 11$/);
    expect(result.reproduce!.curl).toMatch(/-H 'authorization: HMAC-SHA256 [^']+'/);
  });
});
