import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CallbackEmitter, CommunicationIdentifier, HandlerContext } from '@call-automation/server';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createSimulator, loadScenarios, scenarioSchema, testNumbers, type Behaviour } from '../src/index.ts';

/** What the simulator emits, as `Type:detail` per call, on a virtual clock. */
function recorder() {
  const emitted: Array<{ callLegId: string; at: number; label: string; data: Record<string, unknown> }> = [];
  const events: CallbackEmitter = {
    emit(callLegId, name, data) {
      const d = data as Record<string, unknown> & { callState?: string; status?: string; toneInfo?: { tone: string }; resultInfo?: { code: number } };
      const detail = d.callState ?? (d.status ? `${d.status}${d.resultInfo ? ` ${d.resultInfo.code}` : ''}` : undefined) ?? d.toneInfo?.tone ?? (Array.isArray(d.participants) ? String(d.participants.length) : '');
      emitted.push({ callLegId, at: Date.now(), label: `${name}:${detail}`, data: d });
    },
    register() {},
    unregister() {},
  };
  const context = { caller: { kind: 'hmac', keyIndex: 0 }, requestId: 'r', events } as HandlerContext;
  const labels = (callLegId: string) => emitted.filter((e) => e.callLegId === callLegId).map((e) => e.label);
  return { emitted, context, labels };
}

const phone = (value: string): CommunicationIdentifier => ({ phoneNumber: { value } });
const subscribed = ['participantsUpdated' as const, 'dtmfReceived' as const];

async function call(simulator: ReturnType<typeof createSimulator>, context: HandlerContext, targets: CommunicationIdentifier[]) {
  const created = await simulator.handlers.createCall(
    { body: { targets, callbackUri: 'https://app.contoso.com/cb', requestedModalities: ['audio'], requestedCallEvents: subscribed }, params: {}, headers: {} } as never,
    context,
  );
  return (created as { body: { callLegId: string } }).body.callLegId;
}

async function invite(simulator: ReturnType<typeof createSimulator>, context: HandlerContext, callId: string, participants: CommunicationIdentifier[]) {
  await simulator.handlers.inviteParticipants({ params: { callId }, body: { participants, operationContext: 'inv' }, headers: {} } as never, context);
}

describe('the test numbers', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const ended = ['CallLegStateChanged:terminating', 'CallLegStateChanged:terminated'];

  it.each([
    ['+15550100002', 'declines', 200],
    ['+15550100006', 'is busy', 200],
    ['+15550100003', 'never answers, and the call fails at the ring timeout', 5_000],
  ])('%s %s: the call is never established', async (number, _what, endsAt) => {
    const { context, labels, emitted } = recorder();
    const simulator = createSimulator({ ringTimeoutMs: 5_000 });
    const start = Date.now();
    const id = await call(simulator, context, [phone(number)]);
    await vi.advanceTimersByTimeAsync(endsAt - 1);
    expect(labels(id)).toEqual(['CallLegStateChanged:establishing']);
    await vi.advanceTimersByTimeAsync(1);
    expect(labels(id)).toEqual(['CallLegStateChanged:establishing', ...ended]);
    expect(emitted.at(-1)!.at - start).toBe(endsAt);
    // Ended: its operations answer 404.
    await expect(simulator.handlers.hangupCall({ params: { callId: id }, headers: {} } as never, context)).rejects.toMatchObject({ status: 404 });
    await simulator.stop();
  });

  it('+15550100004 answers, then presses 1, 2 and pound a second apart', async () => {
    const { context, labels, emitted } = recorder();
    const simulator = createSimulator();
    const start = Date.now();
    const id = await call(simulator, context, [phone('+15550100004')]);
    await vi.advanceTimersByTimeAsync(3_200);
    expect(labels(id)).toEqual(['CallLegStateChanged:establishing', 'CallLegStateChanged:established', 'ParticipantsUpdated:1', 'DtmfReceived:tone1', 'DtmfReceived:tone2', 'DtmfReceived:pound']);
    expect(emitted.filter((e) => e.label.startsWith('Dtmf')).map((e) => [e.at - start, (e.data.toneInfo as { sequenceId: number }).sequenceId])).toEqual([
      [1_200, 0],
      [2_200, 1],
      [3_200, 2],
    ]);
    await simulator.stop();
  });

  it('+15550100005 answers, then hangs up after 2 s, which ends a call with no one else in it', async () => {
    const { context, labels } = recorder();
    const simulator = createSimulator();
    const id = await call(simulator, context, [phone('+15550100005')]);
    await vi.advanceTimersByTimeAsync(2_199);
    expect(labels(id)).toEqual(['CallLegStateChanged:establishing', 'CallLegStateChanged:established', 'ParticipantsUpdated:1']);
    await vi.advanceTimersByTimeAsync(1);
    expect(labels(id)).toEqual(['CallLegStateChanged:establishing', 'CallLegStateChanged:established', 'ParticipantsUpdated:1', 'ParticipantsUpdated:0', ...ended]);
    await simulator.stop();
  });

  it('establishes a call when any target answers, and keeps it when the one who answered is not the last to hang up', async () => {
    const { context, labels } = recorder();
    const simulator = createSimulator();
    const id = await call(simulator, context, [phone('+15550100002'), phone('+15550100005'), phone('+14251001000')]);
    await vi.advanceTimersByTimeAsync(2_200);
    // The one who declines drops out; the two who answer join together; one hangs up later.
    expect(labels(id)).toEqual(['CallLegStateChanged:establishing', 'CallLegStateChanged:established', 'ParticipantsUpdated:2', 'ParticipantsUpdated:1']);
    await simulator.stop();
  });

  it('answers invitations as scripted: one result per outcome, with the SIP code of each failure', async () => {
    const { context, labels, emitted } = recorder();
    const simulator = createSimulator({ ringTimeoutMs: 1_000 });
    const id = await call(simulator, context, [phone('+14251001000')]);
    await vi.advanceTimersByTimeAsync(200);
    await invite(simulator, context, id, [phone('+15550100002'), phone('+15550100006'), phone('+15550100003'), phone('+14251001001'), phone('+14251001002')]);
    await vi.advanceTimersByTimeAsync(200);
    expect(labels(id).slice(3)).toEqual(['InviteParticipantResult:failed 603', 'InviteParticipantResult:failed 486', 'InviteParticipantResult:completed 200', 'ParticipantsUpdated:3']);
    const results = emitted.filter((e) => e.label.startsWith('InviteParticipantResult'));
    expect(results.map((e) => e.data.participants)).toEqual([[phone('+15550100002')], [phone('+15550100006')], [phone('+14251001001'), phone('+14251001002')]]);
    await vi.advanceTimersByTimeAsync(800);
    expect(labels(id).at(-1)).toBe('InviteParticipantResult:failed 408');
    expect(emitted.at(-1)!.data).toMatchObject({ operationContext: 'inv', participants: [phone('+15550100003')], resultInfo: { code: 408, message: 'The participant did not answer.' } });
    await simulator.stop();
  });

  it('lets scenarios add identifiers and change the test numbers', async () => {
    const { context, labels } = recorder();
    const simulator = createSimulator({
      scenarios: {
        '+15550100002': { outcome: 'answer', ringMs: 50 },
        '8:acs:bot': { ringMs: 10, tones: [{ afterMs: 5, tone: 'star' }] },
      },
    });
    const id = await call(simulator, context, [phone('+15550100002')]);
    await vi.advanceTimersByTimeAsync(50);
    expect(labels(id)).toEqual(['CallLegStateChanged:establishing', 'CallLegStateChanged:established', 'ParticipantsUpdated:1']);
    await invite(simulator, context, id, [{ communicationUser: { id: '8:acs:bot' } }]);
    await vi.advanceTimersByTimeAsync(15);
    expect(labels(id).slice(3)).toEqual(['InviteParticipantResult:completed 200', 'ParticipantsUpdated:2', 'DtmfReceived:star']);
    await simulator.stop();
  });
});

