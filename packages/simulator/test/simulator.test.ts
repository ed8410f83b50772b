import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCallAutomationClient, type CallAutomationClient } from '@call-automation/client';
import { createCallbackHandler, type CallAutomationEvent } from '@call-automation/client/events';
import { serveApp, type RunningServer } from '@call-automation/server/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulatorService } from '../src/index.ts';

const accessKey = Buffer.from('simulator-test-access-key-000001').toString('base64');
const secret = `whsec_${Buffer.from('simulator-test-callback-secret01').toString('base64')}`;

let api: RunningServer;
let control: RunningServer;
let receiver: Server;
let callbackUri: string;
let client: CallAutomationClient;
let service: ReturnType<typeof createSimulatorService>;
const events: CallAutomationEvent[] = [];

/** Waits until an event matching `match` has arrived, and answers it. */
async function waitFor<T extends CallAutomationEvent>(match: (e: CallAutomationEvent) => e is T, timeoutMs?: number): Promise<T>;
async function waitFor(match: (e: CallAutomationEvent) => boolean, timeoutMs?: number): Promise<CallAutomationEvent>;
async function waitFor(match: (e: CallAutomationEvent) => boolean, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = events.find(match);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`No such event within ${timeoutMs} ms; got ${events.map((e) => e.type).join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

beforeAll(async () => {
  service = createSimulatorService({ accessKeys: [accessKey], callbackSecret: secret, allowLoopback: true, answerDelayMs: 30, playDurationMs: 60 });
  api = await serveApp(service.api);
  control = await serveApp(service.control);
  const handle = createCallbackHandler({
    secret,
    on: Object.fromEntries(
      ['CallLegStateChanged', 'ParticipantsUpdated', 'DtmfReceived', 'PlayAudioResult', 'InviteParticipantResult'].map((name) => [name, (e: CallAutomationEvent) => void events.push(e)]),
    ),
  });
  // The client's web-standard handler behind a Node server: the adapter an app would write.
  receiver = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const response = await handle(new Request(`http://127.0.0.1${req.url}`, { method: req.method, headers: req.headers as Record<string, string>, body: Buffer.concat(chunks) }));
    res.writeHead(response.status).end(await response.text());
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  callbackUri = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/callbacks`;
  client = createCallAutomationClient(`endpoint=${api.url}/;accesskey=${accessKey}`);
});

afterAll(async () => {
  await service.close(1000);
  await api.close();
  await control.close();
  await new Promise((resolve) => receiver.close(resolve));
});

const isState = (callLegId: string, state: string) => (e: CallAutomationEvent) => e.type === 'Microsoft.Communication.CallLegStateChanged' && e.data.callLegId === callLegId && e.data.callState === state;

describe('a simulated call', () => {
  it('goes from create to hang-up, producing every event type', async () => {
    const created = await client.createCall({
      targets: [{ phoneNumber: { value: '+14251001000' } }],
      callbackUri,
      requestedModalities: ['audio'],
      requestedCallEvents: ['participantsUpdated', 'dtmfReceived'],
    });
    expect(created.error).toBeUndefined();
    const callLegId = created.data!.callLegId;
    await waitFor(isState(callLegId, 'established'));
    const joined = await waitFor((e) => e.type === 'Microsoft.Communication.ParticipantsUpdated' && e.data.participants.length === 1);
    if (joined.type !== 'Microsoft.Communication.ParticipantsUpdated') throw new Error('narrowing');
    const phoneParticipant = joined.data.participants[0]!.participantId;

    const played = await client.playAudio(callLegId, { audioFileUri: 'http://127.0.0.1:9/prompt.wav', operationContext: 'once' });
    expect(played.data).toMatchObject({ status: 'running', operationContext: 'once' });
    const result = await waitFor((e) => e.type === 'Microsoft.Communication.PlayAudioResult' && e.data.operationContext === 'once');
    expect(result).toMatchObject({ data: { status: 'completed', resultInfo: { code: 200 } } });

    await client.playAudio(callLegId, { audioFileUri: 'http://127.0.0.1:9/hold.wav', loop: true, operationContext: 'hold-music' });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(events.some((e) => e.type === 'Microsoft.Communication.PlayAudioResult' && e.data.operationContext === 'hold-music')).toBe(false);
    expect((await client.cancelMediaProcessing(callLegId, { operationContext: 'stop' })).data).toMatchObject({ status: 'completed' });
    const cancelledPlay = await waitFor((e) => e.type === 'Microsoft.Communication.PlayAudioResult' && e.data.operationContext === 'hold-music');
    expect(cancelledPlay).toMatchObject({ data: { status: 'failed', resultInfo: { code: 400, subcode: 8508 } } });

    await fetch(`${control.url}/invitations/decline`, { method: 'POST', body: JSON.stringify({ rawId: '4:+14255550199' }) });
    await client.inviteParticipants(callLegId, {
      participants: [{ communicationUser: { id: '8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776_00000005-77aa-88bb-99cc-ddeeff001122' } }, { phoneNumber: { value: '+14255550199' } }],
      operationContext: 'invite',
    });
    await waitFor((e) => e.type === 'Microsoft.Communication.InviteParticipantResult' && e.data.status === 'completed');
    await waitFor((e) => e.type === 'Microsoft.Communication.InviteParticipantResult' && e.data.status === 'failed' && e.data.resultInfo.code === 603);

    expect((await fetch(`${control.url}/calls/${callLegId}/dtmf`, { method: 'POST', body: JSON.stringify({ tones: ['tone1', 'pound'] }) })).status).toBe(202);
    await waitFor((e) => e.type === 'Microsoft.Communication.DtmfReceived' && e.data.toneInfo.tone === 'pound' && e.data.toneInfo.sequenceId === 1);

    expect((await fetch(`${control.url}/calls/${callLegId}/participants/${phoneParticipant}/leave`, { method: 'POST' })).status).toBe(202);
    const [invited] = (await service.simulator.listCalls()).find((c) => c.callLegId === callLegId)!.participants;
    expect((await client.removeParticipant(callLegId, invited!.participantId)).response.status).toBe(202);
    await waitFor((e) => e.type === 'Microsoft.Communication.ParticipantsUpdated' && e.data.participants.length === 0);

    expect((await client.hangupCall(callLegId)).response.status).toBe(202);
    await waitFor(isState(callLegId, 'terminated'));
    expect((await client.playAudio(callLegId, { audioFileUri: 'http://127.0.0.1:9/a.wav' })).error).toMatchObject({ code: 'CallNotFound' });
    expect((await client.hangupCall(callLegId)).response.status).toBe(404);

    await service.delivery.drain();
    const ofCall = events.filter((e) => e.source === `calls/${callLegId}`);
    expect(new Set(ofCall.map((e) => e.type))).toEqual(
      new Set(['CallLegStateChanged', 'ParticipantsUpdated', 'DtmfReceived', 'PlayAudioResult', 'InviteParticipantResult'].map((n) => `Microsoft.Communication.${n}`)),
    );
    const states = ofCall.flatMap((e) => (e.type === 'Microsoft.Communication.CallLegStateChanged' ? [e.data.callState] : []));
    expect(states).toEqual(['establishing', 'established', 'terminating', 'terminated']);
    expect(ofCall.at(-1)).toMatchObject({ data: { callState: 'terminated' } });
    expect(await service.delivery.deadLetters()).toEqual([]);
  });

  it('sends no optional events to a call that did not ask for them', async () => {
    const created = await client.createCall({ targets: [{ phoneNumber: { value: '+14251001000' } }], callbackUri, requestedModalities: ['audio'], requestedCallEvents: [] });
    const callLegId = created.data!.callLegId;
    await waitFor(isState(callLegId, 'established'));
    await fetch(`${control.url}/calls/${callLegId}/dtmf`, { method: 'POST', body: JSON.stringify({ tones: ['tone5'] }) });
    await client.hangupCall(callLegId);
    await waitFor(isState(callLegId, 'terminated'));
    await service.delivery.drain();
    expect(events.filter((e) => e.source === `calls/${callLegId}`).map((e) => e.type)).toEqual(Array(4).fill('Microsoft.Communication.CallLegStateChanged'));
  });

  it('plays a test number’s script over HTTP: +15550100002 declines, and the call ends unestablished', async () => {
    const created = await client.createCall({ targets: [{ phoneNumber: { value: '+15550100002' } }], callbackUri, requestedModalities: ['audio'], requestedCallEvents: ['participantsUpdated'] });
    const callLegId = created.data!.callLegId;
    await waitFor(isState(callLegId, 'terminated'));
    await service.delivery.drain();
    expect(events.filter((e) => e.source === `calls/${callLegId}`).map((e) => (e.data as { callState?: string }).callState)).toEqual(['establishing', 'terminating', 'terminated']);
    expect((await client.playAudio(callLegId, { audioFileUri: 'http://127.0.0.1:9/a.wav' })).error).toMatchObject({ code: 'CallNotFound' });
  });

  it('refuses a callbackUri on a private address, and the control surface says what it takes', async () => {
    const result = await client.createCall({ targets: [{ phoneNumber: { value: '+14251001000' } }], callbackUri: 'http://10.0.0.8/cb', requestedModalities: ['audio'], requestedCallEvents: [] });
    expect(result.response.status).toBe(400);
    expect(result.error).toMatchObject({ code: 'UriNotAllowed', target: '/callbackUri' });
    const bad = await fetch(`${control.url}/calls/nope/dtmf`, { method: 'POST', body: JSON.stringify({ tones: ['tone1'] }) });
    expect(bad.status).toBe(404);
    const wrongTone = await fetch(`${control.url}/calls/nope/dtmf`, { method: 'POST', body: JSON.stringify({ tones: ['x'] }) });
    expect(wrongTone.status).toBe(400);
  });
});
