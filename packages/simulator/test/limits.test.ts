import type { CallbackEmitter, HandlerContext } from '@call-automation/server';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createSimulator } from '../src/index.ts';

const body = {
  targets: [{ phoneNumber: { value: '+14251001000' } }],
  callbackUri: 'https://app.contoso.com/api/callbacks',
  requestedModalities: ['audio' as const],
  requestedCallEvents: [],
};

/** An emitter that records what the simulator emits, registers and forgets. */
function recorder() {
  const emitted: Array<{ callLegId: string; name: string; state?: string }> = [];
  const registered = new Set<string>();
  const events: CallbackEmitter = {
    emit: (callLegId, name, data) => void emitted.push({ callLegId, name, state: (data as { callState?: string }).callState }),
    register: (callLegId) => void registered.add(callLegId),
    unregister: (callLegId) => void registered.delete(callLegId),
  };
  const context = { caller: { kind: 'hmac', keyIndex: 0 }, requestId: 'r', events } as HandlerContext;
  const states = (id: string) => emitted.filter((e) => e.callLegId === id && e.name === 'CallLegStateChanged').map((e) => e.state);
  return { context, registered, states };
}

async function createCalls(simulator: ReturnType<typeof createSimulator>, context: HandlerContext, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const result = await simulator.handlers.createCall({ body, params: {}, headers: {} } as never, context);
    ids.push((result as { body: { callLegId: string } }).body.callLegId);
  }
  return ids;
}

describe('the number of calls kept', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('ends the oldest call, with its hang-up events, when a new one would pass maxCalls', async () => {
    const { context, registered, states } = recorder();
    const simulator = createSimulator({ maxCalls: 2, answerDelayMs: 5 });
    const ids = await createCalls(simulator, context, 3);
    expect((await simulator.listCalls()).map((call) => call.callLegId)).toEqual([ids[1], ids[2]]);
    // The first call's operations answer 404, as after a hang-up.
    await expect(simulator.handlers.hangupCall({ params: { callId: ids[0]! }, headers: {} } as never, context)).rejects.toMatchObject({ status: 404 });
    await vi.advanceTimersByTimeAsync(50);
    expect(states(ids[0]!)).toEqual(['establishing', 'terminating', 'terminated']);
    expect(states(ids[1]!)).toEqual(['establishing', 'established']);
    expect(states(ids[2]!)).toEqual(['establishing', 'established']);
    // Its callbackUri is forgotten once its last event is out; the others' are kept.
    expect([...registered]).toEqual([ids[1], ids[2]]);
    await simulator.stop();
  });

  it('keeps one call with maxCalls 1: the call it ends sends its last events at once, and stop ends every timer', async () => {
    const { context, registered, states } = recorder();
    const simulator = createSimulator({ maxCalls: 1, answerDelayMs: 5 });
    const ids = await createCalls(simulator, context, 2);
    expect((await simulator.listCalls()).map((call) => call.callLegId)).toEqual([ids[1]]);
    expect(states(ids[0]!)).toEqual(['establishing', 'terminating', 'terminated']);
    expect(registered.has(ids[0]!)).toBe(false);
    // Stopped before the second call's targets answer: nothing more goes out.
    await simulator.stop();
    await vi.advanceTimersByTimeAsync(50);
    expect(states(ids[1]!)).toEqual(['establishing']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('ends calls oldest first over many rounds, skipping those already hung up', async () => {
    const { context, states } = recorder();
    const simulator = createSimulator({ maxCalls: 3, answerDelayMs: 5 });
    const ids = await createCalls(simulator, context, 3);
    // The oldest is hung up by its caller: the next one to be ended by the limit is ids[1].
    await simulator.handlers.hangupCall({ params: { callId: ids[0]! }, headers: {} } as never, context);
    ids.push(...(await createCalls(simulator, context, 1)));
    expect((await simulator.listCalls()).map((call) => call.callLegId)).toEqual([ids[1], ids[2], ids[3]]);
    ids.push(...(await createCalls(simulator, context, 20)));
    // Always the three newest, in order, however often the list of ids was compacted.
    expect((await simulator.listCalls()).map((call) => call.callLegId)).toEqual(ids.slice(-3));
    await vi.advanceTimersByTimeAsync(50);
    for (const id of ids.slice(0, -3)) expect(states(id).slice(-2)).toEqual(['terminating', 'terminated']);
    await simulator.stop();
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses maxCalls %s', (maxCalls) => {
    expect(() => createSimulator({ maxCalls })).toThrow(RangeError);
  });
});

describe('plays and participants, step by step', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function playback() {
    const emitted: Array<{ name: string; data: Record<string, unknown> }> = [];
    const events: CallbackEmitter = { emit: (_id, name, data) => void emitted.push({ name, data: data as Record<string, unknown> }), register() {} };
    const context = { caller: { kind: 'hmac', keyIndex: 0 }, requestId: 'r', events } as HandlerContext;
    return { emitted, context };
  }

  it('runs plays one after another, answers notStarted for a queued one, and cancels them all', async () => {
    const { emitted, context } = playback();
    const simulator = createSimulator({ answerDelayMs: 5, playDurationMs: 100 });
    const [callId] = await createCalls(simulator, context, 1);
    const play = (operationContext: string) => simulator.handlers.playAudio({ params: { callId }, body: { audioFileUri: 'https://cdn.contoso.com/a.wav', operationContext }, headers: {} } as never, context);
    expect(await play('first')).toMatchObject({ status: 202, body: { status: 'running' } });
    expect(await play('second')).toMatchObject({ status: 202, body: { status: 'notStarted' } });
    expect(await play('third')).toMatchObject({ status: 202, body: { status: 'notStarted' } });
    await vi.advanceTimersByTimeAsync(150);
    const results = () => emitted.filter((e) => e.name === 'PlayAudioResult').map((e) => [e.data.operationContext, e.data.status]);
    expect(results()).toEqual([['first', 'completed']]);
    await simulator.handlers.cancelMediaProcessing({ params: { callId }, body: { operationContext: 'stop' }, headers: {} } as never, context);
    expect(results()).toEqual([['first', 'completed'], ['second', 'failed'], ['third', 'failed']]);
    // Nothing more is pending for the cancelled plays; a new one runs at once.
    await vi.advanceTimersByTimeAsync(1000);
    expect(results()).toHaveLength(3);
    expect(await play('fourth')).toMatchObject({ body: { status: 'running' } });
    await simulator.stop();
  });

  it('removes the participant named, and only that one', async () => {
    const { emitted, context } = playback();
    const simulator = createSimulator({ answerDelayMs: 5 });
    const created = await simulator.handlers.createCall(
      { body: { ...body, targets: [{ phoneNumber: { value: '+14251001000' } }, { phoneNumber: { value: '+14251001001' } }], requestedCallEvents: ['participantsUpdated'] }, params: {}, headers: {} } as never,
      context,
    );
    const callId = (created as { body: { callLegId: string } }).body.callLegId;
    await vi.advanceTimersByTimeAsync(10);
    const [first, second] = (await simulator.listCalls())[0]!.participants;
    await expect(simulator.handlers.removeParticipant({ params: { callId, participantId: 'not-in-call' }, headers: {} } as never, context)).rejects.toMatchObject({ status: 404 });
    await simulator.handlers.removeParticipant({ params: { callId, participantId: first!.participantId }, headers: {} } as never, context);
    expect((await simulator.listCalls())[0]!.participants).toEqual([second]);
    expect(emitted.filter((e) => e.name === 'ParticipantsUpdated').at(-1)!.data.participants).toEqual([second]);
    await simulator.stop();
  });
});
