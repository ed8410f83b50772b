import { createCallAutomationClient } from '@call-automation/client';
import { serveApp, type RunningServer } from '@call-automation/server/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulatorService } from '../src/index.ts';
// The conformance suite's receiver (imported by path, as the server's tests do).
import { startCallbackReceiver, type CallbackReceiver } from '../../../conformance/src/harness/receiver.ts';

const accessKey = Buffer.from('simulator-dead-letter-key-000001').toString('base64');
const secret = `whsec_${Buffer.from('simulator-dead-letter-secret-001').toString('base64')}`;

let service: ReturnType<typeof createSimulatorService>;
let api: RunningServer;
let control: RunningServer;
let receiver: CallbackReceiver;
let accept = false;
const logged: string[] = [];

beforeAll(async () => {
  receiver = await startCallbackReceiver({ answer: (_d, _n, res) => void res.writeHead(accept ? 204 : 400).end() });
  service = createSimulatorService({ accessKeys: [accessKey], callbackSecret: secret, allowLoopback: true, answerDelayMs: 10_000, log: (line) => void logged.push(line) });
  api = await serveApp(service.api);
  control = await serveApp(service.control);
});
afterAll(async () => {
  await Promise.all([api?.close(), control?.close(), receiver?.close()]);
  await service?.close(0);
});

describe('the control surface', () => {
  it('lists the dead letters, which the simulator logged, and sends one again', async () => {
    const client = createCallAutomationClient(`endpoint=${api.url}/;accesskey=${accessKey}`);
    const created = await client.createCall({ targets: [{ phoneNumber: { value: '+14251001000' } }], callbackUri: `${receiver.url}/cb`, requestedModalities: ['audio'], requestedCallEvents: [] });
    expect(created.response.status).toBe(200);
    let letters: Array<{ id: string; reason: string; callLegId: string }> = [];
    for (let i = 0; i < 100 && letters.length === 0; i++) {
      letters = (await (await fetch(`${control.url}/dead-letters`)).json()) as typeof letters;
      if (!letters.length) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ reason: 'rejected', callLegId: created.data!.callLegId });
    // The dead letter was logged: which event, where, why, and what came back.
    expect(logged).toEqual([
      `Callback event ${letters[0]!.id} of call ${created.data!.callLegId} for ${receiver.url}/cb was kept as a dead letter (rejected) after 1 attempt, the last: HTTP 400.`,
    ]);
    accept = true;
    expect((await fetch(`${control.url}/dead-letters/${letters[0]!.id}/redrive`, { method: 'POST' })).status).toBe(202);
    await receiver.waitFor((d) => d.headers['webhook-id'] === letters[0]!.id && receiver.received.filter((x) => x.headers['webhook-id'] === letters[0]!.id).length === 2);
    expect(await (await fetch(`${control.url}/dead-letters`)).json()).toEqual([]);
    const missing = await fetch(`${control.url}/dead-letters/evt_nothing/redrive`, { method: 'POST' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'NotFound', target: 'id' });
  });
});
