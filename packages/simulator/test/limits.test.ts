import { ApiError, type CallbackEmitter, type HandlerContext } from '@call-automation/server';
import { describe, expect, it } from 'vitest';
import { createSimulator } from '../src/index.ts';

describe('the number of calls kept', () => {
  it('ends the oldest call, with its hang-up events, when a new one would pass maxCalls', async () => {
    const emitted: Array<{ callLegId: string; name: string; state?: string }> = [];
    const events: CallbackEmitter = {
      emit: (callLegId, name, data) => void emitted.push({ callLegId, name, state: (data as { callState?: string }).callState }),
      register() {},
    };
    const context = { caller: { kind: 'hmac', keyIndex: 0 }, requestId: 'r', events } as HandlerContext;
    const simulator = createSimulator({ maxCalls: 2, answerDelayMs: 5 });
    const body = {
      targets: [{ phoneNumber: { value: '+14251001000' } }],
      callbackUri: 'https://app.contoso.com/api/callbacks',
      requestedModalities: ['audio' as const],
      requestedCallEvents: [],
    };
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const result = await simulator.handlers.createCall({ body, params: {}, headers: {} } as never, context);
      ids.push((result as { body: { callLegId: string } }).body.callLegId);
    }
    expect(simulator.listCalls().map((call) => call.callLegId)).toEqual([ids[1], ids[2]]);
    // The first call's operations answer 404, as after a hang-up.
    await expect(Promise.resolve().then(() => simulator.handlers.hangupCall({ params: { callId: ids[0]! }, headers: {} } as never, context))).rejects.toMatchObject({
      status: 404,
    } satisfies Partial<ApiError>);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const states = (id: string) => emitted.filter((e) => e.callLegId === id && e.name === 'CallLegStateChanged').map((e) => e.state);
    expect(states(ids[0]!)).toEqual(['establishing', 'terminating', 'terminated']);
    expect(states(ids[2]!)).toEqual(['establishing', 'established']);
    simulator.stop();
  });
});
