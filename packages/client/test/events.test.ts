import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CallbackEventError,
  CallbackVerificationError,
  createCallbackHandler,
  eventNames,
  parseCallbackEvent,
  UnknownEventTypeError,
  verifyCallbackSignature,
  type EventOf,
} from '../src/events/index.ts';

const secret = `whsec_${Buffer.from('call-automation-test-secret-0001').toString('base64')}`;
const otherSecret = `whsec_${Buffer.from('another-secret-for-rotation-0002').toString('base64')}`;
const spec = JSON.parse(readFileSync(join(import.meta.dirname, '../../../spec/dist/openapi.json'), 'utf8'));
const examples = spec.components.examples as Record<string, { value: { id: string; type: string } }>;
const established = examples.CallLegStateChangedEstablished!.value;

function signed(event: unknown, options: { secret?: string; id?: string; at?: Date } = {}) {
  const body = JSON.stringify(event);
  const id = options.id ?? (event as { id: string }).id;
  const at = options.at ?? new Date();
  const signature = new Webhook(options.secret ?? secret).sign(id, at, body);
  const headers = { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature };
  return { body, headers };
}

function delivery(event: unknown, options?: Parameters<typeof signed>[1]) {
  const { body, headers } = signed(event, options);
  return new Request('http://127.0.0.1/callbacks', { method: 'POST', body, headers: { ...headers, 'content-type': 'application/cloudevents+json' } });
}

afterEach(() => vi.useRealTimers());

describe('verifyCallbackSignature', () => {
  it('accepts a valid delivery and answers its id', () => {
    const { body, headers } = signed(established);
    expect(verifyCallbackSignature(body, headers, secret).id).toBe(established.id);
    expect(verifyCallbackSignature(body, new Headers(headers), secret).id).toBe(established.id);
  });

  it.each([undefined, '', []])('refuses to verify without a secret (%j), naming the variable the README reads it from', (missing) => {
    const { body, headers } = signed(established);
    const check = () => verifyCallbackSignature(body, headers, missing as string);
    expect(check).toThrow(CallbackVerificationError);
    expect(check).toThrow('No callback secret (set CALL_AUTOMATION_CALLBACK_SECRET): the whsec_ secret the service signs callbacks with.');
    expect(() => createCallbackHandler({ secret: missing as string, on: {} })).toThrow(
      new TypeError('No callback secret (set CALL_AUTOMATION_CALLBACK_SECRET): the whsec_ secret the service signs callbacks with.'),
    );
  });

  it('accepts a signature by either secret while one is rotated', () => {
    const { body, headers } = signed(established, { secret: otherSecret });
    expect(verifyCallbackSignature(body, headers, [secret, otherSecret]).id).toBe(established.id);
  });

  it.each([
    ['a tampered body', (d: ReturnType<typeof signed>) => ({ ...d, body: d.body.replace('established', 'terminated') }), 'bad-signature'],
    ['a tampered id', (d: ReturnType<typeof signed>) => ({ ...d, headers: { ...d.headers, 'webhook-id': 'evt_other' } }), 'bad-signature'],
    ['another secret', (d: ReturnType<typeof signed>) => d, 'bad-signature', otherSecret],
    ['no signature', (d: ReturnType<typeof signed>) => ({ ...d, headers: { ...d.headers, 'webhook-signature': '' } }), 'missing-headers'],
    ['a stale timestamp', (d: ReturnType<typeof signed>) => d, 'stale', undefined, new Date(Date.now() - 6 * 60_000)],
    ['a future timestamp', (d: ReturnType<typeof signed>) => d, 'future', undefined, new Date(Date.now() + 6 * 60_000)],
  ] as const)('refuses %s', (_name, tamper, reason, verifyWith?: string, at?: Date) => {
    const { body, headers } = tamper(signed(established, { at }));
    const check = () => verifyCallbackSignature(body, headers, verifyWith ?? secret);
    expect(check).toThrow(CallbackVerificationError);
    expect(check).toThrow(expect.objectContaining({ reason }));
  });

  it('accepts a timestamp 4 minutes old', () => {
    const { body, headers } = signed(established, { at: new Date(Date.now() - 4 * 60_000) });
    expect(verifyCallbackSignature(body, headers, secret).id).toBe(established.id);
  });
});

