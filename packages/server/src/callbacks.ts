import { eventTable } from '@call-automation/contract';
import { Webhook } from 'standardwebhooks';
import { createPinnedFetch } from '#pinned-fetch';
import { ApiError } from './errors.ts';
import type { CallbackEmitter, EventData, EventName } from './types.ts';
import type { UriGuard } from './ssrf.ts';

/** One event on its way to a callbackUri. */
export interface PendingDelivery {
  /** The event's id, also its webhook-id. */
  id: string;
  callbackUri: string;
  /** The CloudEvent, serialised once; every attempt sends these bytes. */
  body: string;
  /** When it was queued (ms since the epoch); the lifetime counts from here. */
  queuedAt: number;
  attempts: number;
  /** When the next attempt may start. */
  notBefore: number;
  lastError?: string;
}

/** An event that was not delivered, kept to be inspected. */
export interface DeadLetter extends PendingDelivery {
  reason: 'gone' | 'rejected' | 'expired' | 'refused' | 'closed';
  diedAt: number;
}

/**
 * The deliveries waiting, per callbackUri, in order. The in-memory default can be replaced by a
 * durable one (a table, a stream) that keeps the same order.
 */
export interface CallbackQueue {
  push(delivery: PendingDelivery): Promise<void>;
  /** The oldest delivery for a URI. */
  head(callbackUri: string): Promise<PendingDelivery | undefined>;
  /** Saves a delivery's attempt count and next time. */
  update(delivery: PendingDelivery): Promise<void>;
  /** Removes the oldest delivery for a URI. */
  shift(callbackUri: string): Promise<void>;
  /** The URIs that have deliveries waiting. */
  uris(): Promise<string[]>;
}

export interface DeadLetterStore {
  add(letter: DeadLetter): Promise<void>;
  list(): Promise<DeadLetter[]>;
}

export function createMemoryCallbackQueue(): CallbackQueue {
  const queues = new Map<string, PendingDelivery[]>();
  return {
    async push(delivery) {
      const queue = queues.get(delivery.callbackUri) ?? [];
      queue.push(delivery);
      queues.set(delivery.callbackUri, queue);
    },
    async head(uri) {
      return queues.get(uri)?.[0];
    },
    async update() {},
    async shift(uri) {
      const queue = queues.get(uri);
      queue?.shift();
      if (queue?.length === 0) queues.delete(uri);
    },
    async uris() {
      return [...queues.keys()];
    },
  };
}

export function createMemoryDeadLetterStore(maxEntries = 10_000): DeadLetterStore {
  const letters: DeadLetter[] = [];
  return {
    async add(letter) {
      letters.push(letter);
      if (letters.length > maxEntries) letters.shift();
    },
    async list() {
      return [...letters];
    },
  };
}

export interface CallbackDeliveryOptions {
  /** The `whsec_…` secret deliveries are signed with; several sign with each while one is rotated. */
  secret: string | readonly string[];
  /**
   * Waits between attempts, in ms; the last repeats until the lifetime ends. Default 5 s, 30 s,
   * 2 min, 10 min, 30 min, 1 h (after Event Grid's and Svix's schedules).
   */
  retryDelaysMs?: readonly number[];
  /** A random share added to or taken from each wait, 0 to 1. Default 0.2. */
  jitter?: number;
  /** One attempt's time limit. Default 10 s. */
  attemptTimeoutMs?: number;
  /** How long an event is tried before it is dead-lettered. Default 24 h. */
  lifetimeMs?: number;
  /**
   * Vets every attempt; a refused URI is dead-lettered. On Node each connection resolves the host
   * through the guard and connects only to addresses it allowed (`createPinnedFetch`), so a name
   * that changes its answer after the request was checked (DNS rebinding) reaches nothing it
   * refuses. A name that does not resolve is a network error, retried on the schedule.
   */
  guard?: UriGuard;
  queue?: CallbackQueue;
  deadLetters?: DeadLetterStore;
  /**
   * Sends the attempts instead of the default. With a guard, the default on Node is pinned (see
   * `guard`); a fetch given here cannot be, so the host is resolved and checked just before it.
   */
  fetch?: typeof fetch;
  now?: () => number;
  /** Hears what happens to each delivery, for logs and metrics. */
  onAttempt?: (delivery: PendingDelivery, outcome: { status?: number; error?: string; next: 'done' | 'retry' | DeadLetter['reason'] }) => void;
}

