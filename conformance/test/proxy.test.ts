import { createCallAutomationClient, type CallAutomationClient } from '@call-automation/client';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startCallbackReceiver, startPrism, type CallbackReceiver, type RunningPrism } from '../src/harness/index.ts';
import { accessKey, brokenServers, serveTarget, type Served } from './fixtures.ts';

const spec = createRequire(import.meta.url).resolve('@call-automation/contract/openapi.json');

/**
 * The simulator behind Prism's validating proxy (`--errors`): Prism turns any answer that breaks
 * the spec into a 500 and reports the request's violations in sl-violations.
 */
describe("the simulator through Prism's validating proxy", () => {
  let target: Served;
  let prism: RunningPrism;
  let receiver: CallbackReceiver;
  let client: CallAutomationClient;
  const violations: string[] = [];

  beforeAll(async () => {
    const port = await freePort();
    // Prism rewrites Host: the simulator verifies signatures against the host clients sign.
    target = await serveTarget(undefined, { signedHost: `127.0.0.1:${port}` });
    prism = await startPrism({ mode: 'proxy', spec, upstream: target.url, errors: true, port });
    receiver = await startCallbackReceiver();
    client = createCallAutomationClient(`endpoint=${prism.url}/;accesskey=${accessKey}`, {
      retry: false,
      middleware: [
        {
          onResponse: ({ request, response }) => {
            const found = response.headers.get('sl-violations');
            if (found) violations.push(`${request.method} ${new URL(request.url).pathname} → ${response.status}: ${found}`);
            if (response.status === 500) violations.push(`${request.method} ${new URL(request.url).pathname} → 500 from the proxy`);
          },
        },
      ],
    });
  });
  afterAll(async () => {
    await prism?.stop();
    await target?.close();
    await receiver?.close();
  });

  it('runs a full call, every operation, with no violation either way', async () => {
    const created = await client.createCall({
      targets: [{ phoneNumber: { value: '+14251001000' } }],
      callbackUri: `${receiver.url}/cb`,
      requestedModalities: ['audio'],
      requestedCallEvents: ['participantsUpdated', 'dtmfReceived'],
    });
    expect(created.response.status).toBe(200);
    const callLegId = created.data!.callLegId;
    await receiver.waitFor((d) => d.body.includes('"established"'));
    expect((await client.playAudio(callLegId, { audioFileUri: `${receiver.url}/a.wav`, loop: true, operationContext: 'p' })).response.status).toBe(202);
    expect((await client.cancelMediaProcessing(callLegId, { operationContext: 'c' })).response.status).toBe(202);
    expect((await client.inviteParticipants(callLegId, { participants: [{ phoneNumber: { value: '+14255550123' } }], operationContext: 'i' })).response.status).toBe(202);
    expect((await client.removeParticipant(callLegId, 'no-such-participant')).response.status).toBe(404);
    expect((await client.hangupCall(callLegId)).response.status).toBe(202);
    expect((await client.hangupCall(callLegId)).response.status).toBe(404);
    // A request the schema allows but the service refuses: its 400 passes through, checked.
    const refused = await client.createCall({ targets: [{ phoneNumber: { value: '+14251001000' } }], callbackUri: 'http://10.1.2.3/cb', requestedModalities: ['audio'], requestedCallEvents: [] });
    expect(refused.response.status).toBe(400);
    expect(refused.error?.code).toBe('UriNotAllowed');
    expect(violations).toEqual([]);
  });

  it('blocks a request that breaks the spec, and passes a 401 through', async () => {
    const bad = await client.playAudio('x', { audioFileUri: 'not a uri' });
    // Prism blocks a request that breaks the spec itself, with its own 422 problem.
    expect(bad.response.status).toBe(422);
    violations.length = 0;
    const unsigned = createCallAutomationClient({ endpoint: prism.url, credential: { getToken: async () => 'not-a-token' } }, { retry: false });
    const refused = await unsigned.hangupCall('x');
    expect(refused.response.status).toBe(401);
    expect(refused.error?.code).toBe('InvalidToken');
  });
});

describe("Prism's validating proxy", () => {
  it('would have seen a violation: it turns a broken answer into a 500', async () => {
    const port = await freePort();
    const broken = brokenServers.find((b) => b.name === 'missing field')!;
    const target = await serveTarget(broken, { signedHost: `127.0.0.1:${port}` });
    const prism = await startPrism({ mode: 'proxy', spec, upstream: target.url, errors: true, port });
    try {
      const client = createCallAutomationClient(`endpoint=${prism.url}/;accesskey=${accessKey}`, { retry: false });
      const result = await client.createCall({ targets: [{ phoneNumber: { value: '+14251001000' } }], callbackUri: 'http://127.0.0.1:9/cb', requestedModalities: ['audio'], requestedCallEvents: [] });
      expect(result.response.status).toBe(500);
      expect(result.error?.message).toMatch(/VIOLATIONS|callLegId/);
    } finally {
      await prism.stop();
      await target.close();
    }
  });
});