describe('parseCallbackEvent', () => {
  it.each(Object.entries(examples))("parses the spec's example %s", (_name, example) => {
    const event = parseCallbackEvent(JSON.stringify(example.value));
    expect(event.type).toBe(example.value.type);
  });

  it('knows all five event types', () => {
    expect(eventNames).toEqual(['CallLegStateChanged', 'ParticipantsUpdated', 'DtmfReceived', 'PlayAudioResult', 'InviteParticipantResult']);
  });

  it('narrows by type', () => {
    const event = parseCallbackEvent(examples.DtmfReceivedPound!.value);
    if (event.type !== 'Microsoft.Communication.DtmfReceived') throw new Error('wrong type');
    expect(event.data.toneInfo.tone).toBe('pound');
  });

  it.each([
    ['not JSON', '{"type": ', /not JSON/],
    ['an array', '[]', /not a JSON object/],
    ['no type', '{"id":"x"}', /has no type/],
    ['a missing callLegId', JSON.stringify({ ...established, data: { callState: 'established' } }), /\/data\/callLegId must have required property/],
    ['a wrong state', JSON.stringify({ ...established, data: { callLegId: 'leg-1', callState: 'ringing' } }), /\/data\/callState must be equal to one of the allowed values/],
    ['a bad time', JSON.stringify({ ...established, time: 'yesterday' }), /\/time must match format "date-time"/],
    ['a wrong specversion', JSON.stringify({ ...established, specversion: '0.3' }), /\/specversion must be equal to constant/],
  ])('refuses %s, saying where', (_name, body, message) => {
    expect(() => parseCallbackEvent(body)).toThrow(CallbackEventError);
    expect(() => parseCallbackEvent(body)).toThrow(message);
  });

  it('names an unknown type', () => {
    const body = JSON.stringify({ ...established, type: 'Microsoft.Communication.CallTransferAccepted' });
    expect(() => parseCallbackEvent(body)).toThrow(UnknownEventTypeError);
    expect(() => parseCallbackEvent(body)).toThrow(/Unknown event type "Microsoft.Communication.CallTransferAccepted"/);
  });
});

describe('createCallbackHandler', () => {
  it('runs the handler of the event type and answers 204', async () => {
    const states: string[] = [];
    const tones: string[] = [];
    const handle = createCallbackHandler({
      secret,
      on: {
        CallLegStateChanged: (event) => void states.push(event.data.callState),
        DtmfReceived: (event: EventOf<'DtmfReceived'>) => void tones.push(event.data.toneInfo.tone),
      },
    });
    expect((await handle(delivery(established))).status).toBe(204);
    expect((await handle(delivery(examples.DtmfReceivedPound!.value))).status).toBe(204);
    expect((await handle(delivery(examples.PlayAudioResultCompleted!.value))).status).toBe(204);
    expect(states).toEqual(['established']);
    expect(tones).toEqual(['pound']);
  });

  it('answers 401 with the error body to a bad signature, running nothing', async () => {
    const seen = vi.fn();
    const handle = createCallbackHandler({ secret: otherSecret, on: { CallLegStateChanged: seen } });
    const response = await handle(delivery(established));
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: 'InvalidSignature' });
    expect(seen).not.toHaveBeenCalled();
  });

  it('answers 400 with the problems to a malformed event', async () => {
    const handle = createCallbackHandler({ secret, on: {} });
    const response = await handle(delivery({ ...established, data: { callLegId: 'leg-1' } }));
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 'InvalidEvent', details: [{ target: '/data/callState' }] });
  });

  it('handles a redelivered event once, also when the two arrive together', async () => {
    const seen = vi.fn(async () => new Promise<void>((resolve) => setTimeout(resolve, 20)));
    const handle = createCallbackHandler({ secret, on: { CallLegStateChanged: seen } });
    const statuses = await Promise.all([handle(delivery(established)), handle(delivery(established))]);
    const again = await handle(delivery(established));
    expect([...statuses, again].map((r) => r.status)).toEqual([204, 204, 204]);
    expect(seen).toHaveBeenCalledTimes(1);
  });

  it('answers 500 when the handler throws, and runs it again on redelivery', async () => {
    let calls = 0;
    const handle = createCallbackHandler({
      secret,
      on: {
        CallLegStateChanged: () => {
          calls++;
          if (calls === 1) throw new Error('database down');
        },
      },
    });
    const failed = await handle(delivery(established));
    expect(failed.status).toBe(500);
    expect(await failed.text()).not.toContain('database down');
    expect((await handle(delivery(established))).status).toBe(204);
    expect(calls).toBe(2);
  });

  it('acknowledges an event of an unknown type and reports it', async () => {
    const unknown = vi.fn();
    const handle = createCallbackHandler({ secret, on: {}, onUnknownEvent: unknown });
    const response = await handle(delivery({ ...established, id: 'evt_new', type: 'Microsoft.Communication.CallRecordingStateChanged' }));
    expect(response.status).toBe(204);
    expect(unknown).toHaveBeenCalledWith('Microsoft.Communication.CallRecordingStateChanged', expect.objectContaining({ id: 'evt_new' }));
  });

  it('answers 405 with Allow to anything but POST', async () => {
    const response = await createCallbackHandler({ secret, on: {} })(new Request('http://127.0.0.1/callbacks'));
    expect(response.status).toBe(405);
    expect(response.headers.get('Allow')).toBe('POST');
  });
});
