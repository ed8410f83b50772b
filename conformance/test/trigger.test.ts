import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createCallbackHandler, type CallAutomationEvent } from '@call-automation/client/events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEvent, eventNames } from '../src/trigger.ts';
import { callbackSecret } from './fixtures.ts';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '..', 'bin', 'call-automation-trigger.js');

/** `call-automation-trigger …` as a user runs it: its exit code and everything it printed. */
function trigger(...args: string[]) {
  return run(process.execPath, [bin, ...args], { env: { ...process.env, CALL_AUTOMATION_CALLBACK_SECRET: '' } }).then(
    ({ stdout, stderr }) => ({ code: 0, output: stdout + stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, output: error.stdout + error.stderr }),
  );
}

describe('call-automation-trigger', () => {
  let receiver: Server;
  let url: string;
  const received: CallAutomationEvent[] = [];

  beforeAll(async () => {
    // Our own verifying handler: an event reaches `received` only with a valid signature.
    const handle = createCallbackHandler({ secret: callbackSecret, on: Object.fromEntries(eventNames.map((name) => [name, (event: CallAutomationEvent) => void received.push(event)])) });
    receiver = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const response = await handle(new Request(`http://127.0.0.1${req.url}`, { method: 'POST', headers: req.headers as Record<string, string>, body: Buffer.concat(chunks) }));
      res.writeHead(response.status).end(await response.text());
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/callbacks`;
  });
  afterAll(() => new Promise((resolve) => receiver.close(resolve)));

  it('sends a signed, schema-valid event with the overrides and prints the answer; exits 1 on a refusal, 2 (sending nothing) on a broken event', async () => {
    const callLegId = crypto.randomUUID();
    // Three runs at once, as a user would type them: each process takes a while to start.
    const [sent, refused, broken] = await Promise.all([
      trigger('DtmfReceived', '--to', url, '--secret', callbackSecret, '--set', 'data.toneInfo.tone=pound', '--set', `data.callLegId=${callLegId}`, '--set', 'data.toneInfo.sequenceId=4'),
      trigger('CallLegStateChanged', '--to', url, '--secret', `whsec_${Buffer.from('another-secret-0000000000000000').toString('base64')}`),
      trigger('DtmfReceived', '--to', url, '--secret', callbackSecret, '--set', 'data.toneInfo.tone=hash'),
    ]);
    expect(sent.code).toBe(0);
    expect(sent.output).toContain(`→ ${url}: 204`);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ type: 'Microsoft.Communication.DtmfReceived', source: `calls/${callLegId}`, data: { callLegId, toneInfo: { tone: 'pound', sequenceId: 4 } } });
    // A wrong secret: our handler answers 401, and the trigger says so.
    expect(refused.code).toBe(1);
    expect(refused.output).toContain(`→ ${url}: 401`);
    expect(broken.code).toBe(2);
    expect(broken.output).toContain('The DtmfReceived event does not match the spec, so it was not sent');
    expect(broken.output).toContain('/data/toneInfo/tone must be equal to one of the allowed values (tone0,');
  });

  it('names the events it knows when given another', () => {
    expect(() => buildEvent('CallConnected')).toThrow(`No webhook CallConnected in the spec. It has: ${eventNames.join(', ')}.`);
    expect(() => buildEvent('DtmfReceived', ['data.toneInfo'])).toThrow('--set takes path=value');
  });

  it('makes every webhook of the spec from its example', () => {
    for (const name of eventNames) expect(buildEvent(name)).toMatchObject({ specversion: '1.0', type: `Microsoft.Communication.${name}` });
    expect(buildEvent('PlayAudioResult', ['data.resultInfo.code=400', 'data.operationContext=']).data).toMatchObject({ resultInfo: { code: 400 }, operationContext: '' });
  });
});
