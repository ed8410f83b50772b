import { verifyCallbackSignature } from '@call-automation/client/events';
import type { CheckContext } from '../context.ts';
import { CheckSkipped, describeCause, fail } from '../context.ts';
import { describeErrors } from '../contract.ts';
import type { ReceivedCallback } from '../harness/receiver.ts';
import type { Check } from './types.ts';

interface Event {
  id: string;
  type: string;
  source: string;
  data: Record<string, unknown>;
}

function receiverOf(context: CheckContext) {
  if (!context.target.receiver || !context.target.callbackUrl) throw new CheckSkipped('needs --callback-url served by the suite\'s receiver');
  return context.target.receiver;
}

/** The events of a call that reached the receiver, each checked: CloudEvent schema, signature, the call's source. */
function eventsOf(context: CheckContext, callLegId: string): Event[] {
  const receiver = receiverOf(context);
  const validate = context.contract.validator('#/components/schemas/CallAutomationEvent');
  const events: Event[] = [];
  for (const delivery of receiver.received) {
    let event: Event;
    try {
      event = JSON.parse(delivery.body) as Event;
    } catch {
      fail(`a callback that is not JSON: ${delivery.body.slice(0, 120)}`);
    }
    const source: string = event.source;
    const sourceMatches = source === `calls/${callLegId}`;
    if (!sourceMatches && (event.data as { callLegId?: string } | undefined)?.callLegId !== callLegId) continue;
    if (!sourceMatches) fail(`an event for call ${callLegId} has source ${source}, not calls/${callLegId}`);
    if (!(validate as (data: unknown) => boolean)(event)) fail(`a ${event.type} event does not match its schema: ${describeErrors(validate.errors)}`);
    if (!String(delivery.headers['content-type']).startsWith('application/cloudevents+json')) fail(`a ${event.type} event came as ${delivery.headers['content-type']}, not application/cloudevents+json`);
    checkSignature(context, delivery, event);
    events.push(event);
  }
  return events;
}

function checkSignature(context: CheckContext, delivery: ReceivedCallback, event: Event) {
  if (!context.target.callbackSecret) return;
  try {
    const { id } = verifyCallbackSignature(delivery.body, delivery.headers as Record<string, string>, context.target.callbackSecret);
    if (id !== event.id) fail(`a ${event.type} event's webhook-id ${id} is not its id ${event.id}`);
  } catch (error) {
    fail(`a ${event.type} event's signature does not verify: ${(error as Error).message}`);
  }
}

async function waitForEvent(context: CheckContext, callLegId: string, match: (event: Event) => boolean, what: string, timeoutMs = 10_000): Promise<Event> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = eventsOf(context, callLegId).find(match);
    if (found) return found;
    if (Date.now() > deadline) fail(`no ${what} within ${timeoutMs / 1000} s; got ${eventsOf(context, callLegId).map((e) => e.type.split('.').pop()).join(', ') || 'nothing'}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const state = (name: string) => (event: Event) => event.type === 'Microsoft.Communication.CallLegStateChanged' && event.data.callState === name;

async function control(context: CheckContext, path: string, body?: unknown) {
  if (!context.target.controlUrl) throw new CheckSkipped('needs --control-url: a way to make a participant act (the simulator has one)');
  let response: Response;
  try {
    response = await fetch(`${context.target.controlUrl}${path}`, { method: 'POST', body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  } catch (error) {
    fail(`network error on the control surface's POST ${path}: ${describeCause(error)}`);
  }
  if (!response.ok) fail(`the control surface answered ${response.status} to ${path}`);
}

