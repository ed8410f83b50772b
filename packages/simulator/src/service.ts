import {
  createCallAutomationService,
  createCallbackDelivery,
  createPinnedFetch,
  createUriGuard,
  type OperationId,
  type CallbackDeliveryOptions,
  type CallAutomationHandlers,
  type CallbackEmitter,
  type CallAutomationServiceOptions,
  type HandlerContext,
  type PendingDelivery,
  type Resolver,
} from '@call-automation/server';
import {
  createRedisCallbackQueue,
  createRedisCallbackRegistry,
  createRedisDeadLetterStore,
  createRedisGoneUriStore,
  createRedisIdempotencyStore,
} from '@call-automation/server/redis';
import type { Cluster, Redis } from 'ioredis';
import { createControlApp } from './control.ts';
import { createFaults } from './faults.ts';
import { createJournal, type Journal } from './journal.ts';
import { createRedisJournal } from './redis-journal.ts';
import { createRedisState } from './redis-state.ts';
import { createSimulator, type SimulatorOptions } from './simulator.ts';

export interface SimulatorServiceOptions extends Omit<SimulatorOptions, 'state' | 'events'> {
  /** The access keys (base64) requests are signed with. */
  accessKeys: string[];
  /** The `whsec_…` secret callbacks are signed with. */
  callbackSecret: string;
  /** Let callbackUri and audioFileUri point at loopback (for a receiver on this machine). */
  allowLoopback?: boolean;
  /** How callbackUri host names are resolved when delivering (requests' URIs are checked by form alone); the system's resolver by default. */
  resolve?: Resolver;
  /** The host clients sign, when a proxy in front rewrites Host. */
  signedHost?: string;
  /** Callback delivery settings (schedule, timeouts) beyond the secret and the guard. */
  delivery?: Omit<CallbackDeliveryOptions, 'secret' | 'guard'>;
  /**
   * Where the simulator says what did not go as planned: each failed callback attempt (the URI,
   * the status or error, and when the next is), each event kept as a dead letter (its reason and
   * its last attempt's status or error), a full backlog, the shutdown's account. Default console.log.
   */
  log?: (line: string) => void;
  /**
   * Runs on Redis: calls, participants, plays and their timers, repeatable requests' answers,
   * callback deliveries and dead letters are shared by every instance given the same Redis, so
   * that any instance serves any call, a timer of an instance that died fires on another, and
   * queued callbacks outlive a restart. Without it everything is in this process.
   */
  redis?: Redis | Cluster;
  /**
   * Lets browser pages on other origins call the API (see the server's `cors` option): `{ origins:
   * '*' }` for any, as `pnpm start` does. Without it only pages served from the API's own origin can.
   */
  cors?: CallAutomationServiceOptions['cors'];
}

/** The event name a delivery carries (CallLegStateChanged), read from its CloudEvent. */
function typeOf(delivery: PendingDelivery): string {
  return readEvent(delivery).type;
}

/** A delivery's event name, and what it says in a word (the call's state, the tone, the result). */
function readEvent(delivery: PendingDelivery): { type: string; detail?: string } {
  try {
    const event = JSON.parse(delivery.body) as { type?: string; data?: { callState?: string; status?: string; toneInfo?: { tone?: string } } };
    return { type: event.type?.replace(/^Microsoft\.Communication\./, '') ?? 'event', detail: event.data?.callState ?? event.data?.status ?? event.data?.toneInfo?.tone };
  } catch {
    return { type: 'event' };
  }
}

/** One line on a failed delivery attempt to be made again: what, where, what came back, and when the next is. */
function describeAttempt(delivery: PendingDelivery, outcome: { status?: number; error?: string }, now: number): string {
  const type = typeOf(delivery);
  const answer = outcome.status !== undefined ? `HTTP ${outcome.status}` : (outcome.error ?? 'no answer');
  const next = `next attempt in ${Math.max(0, Math.round((delivery.notBefore - now) / 100) / 10)} s`;
  return `callback ${type} ${delivery.id} of call ${delivery.callLegId} to ${delivery.callbackUri}: attempt ${delivery.attempts}, ${answer}; ${next}`;
}

/**
 * The simulator as a service: the API (the server stub with the simulator's handlers, callback
 * delivery and the URI guard), and a control app, for a separate loopback port, that makes
 * participants act.
 */
