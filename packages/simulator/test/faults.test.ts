/**
 * Fault injection through the control surface: API operations refused (429, 503 with
 * Retry-After) at a seeded rate or answered late, which our client retries through; callbacks
 * duplicated, reordered, delayed, or sent before the answer of the request that caused them.
 */
import { createCallAutomationClient } from '@call-automation/client';
import { serveApp, type RunningServer } from '@call-automation/server/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCallbackReceiver, type CallbackReceiver } from '../../../conformance/src/harness/receiver.ts';
import { createSimulatorService } from '../src/index.ts';

const accessKey = Buffer.from('faults-test-access-key-000000001').toString('base64');
const callbackSecret = `whsec_${Buffer.from('faults-test-callback-secret-0001').toString('base64')}`;

let service: ReturnType<typeof createSimulatorService>;
let api: RunningServer;
let control: RunningServer;
let receiver: CallbackReceiver;

const setFaults = (body: unknown) => fetch(`${control.url}/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const client = (retry?: { maxRetries: number }) => createCallAutomationClient(`endpoint=${api.url}/;accesskey=${accessKey}`, retry ? { retry } : {});
const create = async (callbackUri = `${receiver.url}/cb`) => {
  const created = await client().createCall({ targets: [{ phoneNumber: { value: '+14251001000' } }], callbackUri, requestedModalities: ['audio'], requestedCallEvents: ['dtmfReceived'] });
  expect(created.response.status).toBe(200);
  return created.data!.callLegId;
};
/** The events the receiver got for a call: webhook-id and what it says, in arrival order. */
const arrivals = (callLegId: string) =>
  receiver.received
    .filter((d) => d.body.includes(callLegId))
    .map((d) => {
      const data = (JSON.parse(d.body) as { data: { callState?: string; toneInfo?: { tone: string } } }).data;
      return { id: d.headers['webhook-id'] as string, what: data.callState ?? data.toneInfo?.tone, at: d.at };
    });

beforeAll(async () => {
  service = createSimulatorService({ accessKeys: [accessKey], callbackSecret, allowLoopback: true, answerDelayMs: 20, log: () => {} });
  api = await serveApp(service.api);
  control = await serveApp(service.control);
  receiver = await startCallbackReceiver();
});

afterEach(async () => {
  expect((await fetch(`${control.url}/faults`, { method: 'DELETE' })).status).toBe(204);
});

afterAll(async () => {
  await api?.close();
  await control?.close();
  await service?.close(500);
  await receiver?.close();
});

describe('POST /faults', () => {
  it('takes the documented example, shows it on GET, and clears it on DELETE', async () => {
    const example = {
      seed: 7,
      operations: { playAudio: { status: 503, rate: 1, retryAfterSeconds: 2, latencyMs: 0 } },
      callbacks: { duplicateRate: 0.2, reorder: true, delayMs: 300, beforeAnswer: true },
    };
    const set = await setFaults(example);
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual(example);
    expect(await (await fetch(`${control.url}/faults`)).json()).toEqual(example);
    await fetch(`${control.url}/faults`, { method: 'DELETE' });
    expect(await (await fetch(`${control.url}/faults`)).json()).toEqual({});
  });

  it('refuses what it cannot take with 400 and the API’s error body, saying where', async () => {
    const answer = await setFaults({ operations: { dialCall: { status: 503 }, playAudio: { status: 500, rate: 2 } }, callbacks: { reorder: 'yes' } });
    expect(answer.status).toBe(400);
    const body = (await answer.json()) as { code: string; details: Array<{ target: string }> };
    expect(body.code).toBe('ValidationFailed');
    const targets = body.details.map((d) => d.target);
    expect(targets).toEqual(expect.arrayContaining(['/operations/playAudio/status', '/operations/playAudio/rate', '/callbacks/reorder']));
    expect(body.details).toContainEqual(expect.objectContaining({ code: 'UnknownProperty', target: '/operations/dialCall' }));
    const notJson = await fetch(`${control.url}/faults`, { method: 'POST', body: '{' });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ code: 'InvalidJson' });
  });
});

describe('API faults', () => {
  it('refuses an operation with 503 and Retry-After, in the same order for the same seed; our client retries through it', async () => {
    const callLegId = await create();
    const statuses = async () => {
      await setFaults({ seed: 7, operations: { playAudio: { status: 503, rate: 0.5, retryAfterSeconds: 0 } } });
      const seen: number[] = [];
      for (let i = 0; i < 8; i++) seen.push((await client({ maxRetries: 0 }).playAudio(callLegId, { audioFileUri: 'https://cdn.contoso.com/a.wav' })).response.status);
      return seen;
    };
    const first = await statuses();
    expect(first).toContain(503);
    expect(first).toContain(202);
    expect(await statuses()).toEqual(first);

    const refused = await client({ maxRetries: 0 }).playAudio(callLegId, { audioFileUri: 'https://cdn.contoso.com/a.wav' });
    await setFaults({ operations: { playAudio: { status: 429, retryAfterSeconds: 3 } } });
    const throttled = await client({ maxRetries: 0 }).playAudio(callLegId, { audioFileUri: 'https://cdn.contoso.com/a.wav' });
    expect(throttled.response.status).toBe(429);
    expect(throttled.response.headers.get('retry-after')).toBe('3');
    expect(throttled.error).toMatchObject({ code: 'TooManyRequests' });
    expect([202, 503]).toContain(refused.response.status);

    // At a rate of two in five, our client (three retries, honouring Retry-After: 0) gets every play through.
    await setFaults({ seed: 3, operations: { playAudio: { status: 503, rate: 0.4, retryAfterSeconds: 0 } } });
    const before = service.journal.list().filter((e) => e.kind === 'request' && e.status === 503).length;
    for (let i = 0; i < 6; i++) expect((await client().playAudio(callLegId, { audioFileUri: 'https://cdn.contoso.com/a.wav' })).response.status).toBe(202);
    expect(service.journal.list().filter((e) => e.kind === 'request' && e.status === 503).length).toBeGreaterThan(before);
  });

  it('answers an operation late by its latency', async () => {
    const callLegId = await create();
    await setFaults({ operations: { hangupCall: { latencyMs: 300 } } });
    const started = Date.now();
    expect((await client().hangupCall(callLegId)).response.status).toBe(202);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('refuses a repeatable createCall without keeping the refusal: its retry under the same id creates one call', async () => {
    await setFaults({ seed: 1, operations: { createCall: { status: 429, rate: 0.5, retryAfterSeconds: 0 } } });
    const calls = (await (await fetch(`${control.url}/calls`)).json()) as unknown[];
    for (let i = 0; i < 4; i++) await create();
    expect(((await (await fetch(`${control.url}/calls`)).json()) as unknown[]).length - calls.length).toBe(4);
    expect(service.journal.list().some((e) => e.kind === 'request' && e.operationId === 'createCall' && e.status === 429)).toBe(true);
  });
});

describe('callback faults', () => {
  it('sends each delivery twice with duplicateRate 1: the same webhook-id and body', async () => {
    await setFaults({ callbacks: { duplicateRate: 1 } });
    const callLegId = await create();
    await receiver.waitFor(() => arrivals(callLegId).filter((a) => a.what === 'established').length === 2, 3_000);
    const seen = arrivals(callLegId);
    const ids = seen.map((a) => a.id);
    expect(new Set(ids).size).toBe(2);
    // Each event twice, the first of each in the call's order (a copy goes in the background once
    // its first is answered, and may arrive after the call's next event).
    const whats = seen.map((a) => a.what);
    expect(whats.filter((what) => what === 'establishing')).toHaveLength(2);
    expect(whats.filter((what) => what === 'established')).toHaveLength(2);
    expect(whats.indexOf('establishing')).toBeLessThan(whats.indexOf('established'));
    const [first, second] = receiver.received.filter((d) => d.headers['webhook-id'] === ids[0]);
    expect(second!.body).toBe(first!.body);
    expect(second!.headers['webhook-signature']).toBe(first!.headers['webhook-signature']);
  });

  it('swaps each delivery with the next one to its URI with reorder', async () => {
    await setFaults({ callbacks: { reorder: true } });
    // A URI of its own: a delivery to another call's URI (an earlier test's copy sent late) is not the one it swaps with.
    const callLegId = await create(`${receiver.url}/reorder`);
    await receiver.waitFor(() => arrivals(callLegId).length === 2, 3_000);
    expect(arrivals(callLegId).map((a) => a.what)).toEqual(['established', 'establishing']);
  });

  it('delays each attempt by delayMs', async () => {
    await setFaults({ callbacks: { delayMs: 400 } });
    const started = Date.now();
    const callLegId = await create();
    await receiver.waitFor(() => arrivals(callLegId).length >= 1, 3_000);
    expect(arrivals(callLegId)[0]!.at - started).toBeGreaterThanOrEqual(400);
  });

  it('delivers a request’s events before its answer with beforeAnswer', async () => {
    await setFaults({ callbacks: { beforeAnswer: true } });
    const callLegId = await create();
    const answered = Date.now();
    // The establishing event of a createCall arrives before the callLegId reaches the caller.
    const [establishing] = arrivals(callLegId);
    expect(establishing).toMatchObject({ what: 'establishing' });
    expect(establishing!.at).toBeLessThanOrEqual(answered);
    expect((await fetch(`${control.url}/calls/${callLegId}/dtmf`, { method: 'POST', body: JSON.stringify({ tones: ['tone3'] }) })).status).toBe(202);
  });
});
