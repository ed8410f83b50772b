import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessKey, brokenServers, callbackSecret, serveReplayTarget, serveTarget, type Served } from './fixtures.ts';

const run = promisify(execFile);
const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const cli = join(import.meta.dirname, '..', 'src', 'cli.ts');
const tsx = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'tsx');

async function conformance(target: Pick<Served, 'url'> & Partial<Served>, reportDir: string, ...extra: string[]) {
  const control = target.controlUrl ? ['--control-url', target.controlUrl] : [];
  const args = [cli, '--base-url', target.url, '--connection-string', `endpoint=${target.url}/;accesskey=${accessKey}`, '--callback-secret', callbackSecret, ...control, '--seed', '7', '--report-dir', reportDir, ...extra];
  return run(tsx, args).then(
    ({ stdout }) => ({ code: 0, stdout }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout + error.stderr }),
  );
}

describe('the CLI', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'call-automation-conformance-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('prints each check and a summary, writes JSON and JUnit, and exits 0 when all pass', async () => {
    const target = await serveTarget();
    try {
      const { code, stdout } = await conformance(target, join(dir, 'ok'), '--only', 'auth.*', '--only', 'errors.*');
      expect(stdout).toContain('seed 7; replay with --seed 7');
      expect(stdout).toMatch(/✓ auth\.no-credentials/);
      expect(stdout).toMatch(/^- auth\.replay .*\n {4}.*run with --expect-replay-refusal/m);
      expect(stdout).toMatch(/^auth +4 +0 +1$/m);
      expect(stdout).toMatch(/^total +7 +0 +1$/m);
      expect(stdout).toContain('Skipped, not passed: auth.replay');
      expect(code).toBe(0);
      const report = JSON.parse(await readFile(join(dir, 'ok', 'conformance.json'), 'utf8')) as { seed: number; results: Array<{ status: string }> };
      expect(report.seed).toBe(7);
      expect(report.results).toHaveLength(8);
      const junit = await readFile(join(dir, 'ok', 'junit.xml'), 'utf8');
      expect(junit).toContain('<testsuite name="call-automation-conformance" tests="8" failures="0" skipped="1"');
    } finally {
      await target.close();
    }
  }, 60_000);

  it('says under a check what it left out, and why, in its output and in both reports', async () => {
    const target = await serveTarget();
    try {
      const { code, stdout } = await conformance(target, join(dir, 'notes'), '--only', 'lifecycle.operations');
      expect(code).toBe(0);
      expect(stdout).toMatch(/^✓ lifecycle\.operations .*\n {4}removeParticipant not sent: its path takes participantId, an id no answer gives \(the operation table links only callId, from createCall\)$/m);
      const report = JSON.parse(await readFile(join(dir, 'notes', 'conformance.json'), 'utf8')) as { results: Array<{ status: string; notes?: string[] }> };
      expect(report.results).toEqual([expect.objectContaining({ status: 'passed', notes: [expect.stringMatching(/^removeParticipant not sent/)] })]);
      expect(await readFile(join(dir, 'notes', 'junit.xml'), 'utf8')).toMatch(/<system-out>removeParticipant not sent: [^<]+<\/system-out><\/testcase>/);
    } finally {
      await target.close();
    }
  }, 60_000);

  it('exits 1 and names the failed check when the server breaks the contract', async () => {
    const target = await serveTarget(brokenServers.find((b) => b.name === 'plain-text error'));
    try {
      const { code, stdout } = await conformance(target, join(dir, 'broken'), '--only', 'errors.unknown-call');
      expect(code).toBe(1);
      expect(stdout).toMatch(/✗ errors\.unknown-call/);
      const junit = await readFile(join(dir, 'broken', 'junit.xml'), 'utf8');
      expect(junit).toMatch(/<failure message="[^"]*error body/);
      // Under the failed check: the command that re-runs it, then the request, signed, as curl.
      const rerun = `call-automation-conformance --base-url ${target.url} --connection-string 'endpoint=${target.url}/;accesskey=<access key>' --callback-secret '<callback secret>' --control-url ${target.controlUrl} --only errors.unknown-call --seed 7`;
      const block = stdout.slice(stdout.indexOf('✗ errors.unknown-call'));
      expect(block).toMatch(
        /^✗ errors\.unknown-call .*\n {4}\w+ on an unknown call: the 404 answer is not the API's error body: Not Found\n(?: {4}.*\n)*? {4}re-run it:\n {6}.+\n {4}the request:\n {6}# signed with x-ms-date .* GMT: valid for the 15-minute signature window from then\n {6}curl -sS -i -X \w+ http:\/\/127\.0\.0\.1:\d+\/calls\/conformance-no-such-call\S* \\\n/,
      );
      expect(block).toContain(`re-run it:\n      ${rerun}\n`);
      expect(block).toMatch(/ {8}-H 'x-ms-date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT' \\\n {8}-H 'x-ms-content-sha256: [A-Za-z0-9+/=]+' \\\n {8}-H 'authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=[A-Za-z0-9+/=]+'/);
      const report = JSON.parse(await readFile(join(dir, 'broken', 'conformance.json'), 'utf8')) as { results: Array<{ reproduce?: { command: string; curl?: string } }> };
      expect(report.results[0]!.reproduce!.command).toBe(rerun);
      expect(block).toContain(report.results[0]!.reproduce!.curl!.split('\n').join('\n      '));
      expect(junit).toContain(escapeXml(report.results[0]!.reproduce!.curl!));
      // The access key and the callback secret stay out of what is printed and written.
      for (const text of [stdout, junit, JSON.stringify(report)]) {
        expect(text).not.toContain(accessKey);
        expect(text).not.toContain(callbackSecret);
      }
    } finally {
      await target.close();
    }
  }, 60_000);

  it('runs auth.replay with --expect-replay-refusal, and says so in its usage', async () => {
    const refusing = await serveReplayTarget(true);
    const accepting = await serveReplayTarget(false);
    try {
      const skipped = await conformance(refusing, join(dir, 'replay-skipped'), '--only', 'auth.replay');
      expect(skipped.stdout).toMatch(/^- auth\.replay /m);
      expect(skipped.stdout).toMatch(/^total +0 +0 +1$/m);
      const refused = await conformance(refusing, join(dir, 'replay-refused'), '--only', 'auth.replay', '--expect-replay-refusal');
      expect(refused.stdout).toMatch(/^✓ auth\.replay /m);
      expect(refused.code).toBe(0);
      const accepted = await conformance(accepting, join(dir, 'replay-accepted'), '--only', 'auth.replay', '--expect-replay-refusal');
      expect(accepted.stdout).toMatch(/^✗ auth\.replay .*\n {4}a replayed signature: POST \/calls\/conformance-no-such-call\/Hangup answered 404, not 401/m);
      expect(accepted.stdout).toMatch(/--expect-replay-refusal --only auth\.replay --seed 7\n/);
      expect(accepted.code).toBe(1);
    } finally {
      await Promise.all([refusing.close(), accepting.close()]);
    }
    const { stdout } = await run(tsx, [cli, '--help']);
    expect(stdout).toMatch(/\[--expect-replay-refusal\] +the target refuses a signature it has already accepted/);
  }, 60_000);

  it('runs as its bin, call-automation-conformance', async () => {
    const { stdout } = await run(join(import.meta.dirname, '..', 'bin', 'call-automation-conformance.js'), ['--help']);
    expect(stdout).toContain('Usage: call-automation-conformance --base-url URL');
  });

  it('says what is missing and how to give it, and exits 2, without a connection string', async () => {
    const env = { ...process.env, CALL_AUTOMATION_CONNECTION_STRING: '' };
    const { code, stdout } = await run(tsx, [cli, '--base-url', 'http://127.0.0.1:4780'], { env }).then(
      () => ({ code: 0, stdout: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stdout: error.stderr }),
    );
    expect(code).toBe(2);
    expect(stdout).toMatch(/^No connection string: pass --connection-string "endpoint=https:\/\/<server>\/;accesskey=<base64 key>", or set CALL_AUTOMATION_CONNECTION_STRING to it/);
    expect(stdout).toContain('Usage: call-automation-conformance');
  });

  it('says which connection string is wrong, the option or the variable, never echoing the key', async () => {
    const failing = (args: string[], connection: string) =>
      run(tsx, [cli, ...args], { env: { ...process.env, CALL_AUTOMATION_CONNECTION_STRING: connection } }).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
      );
    const fromVariable = await failing([], 'endpoint=http://127.0.0.1:4780/');
    expect(fromVariable).toEqual({ code: 2, stderr: expect.stringMatching(/^CALL_AUTOMATION_CONNECTION_STRING: Connection string without accesskey: expected endpoint=/) });
    const fromOption = await failing(['--connection-string', 'accesskey=c2VjcmV0'], 'endpoint=http://127.0.0.1:4780/;accesskey=a2V5');
    expect(fromOption).toEqual({ code: 2, stderr: expect.stringMatching(/^--connection-string: Connection string without endpoint: expected endpoint=/) });
    expect(fromOption.stderr).not.toContain('c2VjcmV0');
  });

  it('reads the connection string from CALL_AUTOMATION_CONNECTION_STRING, and checks its endpoint without --base-url', async () => {
    const target = await serveTarget();
    try {
      const env = { ...process.env, CALL_AUTOMATION_CONNECTION_STRING: `endpoint=${target.url}/;accesskey=${accessKey}` };
      const report = join(dir, 'from-env');
      const { stdout } = await run(tsx, [cli, '--callback-secret', callbackSecret, '--only', 'errors.unknown-call', '--seed', '7', '--report-dir', report], { env });
      expect(stdout).toContain(`Conformance of ${target.url} to the Call Automation contract (seed 7; replay with --seed 7)`);
      expect(stdout).toMatch(/^✓ errors\.unknown-call /m);
      expect(stdout).toMatch(/^total +1 +0 +0$/m);
    } finally {
      await target.close();
    }
  }, 60_000);
});
