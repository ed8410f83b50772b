import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCallAutomationClient } from '@call-automation/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSimulator, type RunningSimulator } from '../src/index.ts';
import { startCallbackReceiver } from '../../../conformance/src/harness/receiver.ts';

const accessKey = Buffer.from('run-test-access-key-000000000001').toString('base64');
const callbackSecret = `whsec_${Buffer.from('run-test-callback-secret-0000001').toString('base64')}`;

describe('the simulator as `pnpm start` runs it', () => {
  let dir: string;
  let running: RunningSimulator;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'call-automation-run-'));
    await writeFile(join(dir, 'index.html'), '<!doctype html><title>docs</title>');
    await writeFile(join(dir, 'openapi.json'), '{"openapi":"3.1.0"}');
    await writeFile(join(dir, 'openapi.yaml'), 'openapi: 3.1.0\n');
    running = await runSimulator({
      host: '127.0.0.1',
      port: 0,
      controlPort: 0,
      accessKey,
      callbackSecret,
      allowLoopback: true,
      answerDelayMs: 20,
      files: { docs: join(dir, 'index.html'), specJson: join(dir, 'openapi.json'), specYaml: join(dir, 'openapi.yaml') },
    });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the docs and the spec beside the API, on one address', async () => {
    const docs = await fetch(`${running.url}/docs`);
    expect(docs.status).toBe(200);
    expect(docs.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await (await fetch(`${running.url}/openapi.json`)).json()).toEqual({ openapi: '3.1.0' });
    expect(await (await fetch(`${running.url}/openapi.yaml`)).text()).toBe('openapi: 3.1.0\n');
    expect((await fetch(`${running.url}/calls`, { method: 'POST' })).status).toBe(401);
  });

  it('keeps the control surface on loopback, apart from the API', async () => {
    expect(running.controlUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await (await fetch(`${running.controlUrl}/calls`)).json()).toEqual([]);
    expect((await fetch(`${running.url}/invitations/decline`, { method: 'POST' })).status).toBe(404);
  });

  it('delivers the callbacks still queued when it stops, then refuses connections', async () => {
    const receiver = await startCallbackReceiver({ answer: (_entry, _n, res) => void setTimeout(() => res.writeHead(204).end(), 100) });
    try {
      const client = createCallAutomationClient(`endpoint=${running.url}/;accesskey=${accessKey}`);
      const created = await client.createCall({ targets: [{ phoneNumber: { value: '+14251001000' } }], callbackUri: `${receiver.url}/cb`, requestedModalities: ['audio'], requestedCallEvents: [] });
      expect(created.response.status).toBe(200);
      await client.hangupCall(created.data!.callLegId);
      await running.stop();
      // establishing, then terminating and terminated; a slow receiver still gets all that were queued.
      expect(receiver.received.length).toBeGreaterThanOrEqual(3);
      await expect(fetch(`${running.url}/docs`)).rejects.toThrow();
    } finally {
      await receiver.close();
    }
  });
});
