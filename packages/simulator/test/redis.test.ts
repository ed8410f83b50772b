/**
 * The simulator on many instances: two (or three) simulators on one real redis-server serve the
 * same calls, fire each other's timers, and deliver each event once, in order per call, also
 * when one is killed with SIGKILL, when both are restarted in turn behind a load balancer under
 * load, and when Redis itself is killed and restarted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createCallAutomationClient, type CallAutomationClient } from '@call-automation/client';
import { serveApp, type RunningServer } from '@call-automation/server/node';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCallbackReceiver, type CallbackReceiver } from '../../../conformance/src/harness/receiver.ts';
import { startRedis, stopAll, type RedisProcess } from '../../server/test/redis-server.ts';
import type { CallbackEmitter, HandlerContext } from '@call-automation/server';
import { createRedisState, createSimulator, createSimulatorService, type SimulatorServiceOptions } from '../src/index.ts';

const accessKey = Buffer.from('redis-sim-test-access-key-000001').toString('base64');
const callbackSecret = `whsec_${Buffer.from('redis-sim-test-callback-secret01').toString('base64')}`;
const phone = (value: string) => ({ phoneNumber: { value } });

/** Short leases and polls, so that a dead instance's deliveries are taken over within the test. */
const settings = {
  accessKeys: [accessKey],
  callbackSecret,
  allowLoopback: true,
  answerDelayMs: 50,
  playDurationMs: 100,
  delivery: { pollIntervalMs: 100, retryDelaysMs: [100, 200] },
} satisfies Omit<SimulatorServiceOptions, 'redis'>;

interface Instance {
  client: CallAutomationClient;
  url: string;
  controlUrl: string;
  close(): Promise<void>;
}

let redis: RedisProcess;
let receiver: CallbackReceiver;
const open: Array<{ close(): Promise<void> }> = [];

async function connect(port = redis.port): Promise<Redis> {
  const connection = new Redis(port, '127.0.0.1', { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, retryStrategy: () => 50 });
  connection.on('error', () => {});
  await connection.connect();
  return connection;
}

/** A simulator on the test's Redis, in this process. */
async function instance(): Promise<Instance> {
  const connection = await connect();
  const service = createSimulatorService({ ...settings, redis: connection, log: () => {} });
  const api: RunningServer = await serveApp(service.api);
  const control: RunningServer = await serveApp(service.control);
  const self = {
    client: createCallAutomationClient(`endpoint=${api.url}/;accesskey=${accessKey}`, { retry: { maxRetries: 0 } }),
    url: api.url,
    controlUrl: control.url,
    async close() {
      await Promise.all([api.close(), control.close()]);
      await service.close(500);
      connection.disconnect();
    },
  };
  open.push(self);
  return self;
}

/** A simulator on the test's Redis in a process of its own, to be killed, or stopped (SIGTERM) as a restart stops it. */
async function apart(extra: Partial<SimulatorServiceOptions> = {}): Promise<Instance & { kill(): Promise<void>; stop(): Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./run-apart.ts', import.meta.url))], {
    env: {
      ...process.env,
      SIMULATOR_OPTIONS: JSON.stringify({ ...settings, ...extra, delivery: { ...settings.delivery, ...extra.delivery }, accessKey, host: '127.0.0.1', port: 0, controlPort: 0, redisUrl: `redis://127.0.0.1:${redis.port}`, files: { docs: '', specJson: '', specYaml: '' } }),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const { url, controlUrl } = JSON.parse(line) as { url: string; controlUrl: string };
  const end = async (signal: 'SIGKILL' | 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    process.kill(child.pid!, signal);
    await exited;
  };
  const kill = () => end('SIGKILL');
  const stop = () => end('SIGTERM');
  const self = { client: createCallAutomationClient(`endpoint=${url}/;accesskey=${accessKey}`, { retry: { maxRetries: 0 } }), url, controlUrl, kill, stop, close: kill };
  open.push(self);
  return self;
}

/**
 * A load balancer on loopback: each request goes to the next backend in turn, and to the one after
 * when a backend refuses the connection or drops it before answering (a proxy's "next upstream");
 * 502 when none answers. Backends are changed as a restart changes them.
 */
async function startBalancer(backends: string[]): Promise<{ url: string; backends: string[]; close(): Promise<void> }> {
  let turn = 0;
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const start = turn++;
    for (let i = 0; i < backends.length; i++) {
      const target = new URL(request.url!, backends[(start + i) % backends.length]);
      try {
        const answer = await new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
          const forwarded = httpRequest(target, { method: request.method, headers: request.headers, agent: false }, (res) => {
            const parts: Buffer[] = [];
            res.on('data', (part: Buffer) => parts.push(part));
            res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
            res.on('error', reject);
          });
          forwarded.on('error', reject);
          forwarded.end(body);
        });
        response.writeHead(answer.status, answer.headers).end(answer.body);
        return;
      } catch {
        // That backend is down or going: the next one.
      }
    }
    response.writeHead(502, { 'content-type': 'text/plain' }).end('No backend answered.');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, backends, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A call's events as received, as `Type:detail`, each id once; and how many arrived in all. */
