import { describe, expectTypeOf, it } from 'vitest';
import { createCallAutomationClient, hasStatus, type CommunicationError, type CreateCallResponse, type PlayAudioResponse } from '../src/index.ts';
import { createRawClient } from '../src/raw/index.ts';
import { createCallbackHandler, parseCallbackEvent, type CallAutomationEvent } from '../src/events/index.ts';

const client = createCallAutomationClient('endpoint=https://x.communication.azure.com/;accesskey=a2V5');
const call = {
  targets: [{ phoneNumber: { value: '+14251001000' } }],
  callbackUri: 'https://app.contoso.com/cb',
  requestedModalities: ['audio' as const],
  requestedCallEvents: [],
};

describe('the client types', () => {
  it('type each operation’s data and error from the spec', async () => {
    const created = await client.createCall(call);
    expectTypeOf(created.data).toEqualTypeOf<CreateCallResponse | undefined>();
    expectTypeOf(created.error).toEqualTypeOf<CommunicationError | undefined>();
    if (created.error) expectTypeOf(created.data).toEqualTypeOf<undefined>();
    else expectTypeOf(created.data).toEqualTypeOf<CreateCallResponse>();

    const played = await client.playAudio('leg', { audioFileUri: 'https://m/a.wav' });
    if (!played.error) expectTypeOf(played.data).toEqualTypeOf<PlayAudioResponse>();
    const hungUp = await client.hangupCall('leg');
    if (!hungUp.error) expectTypeOf(hungUp.data).toEqualTypeOf<undefined>();
  });

  it('narrow by a documented status, and refuse an undocumented one', async () => {
    const result = await client.hangupCall('leg');
    if (hasStatus(result, 404)) expectTypeOf(result.error).toEqualTypeOf<CommunicationError>();
    if (hasStatus(result, 202)) expectTypeOf(result.data).toEqualTypeOf<undefined>();
    // @ts-expect-error createCall documents no 404: it has no id in its path
    hasStatus(await client.createCall(call), 404);
    // @ts-expect-error 418 is not documented for hangupCall
    hasStatus(result, 418);
  });

  it('refuse a wrong body or a missing id', () => {
    // @ts-expect-error requestedModalities is required
    void client.createCall({ targets: call.targets, callbackUri: call.callbackUri, requestedCallEvents: [] });
    // @ts-expect-error "hologram" is not a modality
    void client.createCall({ ...call, requestedModalities: ['hologram'] });
    // @ts-expect-error audioFileUri is required
    void client.playAudio('leg', { loop: true });
    // @ts-expect-error the call id is missing
    void client.playAudio({ audioFileUri: 'https://m/a.wav' });
    // @ts-expect-error the participant id is missing
    void client.removeParticipant('leg');
    // @ts-expect-error the raw client needs the path parameter
    void createRawClient('endpoint=http://127.0.0.1:4780/;accesskey=a2V5').POST('/calls/{callId}/Hangup', {});
  });
});

describe('the event types', () => {
  it('are a union told apart by type', () => {
    const event = parseCallbackEvent('{}');
    expectTypeOf(event).toEqualTypeOf<CallAutomationEvent>();
    if (event.type === 'Microsoft.Communication.PlayAudioResult') {
      expectTypeOf(event.data.resultInfo.subcode).toEqualTypeOf<number>();
    }
    // @ts-expect-error no such event type
    if (event.type === 'Microsoft.Communication.CallTransferred') return;
  });

  it('give each handler its own event, and refuse an unknown one', () => {
    createCallbackHandler({
      secret: 'whsec_x',
      on: {
        DtmfReceived: (event) => {
          expectTypeOf(event.data.toneInfo.tone).toEqualTypeOf<'tone0' | 'tone1' | 'tone2' | 'tone3' | 'tone4' | 'tone5' | 'tone6' | 'tone7' | 'tone8' | 'tone9' | 'star' | 'pound' | 'a' | 'b' | 'c' | 'd' | 'flash'>();
        },
        CallLegStateChanged: (event) => {
          expectTypeOf(event.data.callLegId).toEqualTypeOf<string>();
        },
      },
    });
    createCallbackHandler({
      secret: 'whsec_x',
      // @ts-expect-error no such event
      on: { CallTransferred: () => {} },
    });
  });
});