describe('scenario files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ca-scenarios-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads YAML and JSON, with raw ids of numbers read as the numbers', async () => {
    const yaml = join(dir, 'flows.yaml');
    await writeFile(yaml, ['$schema: ./scenarios.schema.json', 'identifiers:', '  "4:+15550100042":', '    description: answers late, presses 9', '    ringMs: 3000', '    tones: [{ afterMs: 500, tone: tone9 }]', ''].join('\n'));
    expect(await loadScenarios(yaml)).toEqual({ '+15550100042': { description: 'answers late, presses 9', ringMs: 3000, tones: [{ afterMs: 500, tone: 'tone9' }] } });
    const json = join(dir, 'flows.json');
    await writeFile(json, JSON.stringify({ identifiers: { '8:acs:abc': { outcome: 'busy' } } }));
    expect(await loadScenarios(json)).toEqual({ '8:acs:abc': { outcome: 'busy' } });
  });

  it('refuses a file that does not match the schema, saying where', async () => {
    const path = join(dir, 'bad.json');
    await writeFile(path, JSON.stringify({ identifiers: { '+15550100042': { outcome: 'hangup', tones: [{ afterMs: 1, tone: 'tone10' }] }, nonsense: {} } }));
    const error = (await loadScenarios(path).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain(`The scenario file ${path} does not match scenarios.schema.json:`);
    expect(error.message).toContain('/identifiers/+15550100042/outcome must be equal to one of the allowed values');
    expect(error.message).toContain('/identifiers/+15550100042/tones/0/tone must be equal to one of the allowed values');
    expect(error.message).toContain('must match pattern');
    await writeFile(path, '{ "identifiers": ');
    await expect(loadScenarios(path)).rejects.toThrow(`The scenario file ${path} is not valid JSON`);
    await expect(loadScenarios(join(dir, 'missing.yaml'))).rejects.toThrow('Cannot read the scenario file');
  });

  it('describes the test numbers in the schema’s own terms', async () => {
    const { Ajv2020 } = await import('ajv/dist/2020.js');
    const validate = new Ajv2020({ strict: true }).compile(scenarioSchema());
    expect(validate({ identifiers: testNumbers })).toBe(true);
    // The tones a scenario may press are the spec's.
    const schema = scenarioSchema() as { $defs: { Behaviour: { properties: { tones: { items: { properties: { tone: { enum: string[] } } } } } } } };
    expect(schema.$defs.Behaviour.properties.tones.items.properties.tone.enum).toContain('pound');
    const every: Behaviour[] = Object.values(testNumbers);
    expect(every.every((b) => b.description)).toBe(true);
  });
});