function eventsOf(callLegId: string): { labels: string[]; received: number } {
  const seen = new Set<string>();
  const labels: string[] = [];
  let received = 0;
  for (const delivery of receiver.received) {
    const event = JSON.parse(delivery.body) as { id: string; type: string; data: Record<string, unknown> & { callLegId: string } };
    if (event.data.callLegId !== callLegId) continue;
    received++;
    if (seen.has(event.id)) continue;
    seen.add(event.id);
    const type = event.type.replace('Microsoft.Communication.', '');
    const detail = (event.data.callState ?? event.data.status ?? (event.data.toneInfo as { tone?: string } | undefined)?.tone ?? '') as string;
    labels.push(detail ? `${type}:${detail}` : type);
  }
  return { labels, received };
}

/**
 * Events emitted as `Type:callState` into `queued`, each `lateMs` after it was emitted (a push to
 * a shared queue); `settled` resolves once those emitted before it are in.
 */
function queueing(queued: string[], lateMs: number): CallbackEmitter & { settled(): Promise<void> } {
  const underWay = new Set<Promise<void>>();
  return {
    register() {},
    emit(_callLegId, name, data) {
      const pushed = new Promise<void>((resolve) => setTimeout(resolve, lateMs)).then(() => void queued.push(`${name}:${(data as { callState?: string }).callState ?? ''}`));
      underWay.add(pushed);
      void pushed.then(() => underWay.delete(pushed));
    },
    async settled() {
      await Promise.all([...underWay]);
    },
  };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Reads a Server-Sent Events stream until `done` holds for what came, or fails after `timeoutMs`. */
async function readStream(url: string, done: (text: string) => boolean, timeoutMs = 5_000): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const decoder = new TextDecoder();
  let text = '';
  const reader = response.body!.getReader();
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      text += decoder.decode(read.value, { stream: true });
      if (done(text)) {
        await reader.cancel().catch(() => {});
        return text;
      }
    }
  } catch (error) {
    throw new Error(`${(error as Error).message}; the stream had:\n${text}`);
  }
  throw new Error(`The stream ended without what was awaited:\n${text}`);
}

const create = async (on: Instance, events: Array<'participantsUpdated' | 'dtmfReceived'> = []) => {
  const created = await on.client.createCall({ targets: [phone('+14251001000')], callbackUri: `${receiver.url}/cb`, requestedModalities: ['audio'], requestedCallEvents: events });
  expect(created.response.status).toBe(200);
  return created.data!.callLegId;
};

beforeAll(async () => {
  redis = await startRedis();
  receiver = await startCallbackReceiver();
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((instance) => instance.close()));
});

afterAll(async () => {
  await receiver?.close();
  await stopAll();
});

