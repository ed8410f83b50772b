import { parseCallbackEvent, verifyCallbackSignature } from '@call-automation/client/events';
import { afterEach, describe, expect, it } from 'vitest';
import { createCallbackDelivery, createUriGuard, type CallbackDeliveryOptions } from '../src/index.ts';
// The conformance suite's receiver (that package depends on this one, so it is imported by path).
import { startCallbackReceiver, type ReceivedCallback } from '../../../conformance/src/harness/receiver.ts';
import type { ServerResponse } from 'node:http';

const secret = `whsec_${Buffer.from('server-test-callback-secret-0001').toString('base64')}`;
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
  const d = createCallbackDelivery({ secret, retryDelaysMs: [20, 40], jitter: 0, attemptTimeoutMs: 300, lifetimeMs: 2_000, guard: createUriGuard({ allowLoopback: true }), ...options });
  closers.push(async () => void (await d.close(100)));
  return d;
}

const established = { callLegId: 'leg-1', callState: 'established' as const };

describe('callback delivery', () => {
  it('sends signed CloudEvents that the client verifies and parses, in order', async () => {
    const r = await receiver();
    const d = delivery();
    d.register('leg-1', `${r.url}/cb`);
    const states = ['establishing', 'established', 'terminating', 'terminated'] as const;
    for (const callState of states) d.emit('leg-1', 'CallLegStateChanged', { callLegId: 'leg-1', callState });
    await d.drain();
    expect(r.received).toHaveLength(4);
    const parsed = r.received.map((entry) => {
      expect(entry.headers['content-type']).toBe('application/cloudevents+json');
      const { id } = verifyCallbackSignature(entry.body, entry.headers as Record<string, string>, secret);
      const event = parseCallbackEvent(entry.body);
      expect(event.id).toBe(id);
      expect(event.source).toBe('calls/leg-1');
      return event;
    });
    expect(parsed.map((e) => (e.type === 'Microsoft.Communication.CallLegStateChanged' ? e.data.callState : e.type))).toEqual([...states]);
    expect(await d.deadLetters()).toEqual([]);
  });

  it('still delivers what was queued for a call it is told to forget, and refuses later events for it', async () => {
    const r = await receiver();
    const d = delivery();
    d.register('leg-1', `${r.url}/cb`);
    d.emit('leg-1', 'CallLegStateChanged', { callLegId: 'leg-1', callState: 'terminated' });
    d.unregister('leg-1');
    expect(() => d.emit('leg-1', 'CallLegStateChanged', established)).toThrow(/No callbackUri is registered for call leg-1/);
    await d.drain();
    expect(r.received.map((entry) => parseCallbackEvent(entry.body).data)).toEqual([{ callLegId: 'leg-1', callState: 'terminated' }]);
  });

  it('retries after 500s with the same id and body, then succeeds, keeping later events behind', async () => {
    const r = await receiver((_entry, n, res) => void res.writeHead(n <= 2 ? 500 : 204).end());
    const d = delivery();
    d.register('leg-1', `${r.url}/cb`);
    d.emit('leg-1', 'CallLegStateChanged', { callLegId: 'leg-1', callState: 'establishing' });
    d.emit('leg-1', 'CallLegStateChanged', established);
    await d.drain();
    expect(r.received).toHaveLength(4);
    const ids = r.received.map((e) => e.headers['webhook-id']);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[1]).toBe(ids[2]);
    expect(ids[3]).not.toBe(ids[0]);
    expect(r.received[0]!.body).toBe(r.received[2]!.body);
    expect(r.received[1]!.at - r.received[0]!.at).toBeGreaterThanOrEqual(18);
    expect(await d.deadLetters()).toEqual([]);
  });

  it('honours Retry-After on 429', async () => {
    const r = await receiver((_e, n, res) => void (n === 1 ? res.writeHead(429, { 'Retry-After': '1' }).end() : res.writeHead(204).end()));
    const d = delivery();
    d.register('leg-1', `${r.url}/cb`);
    d.emit('leg-1', 'CallLegStateChanged', established);
    await d.drain();
    expect(r.received).toHaveLength(2);
    expect(r.received[1]!.at - r.received[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it('does not retry a 4xx, and dead-letters the event', async () => {
    const r = await receiver((_e, _n, res) => void res.writeHead(400).end());
    const d = delivery();
    d.register('leg-1', `${r.url}/cb`);
    d.emit('leg-1', 'CallLegStateChanged', established);
    await d.drain();
    expect(r.received).toHaveLength(1);
    expect(await d.deadLetters()).toEqual([expect.objectContaining({ reason: 'rejected', attempts: 1, lastError: 'HTTP 400' })]);
  });

  it('stops every delivery to a URI that answers 410', async () => {
    const r = await receiver((_e, _n, res) => void res.writeHead(410).end());
    const d = delivery();
    d.register('leg-1', `${r.url}/cb`);
    for (let i = 0; i < 3; i++) d.emit('leg-1', 'DtmfReceived', { callLegId: 'leg-1', toneInfo: { sequenceId: i, tone: 'tone1' } });
    await d.drain();
    expect(r.received).toHaveLength(1);
    expect((await d.deadLetters()).map((l) => l.reason)).toEqual(['gone', 'gone', 'gone']);
  });

  it('does not follow a redirect', async () => {
    const target = await receiver();
    const r = await receiver((_e, _n, res) => void res.writeHead(307, { Location: `${target.url}/elsewhere` }).end());
    const d = delivery();
    d.register('leg-1', `${r.url}/cb`);
    d.emit('leg-1', 'CallLegStateChanged', established);
    await d.drain();
    expect(target.received).toHaveLength(0);
    expect(await d.deadLetters()).toEqual([expect.objectContaining({ reason: 'rejected' })]);
  });

  it('times out a receiver that never answers, retries, and dead-letters the event when its lifetime ends', async () => {
    const r = await receiver(() => {});
    const d = delivery({ attemptTimeoutMs: 100, retryDelaysMs: [50], lifetimeMs: 400 });
    d.register('leg-1', `${r.url}/cb`);
    d.emit('leg-1', 'CallLegStateChanged', established);
    await d.drain();
    const [letter] = await d.deadLetters();
    expect(letter).toMatchObject({ reason: 'expired' });
    expect(letter!.attempts).toBeGreaterThanOrEqual(2);
    expect(letter!.lastError).toMatch(/TimeoutError/);
    expect(r.received.length).toBe(letter!.attempts);
  });

  it('keeps an event emitted after close as a dead letter, without throwing', async () => {
    const r = await receiver();
    const d = delivery();
    d.register('leg-1', `${r.url}/cb`);
    await d.close(100);
    expect(() => d.emit('leg-1', 'CallLegStateChanged', established)).not.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(r.received).toHaveLength(0);
    expect(await d.deadLetters()).toEqual([expect.objectContaining({ reason: 'closed', attempts: 0 })]);
  });

  it('refuses, at send time, a URI that resolves to a private address', async () => {
    const d = delivery({ guard: createUriGuard({ resolve: async () => ['10.0.0.5'] }) });
    d.register('leg-1', 'https://callbacks.contoso.example/cb');
    d.emit('leg-1', 'CallLegStateChanged', established);
    await d.drain();
    expect(await d.deadLetters()).toEqual([expect.objectContaining({ reason: 'refused', lastError: expect.stringContaining('private') })]);
  });
});
