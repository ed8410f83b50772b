// The delivery engine: in order per call, calls concurrently to one endpoint, a failing event
// holding back only its own call, a bounded backlog, a shutdown that accounts for every event,
// and dead letters that can be sent again.
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createCallbackDelivery, createMemoryCallbackQueue, createUriGuard, type CallbackDeliveryOptions, type CallbackQueue } from '../src/index.ts';
// The conformance suite's receiver (that package depends on this one, so it is imported by path).
import { startCallbackReceiver, type ReceivedCallback } from '../../../conformance/src/harness/receiver.ts';

const secret = `whsec_${Buffer.from('server-test-callback-secret-0002').toString('base64')}`;
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function receiver(answer?: (delivery: ReceivedCallback, count: number, res: ServerResponse) => void) {
  const r = await startCallbackReceiver({ answer });
  closers.push(r.close);
  return r;
}

function delivery(options: Partial<CallbackDeliveryOptions> = {}) {
  const d = createCallbackDelivery({ secret, retryDelaysMs: [50], jitter: 0, attemptTimeoutMs: 2_000, lifetimeMs: 5_000, guard: createUriGuard({ allowLoopback: true }), ...options });
  closers.push(async () => void (await d.close(100)));
  return d;
}

const dataOf = (received: ReceivedCallback) => JSON.parse(received.body).data as { callLegId: string; toneInfo: { sequenceId: number } };

/** Emits `count` DtmfReceived events for a call, sequenceId 0 to count - 1. */
function emitTones(d: ReturnType<typeof delivery>, callLegId: string, count: number) {
  for (let i = 0; i < count; i++) d.emit(callLegId, 'DtmfReceived', { callLegId, toneInfo: { sequenceId: i, tone: 'tone1' } });
}