describe('the simulator on Redis', () => {
  it('serves a call made on one instance from another, control surface included, and delivers each event once, in order', async () => {
    const [a, b] = [await instance(), await instance()];
    const id = await create(a, ['participantsUpdated', 'dtmfReceived']);
    await until('the target answers', () => eventsOf(id).labels.includes('CallLegStateChanged:established'));

    expect((await b.client.playAudio(id, { audioFileUri: 'https://cdn.contoso.com/a.wav', operationContext: 'p1' })).response.status).toBe(202);
    await until('the play ends', () => eventsOf(id).labels.includes('PlayAudioResult:completed'));
    const listed = (await (await fetch(`${b.controlUrl}/calls`)).json()) as Array<{ callLegId: string; state: string; participants: unknown[] }>;
    expect(listed).toEqual([expect.objectContaining({ callLegId: id, state: 'established', participants: [expect.objectContaining({ identifier: phone('+14251001000') })] })]);
    expect((await fetch(`${b.controlUrl}/calls/${id}/dtmf`, { method: 'POST', body: JSON.stringify({ tones: ['tone1', 'pound'] }) })).status).toBe(202);
    // Invitations declined through A's control surface are declined on B.
    expect((await fetch(`${a.controlUrl}/invitations/decline`, { method: 'POST', body: JSON.stringify({ rawId: '4:+14251009999' }) })).status).toBe(202);
    expect((await b.client.inviteParticipants(id, { participants: [phone('+14251009999')], operationContext: 'invite' })).response.status).toBe(202);
    await until('the invitation is declined', () => eventsOf(id).labels.includes('InviteParticipantResult:failed'));
    expect((await a.client.hangupCall(id)).response.status).toBe(202);
    await until('the call ends', () => eventsOf(id).labels.includes('CallLegStateChanged:terminated'));
    expect((await b.client.hangupCall(id)).response.status).toBe(404);

    // Either inspector shows what both instances did: A's createCall is in B's journal stream.
    const streamed = await readStream(`${b.controlUrl}/stream`, (text) => text.includes(`"callLegId":"${id}","operationId":"createCall"`) && text.includes('"operationId":"playAudio"'));
    expect(streamed).toContain('"status":200');

    const { labels, received } = eventsOf(id);
    expect(labels).toEqual([
      'CallLegStateChanged:establishing',
      'CallLegStateChanged:established',
      'ParticipantsUpdated',
      'PlayAudioResult:completed',
      'DtmfReceived:tone1',
      'DtmfReceived:pound',
      'InviteParticipantResult:failed',
      'CallLegStateChanged:terminating',
      'CallLegStateChanged:terminated',
    ]);
    expect(received).toBe(labels.length);
  });

  it('keeps each of many calls in order when its operations go to alternate instances', async () => {
    const instances = [await instance(), await instance()];
    const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => create(instances[i % 2]!)));
    await until('every call is answered', () => ids.every((id) => eventsOf(id).labels.includes('CallLegStateChanged:established'))).catch((error: Error) => {
      throw new Error(`${error.message}; the calls that were not: ${JSON.stringify(ids.filter((id) => !eventsOf(id).labels.includes('CallLegStateChanged:established')).map((id) => [id, eventsOf(id)]))}`);
    });
    await Promise.all(ids.map(async (id, i) => expect((await instances[(i + 1) % 2]!.client.hangupCall(id)).response.status).toBe(202)));
    await until('every call ends', () => ids.every((id) => eventsOf(id).labels.at(-1) === 'CallLegStateChanged:terminated'));
    for (const id of ids) {
      expect(eventsOf(id)).toEqual({
        labels: ['CallLegStateChanged:establishing', 'CallLegStateChanged:established', 'CallLegStateChanged:terminating', 'CallLegStateChanged:terminated'],
        received: 4,
      });
    }
  });

  it("keeps a call's events in order when another instance changes the call while the first's events are still on their way", async () => {
    // What each instance's events reach, in the order they reach it: a shared queue, in which
    // instance A's pushes arrive 300 ms late (a process stalled, or a slow link to Redis).
    const queued: string[] = [];
    const emitter = (lateMs: number) => queueing(queued, lateMs);
    const prefix = `ca:sim:order-${crypto.randomUUID()}:`;
    const [first, second] = [await connect(), await connect()];
    const a = createSimulator({ state: createRedisState(first, { prefix, pollIntervalMs: 20 }), answerDelayMs: 50, events: emitter(300), log: () => {} });
    const b = createSimulator({ state: createRedisState(second, { prefix, pollIntervalMs: 20 }), answerDelayMs: 50, events: emitter(0), log: () => {} });
    try {
      // A fires no timers: the target's answer, 50 ms on, is B's to fire, while A's first event is still on its way.
      await a.stop();
      const context = { caller: { kind: 'hmac' }, requestId: crypto.randomUUID(), events: emitter(300) } as unknown as HandlerContext;
      const created = await a.handlers.createCall({ params: {}, headers: {}, body: { targets: [phone('+14251001000')], callbackUri: 'https://app.contoso.com/cb', requestedModalities: ['audio'] } } as never, context);
      expect(created.status).toBe(200);
      await until('the target answers', () => queued.length === 2);
      expect(queued).toEqual(['CallLegStateChanged:establishing', 'CallLegStateChanged:established']);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      first.disconnect();
      second.disconnect();
    }
  });

  it('changes a call held by a write whose instance died, once the hold lapses', async () => {
    const connection = await connect();
    const state = createRedisState(connection, { prefix: `ca:sim:hold-${crypto.randomUUID()}:` });
    const queued: string[] = [];
    const events = queueing(queued, 0);
    // The target answers only after the test: no timer changes the call meanwhile.
    const simulator = createSimulator({ state, answerDelayMs: 60_000, events, log: () => {} });
    const context = { caller: { kind: 'hmac' }, requestId: crypto.randomUUID(), events } as unknown as HandlerContext;
    try {
      const created = await simulator.handlers.createCall({ params: {}, headers: {}, body: { targets: [phone('+14251001000')], callbackUri: 'https://app.contoso.com/cb', requestedModalities: ['audio'] } } as never, context);
      const { callLegId } = (created as { body: { callLegId: string } }).body;
      expect((await state.get(callLegId))?.heldMs).toBeUndefined();
      // A write of another instance, which died before its events were queued: the hold is never released.
      const found = (await state.get(callLegId))!;
      expect(await state.put(found.call, found.version, { token: 'never-released', ms: 400 })).toBe(true);
      expect((await state.get(callLegId))?.heldMs).toBeGreaterThan(0);
      const started = Date.now();
      const hungUp = await simulator.handlers.hangupCall({ params: { callId: callLegId }, headers: {}, body: undefined } as never, context);
      expect(hungUp.status).toBe(202);
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      await events.settled();
      expect(queued).toEqual(['CallLegStateChanged:establishing', 'CallLegStateChanged:terminating', 'CallLegStateChanged:terminated']);
    } finally {
      await simulator.stop();
      connection.disconnect();
    }
  });

  it('answers a change whose events are slow to be queued after 2 s, as the service does, and leaves its call held for them', async () => {
    const connection = await connect();
    const state = createRedisState(connection, { prefix: `ca:sim:slow-${crypto.randomUUID()}:` });
    // Pushes that take 10 s (Redis struggling): longer than an answer waits (2 s), and than a hold lasts (5 s).
    const events = queueing([], 10_000);
    const simulator = createSimulator({ state, answerDelayMs: 60_000, events, log: () => {} });
    const context = { caller: { kind: 'hmac' }, requestId: crypto.randomUUID(), events } as unknown as HandlerContext;
    try {
      const started = Date.now();
      const created = await simulator.handlers.createCall({ params: {}, headers: {}, body: { targets: [phone('+14251001000')], callbackUri: 'https://app.contoso.com/cb', requestedModalities: ['audio'] } } as never, context);
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(1_900);
      expect(took).toBeLessThan(4_500);
      const { callLegId } = (created as { body: { callLegId: string } }).body;
      expect((await state.get(callLegId))?.heldMs).toBeGreaterThan(0);
    } finally {
      await simulator.stop();
      connection.disconnect();
    }
  });

  it('hands back at once, when it stops, the timers it had taken and not fired, for another instance to fire', async () => {
    const [first, second] = [await connect(), await connect()];
    const prefix = `ca:sim:handback-${crypto.randomUUID()}:`;
    const a = createRedisState(first, { prefix, pollIntervalMs: 20 });
    const b = createRedisState(second, { prefix, pollIntervalMs: 20 });
    const callLegId = crypto.randomUUID();
    const timer = (id: string) => ({ id, callLegId, at: Date.now(), kind: 'leave', participantId: 'p' }) as const;
    try {
      // Two timers of one call, due now: A takes both, and fires them one after the other.
      let firing: () => void = () => {};
      const firstFiring = new Promise<void>((resolve) => (firing = resolve));
      const firedOnA: string[] = [];
      await a.schedule(timer('t1'));
      await a.schedule(timer('t2'));
      a.start(async (fired) => {
        firedOnA.push(fired.id);
        firing();
        await new Promise((resolve) => setTimeout(resolve, 300));
      });
      await firstFiring;
      // Stopped while the first runs: the second, taken with it, is not fired here.
      await a.stop();
      expect(firedOnA).toEqual(['t1']);
      const firedOnB: Array<{ id: string; at: number }> = [];
      const started = Date.now();
      b.start(async (fired) => void firedOnB.push({ id: fired.id, at: Date.now() - started }));
      await until('B fires the second timer', () => firedOnB.length > 0, 4_000);
      // At B's first polls, not once A's claim on it (5 s) has lapsed.
      expect(firedOnB).toEqual([{ id: 't2', at: expect.any(Number) }]);
      expect(firedOnB[0]!.at).toBeLessThan(2_000);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      first.disconnect();
      second.disconnect();
    }
  });

  it('fires the timers of an instance killed with SIGKILL on another, and delivers every event it had queued', async () => {
    let unanswered = 0;
    const slow = await startCallbackReceiver({
      answer: (_delivery, _n, res) => {
        unanswered++;
        setTimeout(() => {
          res.writeHead(204).end();
          unanswered--;
        }, 300);
      },
    });
    try {
      // One delivery at a time, so that events wait in its queue; targets answer after it is gone (its
      // timers not yet taken: one it had taken would wait out its claim, 5 s, before another took it).
      const doomed = await apart({ answerDelayMs: 3_000, delivery: { concurrencyPerUri: 1, attemptTimeoutMs: 400, leaseMs: 1_000 } });
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const created = await doomed.client.createCall({ targets: [phone('+14251001000')], callbackUri: `${slow.url}/cb`, requestedModalities: ['audio'], requestedCallEvents: [] });
        ids.push(created.data!.callLegId);
      }
      // Killed before its targets answer (its timers pending) and with events still queued.
      await doomed.kill();
      expect(slow.received.length).toBeLessThan(ids.length);
      // Started once the other is dead: all it does, it takes over.
      const survivor = await instance();
      const states = (id: string) =>
        slow.received
          .map((d) => JSON.parse(d.body) as { id: string; data: { callLegId: string; callState?: string } })
          .filter((e) => e.data.callLegId === id)
          .filter((e, i, all) => all.findIndex((o) => o.id === e.id) === i)
          .map((e) => e.data.callState);
      await until('every call is answered on the survivor', () => ids.every((id) => states(id).includes('established')), 15_000);
      for (const id of ids) expect(states(id)).toEqual(['establishing', 'established']);
      // The survivor serves the calls the dead instance made.
      for (const id of ids) expect((await survivor.client.hangupCall(id)).response.status).toBe(202);
      await until('every call ends', () => ids.every((id) => states(id).at(-1) === 'terminated'));
      // Closed once it has answered what it read: an attempt cut off would be retried against it, closed, by the next tests' instances.
      await until('the receiver has answered every delivery', () => unanswered === 0);
    } finally {
      await slow.close();
    }
  });

  it('loses nothing when both instances behind a load balancer are restarted in turn under load: one call per create, every event once in order', async () => {
    const instances = [await apart(), await apart()];
    const balancer = await startBalancer(instances.map((instance) => instance.url));
    // Closed after the test with the instances, whether it passes or not.
    open.push(balancer);
    // A number of this test's own, to tell its calls from the other tests' in the shared Redis.
    const target = phone('+14251002000');
    // The application's client, with its default retries, sees only the balancer.
    const client = createCallAutomationClient(`endpoint=${balancer.url}/;accesskey=${accessKey}`);
    const ids: string[] = [];
    const failures: string[] = [];
    let loading = true;
    const load = Array.from({ length: 4 }, async () => {
      while (loading) {
        try {
          const created = await client.createCall({ targets: [target], callbackUri: `${receiver.url}/cb`, requestedModalities: ['audio'], requestedCallEvents: [] });
          if (created.response.status === 200) ids.push(created.data!.callLegId);
          else failures.push(`createCall ${created.response.status} ${JSON.stringify(created.error)}`);
        } catch (error) {
          failures.push(`createCall threw ${(error as Error).message}`);
        }
      }
    });
    try {
      await until('calls are being made', () => ids.length >= 10);
      // Restarted in turn, as a deployment does: stopped (SIGTERM), then a new process in its place.
      for (let i = 0; i < instances.length; i++) {
        await instances[i]!.stop();
        instances[i] = await apart();
        balancer.backends[i] = instances[i]!.url;
        await until('calls are made through the new instance', () => ids.length >= 10 * (i + 2));
      }
    } finally {
      loading = false;
      await Promise.all(load);
    }
    expect(failures).toEqual([]);
    // One call per create: a retried create answered by the other instance made no second call.
    expect(new Set(ids).size).toBe(ids.length);
    // Once every call is answered (its participant joined), no call of this test's number is missing or extra.
    // A timer a stopped instance had taken and not fired is handed back as it stops; one it was firing is done.
    await until('every call is answered', () => ids.every((id) => eventsOf(id).labels.includes('CallLegStateChanged:established')), 30_000).catch(async (error: Error) => {
      const late = ids.filter((id) => !eventsOf(id).labels.includes('CallLegStateChanged:established'));
      const calls = (await (await fetch(`${instances[0]!.controlUrl}/calls`)).json()) as Array<{ callLegId: string }>;
      const letters = await (await fetch(`${instances[0]!.controlUrl}/dead-letters`)).json();
      throw new Error(`${error.message}; not answered: ${JSON.stringify(late.map((id) => [id, eventsOf(id), calls.find((call) => call.callLegId === id)]))}; dead letters: ${JSON.stringify(letters)}`);
    });
    const listed = (await (await fetch(`${instances[0]!.controlUrl}/calls`)).json()) as Array<{ callLegId: string; participants: Array<{ identifier: unknown }> }>;
    const ours = listed.filter((call) => call.participants.some((participant) => JSON.stringify(participant.identifier) === JSON.stringify(target)));
    expect(ours.map((call) => call.callLegId).sort()).toEqual([...ids].sort());
    // Hung up eight at a time: a slow restart leaves hundreds of calls to end.
    for (let i = 0; i < ids.length; i += 8) {
      const statuses = await Promise.all(ids.slice(i, i + 8).map(async (id) => (await client.hangupCall(id)).response.status));
      expect(statuses).toEqual(statuses.map(() => 202));
    }
    await until('every call ends', () => ids.every((id) => eventsOf(id).labels.at(-1) === 'CallLegStateChanged:terminated'), 20_000);
    for (const id of ids) {
      expect(eventsOf(id).labels).toEqual(['CallLegStateChanged:establishing', 'CallLegStateChanged:established', 'CallLegStateChanged:terminating', 'CallLegStateChanged:terminated']);
    }
  }, 60_000);

  it('answers 503 with Retry-After while Redis is away, on the API and the control surface, and carries on when it is back', async () => {
    const a = await instance();
    const id = await create(a);
    await until('the target answers', () => eventsOf(id).labels.includes('CallLegStateChanged:established'));
    await redis.kill();
    try {
      const created = await a.client.createCall({ targets: [phone('+14251001000')], callbackUri: `${receiver.url}/cb`, requestedModalities: ['audio'], requestedCallEvents: [] });
      expect(created.response.status).toBe(503);
      expect(created.response.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(created.error).toMatchObject({ code: 'ServiceUnavailable' });
      const played = await a.client.playAudio(id, { audioFileUri: 'https://cdn.contoso.com/a.wav' });
      expect(played.response.status).toBe(503);
      const listed = await fetch(`${a.controlUrl}/calls`);
      expect(listed.status).toBe(503);
      expect(listed.headers.get('retry-after')).toMatch(/^\d+$/);
    } finally {
      await redis.restart();
    }
    // The call made before the outage survived it (append-only file), and is served again.
    await until('the instance reconnects', async () => (await a.client.playAudio(id, { audioFileUri: 'https://cdn.contoso.com/a.wav', operationContext: 'after' })).response.status === 202);
    await until('the play ends', () => eventsOf(id).labels.includes('PlayAudioResult:completed'));
    expect((await a.client.hangupCall(id)).response.status).toBe(202);
    await until('the call ends', () => eventsOf(id).labels.at(-1) === 'CallLegStateChanged:terminated');
  });
});