export const callbackChecks: Check[] = [
  {
    id: 'callbacks.call-states',
    title: 'a call reports its states in a legal order, terminated last, as signed CloudEvents',
    async run(context) {
      receiverOf(context);
      const callLegId = await context.createCall();
      await waitForEvent(context, callLegId, state('established'), 'established state');
      await context.endCall(callLegId);
      await waitForEvent(context, callLegId, state('terminated'), 'terminated state');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const states = eventsOf(context, callLegId).flatMap((e) => (e.type === 'Microsoft.Communication.CallLegStateChanged' ? [e.data.callState as string] : []));
      const at = (name: string) => states.indexOf(name);
      if (at('establishing') > at('established')) fail(`established came before establishing: ${states.join(' → ')}`);
      if (states.at(-1) !== 'terminated') fail(`terminated is not the last state: ${states.join(' → ')}`);
      if (states.filter((s) => s === 'terminated').length !== 1) fail(`terminated more than once: ${states.join(' → ')}`);
    },
  },
  {
    id: 'callbacks.participants-updated',
    title: 'a call subscribed to participantsUpdated reports its participants',
    async run(context) {
      receiverOf(context);
      const callLegId = await context.createCall();
      const event = await waitForEvent(context, callLegId, (e) => e.type === 'Microsoft.Communication.ParticipantsUpdated', 'ParticipantsUpdated');
      if (!Array.isArray(event.data.participants)) fail('ParticipantsUpdated without participants');
      await context.endCall(callLegId);
    },
  },
  {
    id: 'callbacks.play-audio-result',
    title: 'a cancelled play reports PlayAudioResult with the cancelled convention',
    async run(context) {
      receiverOf(context);
      const callLegId = await context.createCall();
      await waitForEvent(context, callLegId, state('established'), 'established state');
      const audioFileUri = `${context.target.callbackUrl!.replace(/\/$/, '')}/hold.wav`;
      await context.send({ operationId: 'playAudio', params: { callId: callLegId }, body: { audioFileUri, loop: true, operationContext: 'conformance-play' } });
      await context.send({ operationId: 'cancelMediaProcessing', params: { callId: callLegId }, body: { operationContext: 'conformance-cancel' } });
      const result = await waitForEvent(context, callLegId, (e) => e.type === 'Microsoft.Communication.PlayAudioResult' && e.data.operationContext === 'conformance-play', 'PlayAudioResult');
      const info = result.data.resultInfo as { code?: number; subcode?: number };
      if (result.data.status !== 'failed' || info.code !== 400 || info.subcode !== 8508) fail(`a cancelled play reported ${JSON.stringify(result.data)}`);
      await context.endCall(callLegId);
    },
  },
  {
    id: 'callbacks.invite-result',
    title: 'an invitation settles with InviteParticipantResult',
    async run(context) {
      receiverOf(context);
      const callLegId = await context.createCall();
      await waitForEvent(context, callLegId, state('established'), 'established state');
      await context.send({ operationId: 'inviteParticipants', params: { callId: callLegId }, body: { participants: [{ phoneNumber: { value: '+14255550123' } }], operationContext: 'conformance-invite' } });
      await waitForEvent(context, callLegId, (e) => e.type === 'Microsoft.Communication.InviteParticipantResult' && e.data.operationContext === 'conformance-invite', 'InviteParticipantResult');
      await context.endCall(callLegId);
    },
  },
  {
    id: 'callbacks.dtmf',
    title: 'keys pressed in a call subscribed to dtmfReceived report DtmfReceived in order',
    async run(context) {
      receiverOf(context);
      if (!context.target.controlUrl) throw new CheckSkipped('needs --control-url: a way to make a participant press keys (the simulator has one)');
      const callLegId = await context.createCall();
      await waitForEvent(context, callLegId, state('established'), 'established state');
      await control(context, `/calls/${callLegId}/dtmf`, { tones: ['tone1', 'pound'] });
      await waitForEvent(context, callLegId, (e) => e.type === 'Microsoft.Communication.DtmfReceived' && (e.data.toneInfo as { tone: string }).tone === 'pound', 'DtmfReceived');
      const tones = eventsOf(context, callLegId).flatMap((e) => (e.type === 'Microsoft.Communication.DtmfReceived' ? [e.data.toneInfo as { tone: string; sequenceId: number }] : []));
      if (tones.map((t) => t.tone).join(',') !== 'tone1,pound') fail(`tones arrived as ${tones.map((t) => t.tone).join(', ')}`);
      if (!(tones[0]!.sequenceId < tones[1]!.sequenceId)) fail('sequenceId does not increase');
      await context.endCall(callLegId);
    },
  },
];