export interface CallbackDelivery extends CallbackEmitter {
  unregister(callLegId: string): void;
  /** Resolves when every queued event is delivered or dead-lettered. */
  drain(): Promise<void>;
  /** Stops sending new events (they become dead letters) and waits (at most `timeoutMs`) for the queue to drain. */
  close(timeoutMs?: number): Promise<void>;
  deadLetters(): Promise<DeadLetter[]>;
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/**
 * Delivers callback events: CloudEvents 1.0 in structured mode, signed with Standard Webhooks,
 * at least once, in order per callbackUri (an event waits for the one before it), one attempt at
 * a time per URI with a time limit, redirects not followed. Network errors, timeouts, 408, 429
 * (after its Retry-After) and 5xx are retried on the schedule with jitter until the lifetime
 * ends; any other 4xx or a 3xx is not retried; 410 stops every delivery to that URI. What is not
 * delivered goes to the dead-letter store.
 */
export function createCallbackDelivery(options: CallbackDeliveryOptions): CallbackDelivery {
  const secrets = typeof options.secret === 'string' ? [options.secret] : options.secret;
  const signers = secrets.map((secret) => new Webhook(secret));
  const delays = options.retryDelaysMs ?? [5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000];
  const jitter = options.jitter ?? 0.2;
  const attemptTimeout = options.attemptTimeoutMs ?? 10_000;
  const lifetime = options.lifetimeMs ?? 24 * 3_600_000;
  const queue = options.queue ?? createMemoryCallbackQueue();
  const dead = options.deadLetters ?? createMemoryDeadLetterStore();
  const pinned = !options.fetch && options.guard ? createPinnedFetch(options.guard, 'callbackUri') : undefined;
  const send = options.fetch ?? pinned ?? ((input: string, init: RequestInit) => globalThis.fetch(input, init));
  const now = options.now ?? Date.now;
  const callbackUris = new Map<string, string>();
  const gone = new Set<string>();
  const workers = new Map<string, Promise<void>>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  let idle: Array<() => void> = [];
  let closed = false;
  /** Set when close() stops waiting: no worker makes another attempt. */
  let stopped = false;
  let released: Promise<void> | undefined;

  function sleep(ms: number) {
    if (stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });
  }

  async function bury(delivery: PendingDelivery, reason: DeadLetter['reason']) {
    await dead.add({ ...delivery, reason, diedAt: now() });
  }

