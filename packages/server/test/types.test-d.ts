import { describe, expectTypeOf, it } from 'vitest';
import { ApiError, type CallAutomationHandlers, type HandlerInput, type HandlerReply } from '../src/index.ts';

describe('handler types', () => {
  it('give each handler its validated input', () => {
    expectTypeOf<HandlerInput<'playAudio'>['params']>().toEqualTypeOf<{ callId: string }>();
    expectTypeOf<HandlerInput<'removeParticipant'>['params']>().toEqualTypeOf<{ callId: string; participantId: string }>();
    expectTypeOf<HandlerInput<'createCall'>['body']['targets']>().items.toHaveProperty('rawId');
    expectTypeOf<HandlerInput<'createCall'>['headers']>().toEqualTypeOf<{ 'repeatability-request-id'?: string; 'repeatability-first-sent'?: string }>();
    expectTypeOf<HandlerInput<'hangupCall'>['body']>().toEqualTypeOf<undefined>();
  });

  it('accept only the statuses and bodies the spec declares', () => {
    const ok: HandlerReply<'createCall'> = { status: 200, body: { callLegId: 'leg' } };
    const notFound: HandlerReply<'hangupCall'> = { status: 404, body: { code: 'CallNotFound', message: 'gone' } };
    const accepted: HandlerReply<'hangupCall'> = { status: 202 };
    const throttled: HandlerReply<'playAudio'> = { status: 429, body: { code: 'TooManyRequests', message: 'Slow down.' }, headers: { 'Retry-After': '2' } };
    const unavailable: HandlerReply<'createCall'> = { status: 503, body: { code: 'ServiceUnavailable', message: 'Later.' }, headers: { 'Retry-After': '5' } };
    void [ok, notFound, accepted, throttled, unavailable];
    // @ts-expect-error createCall answers 200, not 201
    const created: HandlerReply<'createCall'> = { status: 201, body: { callLegId: 'leg' } };
    // @ts-expect-error createCall's 200 carries a callLegId
    const wrongShape: HandlerReply<'createCall'> = { status: 200, body: { id: 'leg' } };
    // @ts-expect-error createCall documents no 404
    const missing: HandlerReply<'createCall'> = { status: 404, body: { code: 'X', message: 'y' } };
    // @ts-expect-error an error body needs a message
    const noMessage: HandlerReply<'playAudio'> = { status: 400, body: { code: 'X' } };
    // @ts-expect-error playAudio's 202 has a body
    const noBody: HandlerReply<'playAudio'> = { status: 202 };
    void [created, wrongShape, missing, noMessage, noBody];
  });

  it('make a handler set complete, with one handler per operation', () => {
    // @ts-expect-error five handlers are missing
    const incomplete: CallAutomationHandlers = { createCall: () => ({ status: 200, body: { callLegId: 'x' } }) };
    void incomplete;
    const handlers: Pick<CallAutomationHandlers, 'hangupCall'> = {
      hangupCall: ({ params }) => {
        if (params.callId === 'x') throw new ApiError(404, 'CallNotFound', 'No such call.');
        return { status: 202 };
      },
    };
    void handlers;
  });
});
