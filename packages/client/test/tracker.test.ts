import { describe, expect, it, vi } from 'vitest';
import { createEventTracker, EventTimeoutError, type CallAutomationEvent } from '../src/events/index.ts';

let n = 0;
function event(callLegId: string, name: string, data: Record<string, unknown> = {}, id = `evt_${++n}`): CallAutomationEvent {
  return { specversion: '1.0', id, source: `calls/${callLegId}`, type: `Microsoft.Communication.${name}`, time: new Date().toISOString(), datacontenttype: 'application/json', data: { callLegId, ...data } } as CallAutomationEvent;
}
const state = (callLegId: string, callState: string, id?: string) => event(callLegId, 'CallLegStateChanged', { callState }, id);
const tone = (callLegId: string, t: string, sequenceId: number) => event(callLegId, 'DtmfReceived', { toneInfo: { tone: t, sequenceId } });

describe('createEventTracker', () => {
  it('answers a wait with an event that arrived before it began (before the HTTP answer named the call)', async () => {
    const tracker = createEventTracker();
    tracker.handle(state('a', 'establishing'));
    await expect(tracker.waitFor('a', 'CallLegStateChanged')).resolves.toMatchObject({ data: { callState: 'establishing' } });
  });

  it('answers a wait with the event that comes next, typed by its name', async () => {
    const tracker = createEventTracker();
    const waiting = tracker.waitFor('a', 'DtmfReceived');
    tracker.handle(state('a', 'established'));
    tracker.handle(tone('b', 'tone9', 0));
    tracker.handle(tone('a', 'tone1', 0));
    const got = await waiting;
    expect(got.data.toneInfo.tone).toBe('tone1');
  });

  it('gives each event to one wait: two waits get the first and the second tone', async () => {
    const tracker = createEventTracker();
    tracker.handle(tone('a', 'tone1', 0));
    tracker.handle(tone('a', 'tone2', 1));
    const first = await tracker.waitFor('a', 'DtmfReceived');
    const second = await tracker.waitFor('a', 'DtmfReceived');
    expect([first.data.toneInfo.tone, second.data.toneInfo.tone]).toEqual(['tone1', 'tone2']);
  });

  it('drops a duplicate (the same event id, redelivered)', async () => {
    const tracker = createEventTracker();
    tracker.handle(tone('a', 'tone1', 0));
    const again = tracker.events('a')[0]!;
    tracker.handle(again);
    tracker.handle(again);
    expect(tracker.events('a')).toHaveLength(1);
    await tracker.waitFor('a', 'DtmfReceived');
    await expect(tracker.waitFor('a', 'DtmfReceived', { timeoutMs: 20 })).rejects.toBeInstanceOf(EventTimeoutError);
  });

  it('matches operationContext and `where`', async () => {
    const tracker = createEventTracker();
    tracker.handle(event('a', 'PlayAudioResult', { operationContext: 'greeting', status: 'completed' }));
    tracker.handle(event('a', 'PlayAudioResult', { operationContext: 'reminder', status: 'failed' }));
    await expect(tracker.waitFor('a', 'PlayAudioResult', { operationContext: 'reminder' })).resolves.toMatchObject({ data: { status: 'failed' } });
    const established = tracker.waitFor('a', 'CallLegStateChanged', { where: (e) => e.data.callState === 'established' });
    tracker.handle(state('a', 'establishing'));
    tracker.handle(state('a', 'established'));
    await expect(established).resolves.toMatchObject({ data: { callState: 'established' } });
    // The establishing event was not taken: it still answers a wait for any state.
    await expect(tracker.waitFor('a', 'CallLegStateChanged')).resolves.toMatchObject({ data: { callState: 'establishing' } });
  });

  it('rejects a wait that runs out with what the call did have', async () => {
    vi.useFakeTimers();
    try {
      const tracker = createEventTracker();
      tracker.handle(state('a', 'establishing'));
      tracker.handle(state('a', 'terminated'));
      const waiting = tracker.waitFor('a', 'DtmfReceived', { timeoutMs: 5_000 });
      const caught = waiting.catch((error: unknown) => error);
      await vi.advanceTimersByTimeAsync(5_000);
      const error = (await caught) as EventTimeoutError;
      expect(error).toBeInstanceOf(EventTimeoutError);
      expect(error.message).toBe('No DtmfReceived for call a within 5000 ms; it had: CallLegStateChanged (establishing), CallLegStateChanged (terminated).');
      expect(error.seen).toHaveLength(2);
      const none = tracker.waitFor('b', 'DtmfReceived', { timeoutMs: 10 }).catch((e: Error) => e.message);
      await vi.advanceTimersByTimeAsync(10);
      expect(await none).toBe('No DtmfReceived for call b within 10 ms; no event of it arrived.');
    } finally {
      vi.useRealTimers();
    }
  });

  it('stops a wait when its signal aborts', async () => {
    const tracker = createEventTracker();
    const controller = new AbortController();
    const waiting = tracker.waitFor('a', 'DtmfReceived', { signal: controller.signal });
    controller.abort(new Error('the caller gave up'));
    await expect(waiting).rejects.toThrow('the caller gave up');
  });

  it('keeps at most maxEvents, forgetting the oldest', async () => {
    const tracker = createEventTracker({ maxEvents: 2 });
    tracker.handle(tone('a', 'tone1', 0));
    tracker.handle(tone('a', 'tone2', 1));
    tracker.handle(tone('a', 'tone3', 2));
    expect(tracker.events('a').map((e) => (e.data as { toneInfo: { tone: string } }).toneInfo.tone)).toEqual(['tone2', 'tone3']);
    await expect(tracker.waitFor('a', 'DtmfReceived')).resolves.toMatchObject({ data: { toneInfo: { tone: 'tone2' } } });
    tracker.forget('a');
    expect(tracker.events('a')).toEqual([]);
    expect(() => createEventTracker({ maxEvents: 0 })).toThrow(RangeError);
  });
});