  /** One attempt: the status, or the error that stood for one. */
  async function attempt(delivery: PendingDelivery): Promise<{ status?: number; retryAfterMs?: number; error?: string; refused?: boolean }> {
    if (options.guard) {
      try {
        // The pinned fetch vets the host's addresses when it connects, so only the form is judged
        // here; before a fetch of one's own the host is resolved anew, as it may have changed.
        await options.guard.check(delivery.callbackUri, 'callbackUri', pinned ? { resolve: false } : { fresh: true });
      } catch (error) {
        return { refused: true, error: (error as Error).message };
      }
    }
    const timestamp = new Date(now());
    const signature = signers.map((signer) => signer.sign(delivery.id, timestamp, delivery.body)).join(' ');
    try {
      const response = await send(delivery.callbackUri, {
        method: 'POST',
        body: delivery.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(attemptTimeout),
        headers: {
          'content-type': 'application/cloudevents+json',
          'webhook-id': delivery.id,
          'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
          'webhook-signature': signature,
        },
      });
      await response.body?.cancel().catch(() => {});
      const retryAfter = response.headers.get('retry-after');
      const retryAfterMs = retryAfter === null ? undefined : /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) * 1000 : Math.max(0, Date.parse(retryAfter) - now()) || undefined;
      return { status: response.status, retryAfterMs };
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause;
      const refusal = [error, cause].find((e): e is ApiError => e instanceof ApiError && e.code === 'UriNotAllowed');
      if (refusal) return { refused: true, error: refusal.message };
      const detail = (cause as { code?: string } | undefined)?.code ?? (cause instanceof Error ? cause.message : undefined);
      return { error: `${(error as Error).name}: ${(error as Error).message}${detail ? ` (${detail})` : ''}` };
    }
  }

  async function work(uri: string) {
    for (;;) {
      if (stopped) return;
      const delivery = await queue.head(uri);
      if (!delivery) return;
      if (gone.has(uri)) {
        await queue.shift(uri);
        await bury(delivery, 'gone');
        options.onAttempt?.(delivery, { next: 'gone' });
        continue;
      }
      const wait = delivery.notBefore - now();
      if (wait > 0) await sleep(wait);
      if (stopped) return;
      delivery.attempts++;
      const outcome = await attempt(delivery);
      delivery.lastError = outcome.error ?? (outcome.status && outcome.status >= 300 ? `HTTP ${outcome.status}` : undefined);
      let next: 'done' | 'retry' | DeadLetter['reason'];
      if (outcome.refused) next = 'refused';
      else if (outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300) next = 'done';
      else if (outcome.status === 410) next = 'gone';
      else if (outcome.status !== undefined && !retryable(outcome.status)) next = 'rejected';
      else {
        const base = delays[Math.min(delivery.attempts - 1, delays.length - 1)]!;
        const delay = outcome.status === 429 && outcome.retryAfterMs !== undefined ? outcome.retryAfterMs : base * (1 + jitter * (2 * Math.random() - 1));
        delivery.notBefore = now() + delay;
        next = delivery.notBefore - delivery.queuedAt > lifetime ? 'expired' : 'retry';
      }
      options.onAttempt?.(delivery, { status: outcome.status, error: outcome.error, next });
      if (next === 'retry') {
        await queue.update(delivery);
        continue;
      }
      await queue.shift(uri);
      if (next === 'gone') gone.add(uri);
      if (next !== 'done') await bury(delivery, next);
    }
  }

  function wake(uri: string) {
    if (workers.has(uri)) return;
    const worker = work(uri).finally(() => {
      workers.delete(uri);
      // An event queued while the worker was finishing starts a new one.
      void queue.head(uri).then((head) => {
        if (head && !closed) wake(uri);
        else if (workers.size === 0) {
          for (const resolve of idle) resolve();
          idle = [];
        }
      });
    });
    workers.set(uri, worker);
  }

  return {
    register(callLegId, callbackUri) {
      callbackUris.set(callLegId, callbackUri);
    },
    unregister(callLegId) {
      callbackUris.delete(callLegId);
    },
    emit<Name extends EventName>(callLegId: string, name: Name, data: EventData<Name>) {
      const callbackUri = callbackUris.get(callLegId);
      if (!callbackUri) throw new Error(`No callbackUri is registered for call ${callLegId}.`);
      const id = `evt_${crypto.randomUUID().replace(/-/g, '')}`;
      const time = now();
      const event = {
        specversion: '1.0',
        id,
        source: `calls/${callLegId}`,
        type: eventTable[name].type,
        time: new Date(time).toISOString(),
        datacontenttype: 'application/json',
        data,
      };
      const delivery: PendingDelivery = { id, callbackUri, body: JSON.stringify(event), queuedAt: time, attempts: 0, notBefore: time };
      // After close nothing more is sent, but nothing is lost either: the event is kept as a dead letter.
      if (closed) void bury(delivery, 'closed');
      else void queue.push(delivery).then(() => wake(callbackUri));
    },
    async drain() {
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (workers.size === 0 && (await queue.uris()).length === 0) return;
      await new Promise<void>((resolve) => idle.push(resolve));
    },
    async close(timeoutMs = 10_000) {
      closed = true;
      let deadline: ReturnType<typeof setTimeout> | undefined;
      const drained = await Promise.race([this.drain().then(() => true), new Promise<false>((resolve) => (deadline = setTimeout(resolve, timeoutMs, false)))]);
      clearTimeout(deadline);
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      // An attempt still under way ends within its own time limit; its connection closes after it,
      // when no one is waiting any more (a pool that fails to close then has no one to tell).
      released ??= pinned?.close();
      if (drained) await released;
      else void released?.catch(() => {});
    },
    deadLetters: () => dead.list(),
  };
}