describe('the delivery engine', () => {
  it('delivers calls concurrently to one endpoint, at most concurrencyPerUri at once, each call in order', async () => {
    let inFlight = 0;
    let most = 0;
    const r = await receiver((_d, _n, res) => {
      most = Math.max(most, ++inFlight);
      setTimeout(() => {
        inFlight--;
        res.writeHead(204).end();
      }, 40);
    });
    const d = delivery({ concurrencyPerUri: 8 });
    for (let call = 0; call < 20; call++) {
      d.register(`leg-${call}`, `${r.url}/cb`);
      emitTones(d, `leg-${call}`, 4);
    }
    await d.drain();
    expect(r.received).toHaveLength(80);
    expect(most).toBe(8);
    for (let call = 0; call < 20; call++) {
      const order = r.received.filter((x) => dataOf(x).callLegId === `leg-${call}`).map((x) => dataOf(x).toneInfo.sequenceId);
      expect(order, `leg-${call}`).toEqual([0, 1, 2, 3]);
    }
  });

  it('holds back only the failing call: its later events wait for it, the other calls go on', async () => {
    const r = await receiver((delivery, _n, res) => {
      const { callLegId, toneInfo } = dataOf(delivery);
      const failing = callLegId === 'leg-slow' && toneInfo.sequenceId === 0 && r.received.filter((x) => dataOf(x).callLegId === 'leg-slow').length <= 3;
      res.writeHead(failing ? 503 : 204).end();
    });
    const d = delivery({ concurrencyPerUri: 1, retryDelaysMs: [100] });
    d.register('leg-slow', `${r.url}/cb`);
    d.register('leg-fast', `${r.url}/cb`);
    emitTones(d, 'leg-slow', 3);
    emitTones(d, 'leg-fast', 3);
    await d.drain();
    const seen = r.received.map((x) => `${dataOf(x).callLegId}:${dataOf(x).toneInfo.sequenceId}`);
    // With one slot for the endpoint, the fast call is delivered while the slow one waits to retry.
    expect(seen.indexOf('leg-fast:2')).toBeLessThan(seen.lastIndexOf('leg-slow:0'));
    expect(seen.filter((x) => x.startsWith('leg-slow')).slice(-3)).toEqual(['leg-slow:0', 'leg-slow:1', 'leg-slow:2']);
    expect(seen.filter((x) => x.startsWith('leg-fast'))).toEqual(['leg-fast:0', 'leg-fast:1', 'leg-fast:2']);
  });

  it('keeps what the full backlog cannot take as a dead letter (overflow), and says so', async () => {
    const r = await receiver((_d, _n, res) => setTimeout(() => res.writeHead(204).end(), 50));
    const logged: string[] = [];
    const d = delivery({ queue: createMemoryCallbackQueue({ maxEntries: 5 }), log: (message) => void logged.push(message) });
    d.register('leg-1', `${r.url}/cb`);
    emitTones(d, 'leg-1', 10);
    await d.drain();
    const letters = await d.deadLetters();
    expect(letters.map((l) => l.reason)).toEqual(Array(5).fill('overflow'));
    expect(r.received.length + letters.length).toBe(10);
    expect(logged).toHaveLength(5);
    expect(logged[0]).toMatch(/^Callback backlog full: event evt_\w+ of call leg-1 for http:\/\/127\.0\.0\.1:\d+\/cb was kept as a dead letter \(overflow\)\.$/);
  });

  it('says of each event it keeps as a dead letter which it is, where it was going, why, and what came back', async () => {
    const r = await receiver((received, _n, res) => res.writeHead(dataOf(received).callLegId === 'leg-gone' ? 410 : 400).end());
    const logged: string[] = [];
    const d = delivery({ log: (message) => void logged.push(message) });
    d.register('leg-rejected', `${r.url}/cb`);
    d.register('leg-gone', `${r.url}/gone`);
    // A private address: the guard refuses it by its form, and nothing is sent.
    d.register('leg-refused', 'http://10.0.0.1/cb');
    emitTones(d, 'leg-rejected', 1);
    emitTones(d, 'leg-gone', 2);
    emitTones(d, 'leg-refused', 1);
    await d.drain();
    const letters = await d.deadLetters();
    const id = (callLegId: string, i = 0) => letters.filter((l) => l.callLegId === callLegId)[i]!.id;
    expect(letters).toHaveLength(4);
    expect(r.received).toHaveLength(2);
    expect(logged.sort()).toEqual(
      [
        `Callback event ${id('leg-rejected')} of call leg-rejected for ${r.url}/cb was kept as a dead letter (rejected) after 1 attempt, the last: HTTP 400.`,
        `Callback event ${id('leg-gone')} of call leg-gone for ${r.url}/gone was kept as a dead letter (gone) after 1 attempt, the last: HTTP 410.`,
        `Callback event ${id('leg-gone', 1)} of call leg-gone for ${r.url}/gone was kept as a dead letter (gone): the URI answered 410 before.`,
        `Callback event ${id('leg-refused')} of call leg-refused for http://10.0.0.1/cb was kept as a dead letter (refused) after 1 attempt, the last: callbackUri is 10.0.0.1, a private address.`,
      ].sort(),
    );
  });

  it('on shutdown, keeps what it could not deliver as dead letters, and says how many', async () => {
    const r = await receiver((_d, _n, res) => res.writeHead(503).end());
    const logged: string[] = [];
    const d = createCallbackDelivery({ secret, retryDelaysMs: [60_000], jitter: 0, log: (message) => void logged.push(message) });
    for (const call of ['leg-1', 'leg-2']) d.register(call, `${r.url}/cb`);
    emitTones(d, 'leg-1', 4);
    emitTones(d, 'leg-2', 3);
    await r.waitFor(() => r.received.length >= 2);
    const report = await d.close(200);
    expect(report).toEqual({ delivered: 0, stillQueued: 0, deadLettered: 7 });
    const letters = await d.deadLetters();
    expect(letters.map((l) => l.reason)).toEqual(Array(7).fill('closed'));
    expect(new Set(letters.map((l) => l.id)).size).toBe(7);
    expect(logged).toEqual(['Callback delivery stopped: 0 delivered while stopping, 0 left queued, 7 kept as dead letters (closed).']);
  });

  it('on shutdown, leaves a durable queue as it is for the next process', async () => {
    const r = await receiver((_d, _n, res) => res.writeHead(503).end());
    const memory = createMemoryCallbackQueue();
    const durable: CallbackQueue = { ...memory, durable: true };
    const d = createCallbackDelivery({ secret, retryDelaysMs: [60_000], jitter: 0, queue: durable, log: () => {} });
    d.register('leg-1', `${r.url}/cb`);
    emitTones(d, 'leg-1', 3);
    await r.waitFor(() => r.received.length >= 1);
    expect(await d.close(100)).toEqual({ delivered: 0, stillQueued: 3, deadLettered: 0 });
    expect(await d.deadLetters()).toEqual([]);
    expect(await memory.size()).toBe(3);
  });

  it('sends a dead letter again, from its first attempt, and forgets it', async () => {
    let accept = false;
    const r = await receiver((_d, _n, res) => res.writeHead(accept ? 204 : 400).end());
    const d = delivery();
    d.register('leg-1', `${r.url}/cb`);
    emitTones(d, 'leg-1', 1);
    await d.drain();
    const [letter] = await d.deadLetters();
    expect(letter).toMatchObject({ reason: 'rejected', attempts: 1, lastError: 'HTTP 400' });
    accept = true;
    expect(await d.redrive(letter!.id)).toBe(true);
    await d.drain();
    expect(await d.deadLetters()).toEqual([]);
    expect(r.received.map((x) => x.headers['webhook-id'])).toEqual([letter!.id, letter!.id]);
    expect(await d.redrive(letter!.id)).toBe(false);
  });

  it('records a registration of the URI being recorded for the call once, and one after an unregister again', async () => {
    const steps: string[] = [];
    const registry = {
      set: async (callLegId: string, uri: string) => void steps.push(`set ${callLegId} ${uri}`),
      get: async () => undefined,
      delete: async (callLegId: string) => void steps.push(`delete ${callLegId}`),
    };
    const d = delivery({ registry });
    // The handler's register, then the stub's.
    d.register('leg-1', 'https://app.contoso.com/one');
    d.register('leg-1', 'https://app.contoso.com/one');
    d.register('leg-1', 'https://app.contoso.com/two');
    d.unregister('leg-1');
    d.register('leg-1', 'https://app.contoso.com/two');
    await d.settled!();
    expect(steps).toEqual(['set leg-1 https://app.contoso.com/one', 'set leg-1 https://app.contoso.com/two', 'delete leg-1', 'set leg-1 https://app.contoso.com/two']);
    // Once recorded, a registration is asked of the registry again (a shared one may have changed meanwhile).
    d.register('leg-1', 'https://app.contoso.com/two');
    await d.settled!();
    expect(steps).toHaveLength(5);
  });

  it('settled() waits for the registry steps and events asked for before it, and not for later ones', async () => {
    // A registry whose writes finish when the test says: one held per call.
    const held = new Map<string, () => void>();
    const registry = {
      set: (callLegId: string) => new Promise<void>((resolve) => held.set(callLegId, resolve)),
      get: async () => undefined,
      delete: async () => {},
    };
    const d = delivery({ registry });
    const r = await receiver();
    const state = (promise: Promise<void> | void) => {
      const seen = { done: false };
      void promise?.then(() => (seen.done = true));
      return seen;
    };
    const turns = () => new Promise((resolve) => setTimeout(resolve, 10));
    expect(d.settled!()).toBeUndefined();
    d.register('leg-1', `${r.url}/cb`);
    emitTones(d, 'leg-1', 1);
    const first = state(d.settled!());
    d.register('leg-2', `${r.url}/cb`);
    const second = state(d.settled!());
    await turns();
    held.get('leg-2')!();
    await turns();
    expect([first.done, second.done]).toEqual([false, false]);
    held.get('leg-1')!();
    await turns();
    expect([first.done, second.done]).toEqual([true, true]);
    // One asked for before a step does not wait for it.
    d.register('leg-3', `${r.url}/cb`);
    const third = state(d.settled!());
    d.register('leg-4', `${r.url}/cb`);
    await turns();
    expect(third.done).toBe(false);
    held.get('leg-3')!();
    await turns();
    expect(third.done).toBe(true);
    held.get('leg-4')!();
    await r.waitFor(() => r.received.length === 1);
    await turns();
    expect(d.settled!()).toBeUndefined();
  });
});