export function createSimulatorService(options: SimulatorServiceOptions) {
  const guard = createUriGuard({ allowLoopback: options.allowLoopback, resolve: options.resolve });
  const log = options.log ?? ((line: string) => console.log(line));
  const redis = options.redis;
  // On Redis the journal is every instance's: each inspector shows what all of them did.
  const journal: Journal & { stop?(): Promise<void> } = redis ? createRedisJournal(redis, { log }) : createJournal();
  /** The call each createCall made, by its request id, until its answer is journaled. */
  const created = new Map<string, string>();
  const faults = createFaults();
  // Deliveries go through the pinned fetch (connecting only to addresses the guard vetted), with
  // the callback faults in force applied to each attempt.
  const pinned = options.delivery?.fetch ? undefined : createPinnedFetch(guard, 'callbackUri');
  /** Each attempt's time and signature, by webhook-id, until its outcome is journaled. */
  const measured = new Map<string, { ms: number; signature?: string }>();
  const timed = (send: (input: string, init?: RequestInit) => Promise<Response>) => async (input: string, init?: RequestInit) => {
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const started = performance.now();
    try {
      return await send(input, init);
    } finally {
      if (headers['webhook-id']) measured.set(headers['webhook-id'], { ms: performance.now() - started, signature: headers['webhook-signature'] });
    }
  };
  const delivery = createCallbackDelivery({
    log,
    ...(redis && {
      queue: createRedisCallbackQueue(redis),
      registry: createRedisCallbackRegistry(redis),
      deadLetters: createRedisDeadLetterStore(redis),
      gone: createRedisGoneUriStore(redis),
    }),
    ...options.delivery,
    ...(!options.delivery?.fetch && { fetch: faults.wrapFetch(timed(pinned!)) }),
    secret: options.callbackSecret,
    guard,
    onAttempt(pending, outcome) {
      options.delivery?.onAttempt?.(pending, outcome);
      const attempt = measured.get(pending.id);
      measured.delete(pending.id);
      journal.add({
        ms: attempt?.ms,
        signature: attempt?.signature,
        kind: 'attempt',
        callLegId: pending.callLegId,
        eventId: pending.id,
        ...readEvent(pending),
        uri: pending.callbackUri,
        attempt: pending.attempts,
        status: outcome.status,
        error: outcome.error,
        next: outcome.next,
        nextAt: outcome.next === 'retry' ? pending.notBefore : undefined,
      });
      // A dead letter the delivery logs itself.
      if (outcome.next === 'retry') log(describeAttempt(pending, outcome, Date.now()));
    },
  });
  // What the simulator emits is journaled on its way to the delivery (looked up at each emit, so
  // that a delivery whose emit is replaced in place is still the one used).
  const events: CallbackEmitter = {
    emit(callLegId, name, data) {
      journal.add({ kind: 'event', callLegId, type: name, data });
      delivery.emit(callLegId, name, data);
    },
    register: (callLegId, callbackUri) => delivery.register(callLegId, callbackUri),
    unregister: (callLegId) => delivery.unregister(callLegId),
    settled: () => delivery.settled?.(),
  };
  const simulator = createSimulator({ ...options, log, events, state: redis && createRedisState(redis, { log }) });
  // The simulator's handlers, looked up at each request (tests replace them in place), noting the
  // call each createCall made for the journal.
  const handlers = Object.fromEntries(
    Object.keys(simulator.handlers).map((operationId) => [
      operationId,
      async (input: { params?: { callId?: string } }, context: HandlerContext) => {
        await faults.beforeOperation(operationId as OperationId);
        const since = journal.seq;
        const reply = await (simulator.handlers[operationId as keyof CallAutomationHandlers] as (input: unknown, context: HandlerContext) => unknown)(input, context);
        const made = (reply as { body?: { callLegId?: unknown } } | undefined)?.body?.callLegId;
        if (operationId === 'createCall' && typeof made === 'string') created.set(context.requestId, made);
        const callLegId = typeof made === 'string' ? made : input.params?.callId;
        if (faults.beforeAnswer && callLegId) {
          // The request's events reach the receiver (or fail to) before its answer goes.
          const newer = (kind: string, settled?: boolean) =>
            journal.list(since).filter((e) => e.callLegId === callLegId && e.kind === kind && (!settled || (e.kind === 'attempt' && e.next !== 'retry'))).length;
          await journal.waitUntil(() => newer('attempt', true) >= newer('event'), 2_000);
        }
        return reply;
      },
    ]),
  ) as unknown as CallAutomationHandlers;
  const api = createCallAutomationService({
    handlers,
    onAnswer(info) {
      const callLegId = info.params.callId ?? created.get(info.requestId);
      created.delete(info.requestId);
      journal.add({ kind: 'request', callLegId, operationId: info.operationId, method: info.method, path: info.pathAndQuery, status: info.status, ms: info.ms, requestId: info.requestId });
    },
    ...(redis && { idempotency: createRedisIdempotencyStore(redis) }),
    auth: { accessKeys: options.accessKeys, host: options.signedHost },
    callbacks: delivery,
    cors: options.cors,
    // Judged by form and literal address only: the simulator never downloads audioFileUri, and
    // delivery resolves and pins callbackUri's host when it connects, so realistic names work offline.
    checkUri: async (uri, field) => void (await guard.check(uri, field, { resolve: false })),
  });

  const control = createControlApp({ simulator, delivery, journal, faults });

  return {
    api,
    control,
    simulator,
    delivery,
    journal,
    /** Stops the calls' timers and waits (at most `timeoutMs`) for queued callbacks to go out; says what became of the rest. */
    async close(timeoutMs = 5000) {
      await simulator.stop();
      await faults.flush();
      const report = await delivery.close(timeoutMs);
      await pinned?.close();
      await journal.stop?.();
      return report;
    },
  };
}
