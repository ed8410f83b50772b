import { eventTable } from '@call-automation/contract';
import { Webhook } from 'standardwebhooks';
import { createPinnedPost, postThrough } from '#pinned-fetch';
import { ApiError } from './errors.ts';
import { FifoMap } from './fifo-map.ts';
import type { CallbackEmitter, EventData, EventName } from './types.ts';
import type { UriGuard } from './ssrf.ts';

/** One event on its way to a callbackUri. */
export interface PendingDelivery {
  /** The event's id, also its webhook-id. */
  id: string;
  /** The call the event is about: a call's events are delivered in the order they were emitted. */
  callLegId: string;
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

/** An event that was not delivered, kept to be inspected and sent again. */
export interface DeadLetter extends PendingDelivery {
  /**
   * gone: the receiver answered 410; rejected: another 4xx; expired: its lifetime ended;
   * refused: the URI guard refused the address; closed: emitted after, or left queued at,
   * shutdown; overflow: the backlog was full; unregistered: emitted for a call the registry does
   * not know (its callbackUri is then empty).
   */
  reason: 'gone' | 'rejected' | 'expired' | 'refused' | 'closed' | 'overflow' | 'unregistered';
  diedAt: number;
}

/** A call's oldest delivery as a queue found it, answered beside a change (undefined: none waits). */
export interface CallHead {
  head: PendingDelivery | undefined;
  /** From `shift` with an owner: it found none left and gave up the owner's lease. */
  released?: boolean;
  /**
   * From `shift` given `next`: the next call's oldest delivery, its lease taken for the owner as
   * the call shifted gave its own up (its worker starts from it).
   */
  next?: PendingDelivery;
}

/**
 * The deliveries waiting, in order per call. The in-memory default can be replaced by a durable
 * one that keeps the same order. A queue shared by several instances has leases: an instance
 * delivers a call's events only while it holds the call's lease, so that the call's order holds
 * whichever instance delivers it, and another takes the call over once the lease of one that
 * died expires. A queue without them (the memory one) is its instance's alone.
 */
export interface CallbackQueue {
  /** Whether what is queued outlives the process (then shutdown leaves it queued). */
  readonly durable: boolean;
  /**
   * Queues a delivery behind its call's others; answers false, queuing nothing, when the backlog
   * is full. A queue with leases, given `lease`, may also take the call's lease for its owner
   * when the delivery is the call's only one and no instance holds the lease: it answers
   * `'leased'` then, and the owner delivers it without asking for the lease and the head again.
   */
  push(delivery: PendingDelivery, lease?: { owner: string; ms: number }): Promise<boolean | 'leased'>;
  /** The oldest delivery of a call. */
  head(callLegId: string): Promise<PendingDelivery | undefined>;
  /** Saves a delivery's attempt count and next time. */
  update(delivery: PendingDelivery): Promise<void>;
  /**
   * Removes the oldest delivery of a call; with `id`, only if it is that delivery (an instance
   * whose lease expired mid-attempt must not remove what another delivers now). May answer the
   * call's oldest delivery then, which the delivery takes instead of asking `head`; with `owner`
   * (a queue with leases), may give up that owner's lease when none is left, and say so. Given
   * `next` too (a call waiting for the slot this one frees), may then also take that call's lease
   * for the owner and answer its oldest delivery (`next` of the answer), a round trip fewer for it.
   */
  shift(callLegId: string, id?: string, owner?: string, next?: { callLegId: string; ms: number }): Promise<void | CallHead>;
  /** Whether `shift` takes up `next` (the delivery names a waiting call to it only then). */
  readonly takesNext?: boolean;
  /** The calls that have deliveries waiting. */
  calls(): Promise<string[]>;
  /** How many deliveries wait, in all. */
  size(): Promise<number>;
  /**
   * A shared queue's count of the deliveries waiting, kept as they are pushed and removed: one
   * read, whatever the number of calls, where `size()` reads every call. A command that failed
   * halfway can leave it above the truth, and events queued before the queue kept a count below
   * it until they are gone. For reports.
   */
  counted?(): Promise<number>;
  /** How many deliveries of one call wait. A shared queue has it, for an instance's account of what it leaves at shutdown. */
  length?(callLegId: string): Promise<number>;
  /**
   * A shared queue's answer to a poll, instead of every call of `calls()`: the calls that may
   * need an instance now (events pushed since, a retry due, a lease lapsed), a batch at a time.
   */
  due?(): Promise<string[]>;
  /** Tells a shared queue that a call needs no instance before `until` (its next event's retry time), so that polls skip it till then. */
  defer?(callLegId: string, until: number): Promise<void>;
  /**
   * Takes, or extends, the right to deliver a call's events for `ms`; false while another `owner`
   * holds it. May answer, instead of true, the call's oldest delivery read under the lease.
   */
  lease?(callLegId: string, owner: string, ms: number): Promise<boolean | CallHead>;
  /** Extends a lease `owner` holds; false when it has lost it. */
  renew?(callLegId: string, owner: string, ms: number): Promise<boolean>;
  /**
   * Gives up a lease `owner` holds; `handOver` when it stops with the call's events left, for
   * another instance to take up at once. May answer the call's oldest delivery then.
   */
  releaseLease?(callLegId: string, owner: string, handOver?: boolean): Promise<void | CallHead>;
}

/**
 * Where each call's callbackUri is kept between `register` and `unregister`. By default a Map in
 * the delivery; a shared one (Redis) lets an instance emit events for a call another created.
 */
export interface CallbackRegistry {
  set(callLegId: string, callbackUri: string): Promise<void>;
  get(callLegId: string): Promise<string | undefined>;
  delete(callLegId: string): Promise<void>;
}

export interface DeadLetterStore {
  add(letter: DeadLetter): Promise<void>;
  list(): Promise<DeadLetter[]>;
  /** Removes a letter and answers it (to send it again), or undefined when there is none with that id. */
  take(id: string): Promise<DeadLetter | undefined>;
}

/**
 * The callbackUris that answered 410 Gone: no event goes to them until a redrive of one of their
 * dead letters clears them. By default a Set in the delivery, its instance's alone; a shared one
 * (`createRedisGoneUriStore`) stops every instance at the first 410 any of them gets.
 */
export interface GoneUriStore {
  has(uri: string): Promise<boolean> | boolean;
  add(uri: string): Promise<void> | void;
  delete(uri: string): Promise<void> | void;
}

/** The URIs that answered 410, in this process's memory, until a redrive clears them. */
export function createMemoryGoneUriStore(): GoneUriStore {
  const uris = new Set<string>();
  return {
    has: (uri) => uris.has(uri),
    add: (uri) => void uris.add(uri),
    delete: (uri) => void uris.delete(uri),
  };
}

/** An in-memory queue of at most `maxEntries` deliveries (default 50 000). */
export function createMemoryCallbackQueue(options: { maxEntries?: number } = {}): CallbackQueue {
  const max = options.maxEntries ?? 50_000;
  const queues = new Map<string, PendingDelivery[]>();
  let size = 0;
  return {
    durable: false,
    async push(delivery) {
      if (size >= max) return false;
      const queue = queues.get(delivery.callLegId);
      if (queue) queue.push(delivery);
      else queues.set(delivery.callLegId, [delivery]);
      size++;
      return true;
    },
    async head(callLegId) {
      return queues.get(callLegId)?.[0];
    },
    async update() {},
    async shift(callLegId, id) {
      const queue = queues.get(callLegId);
      if (!queue?.length || (id !== undefined && queue[0]!.id !== id)) return { head: queue?.[0] };
      queue.shift();
      size--;
      if (queue.length === 0) queues.delete(callLegId);
      return { head: queue[0] };
    },
    async calls() {
      return [...queues.keys()];
    },
    async size() {
      return size;
    },
    async length(callLegId) {
      return queues.get(callLegId)?.length ?? 0;
    },
  };
}

/**
 * An in-memory dead-letter store of at most `maxEntries` letters (default 10 000). Past that the
 * oldest letter is given up, and `onEvict` hears which.
 */
export function createMemoryDeadLetterStore(maxEntries = 10_000, onEvict: (letter: DeadLetter) => void = () => {}): DeadLetterStore {
  const letters = new Map<string, DeadLetter>();
  return {
    async add(letter) {
      letters.delete(letter.id);
      letters.set(letter.id, letter);
      if (letters.size > maxEntries) {
        const [oldest] = letters.values();
        letters.delete(oldest!.id);
        onEvict(oldest!);
      }
    },
    async list() {
      return [...letters.values()];
    },
    async take(id) {
      const letter = letters.get(id);
      letters.delete(id);
      return letter;
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
   * through the guard and connects only to addresses it allowed (the lookup of `createPinnedFetch`,
   * the attempts posted with undici's Dispatcher.request on that Agent), so a name
   * that changes its answer after the request was checked (DNS rebinding) reaches nothing it
   * refuses. A name that does not resolve is a network error, retried on the schedule.
   */
  guard?: UriGuard;
  queue?: CallbackQueue;
  deadLetters?: DeadLetterStore;
  /**
   * Where the URIs that answered 410 are kept. Default in memory, this instance's alone; instances
   * sharing a queue share this too (`createRedisGoneUriStore`), so that one 410 stops them all.
   */
  gone?: GoneUriStore;
  /**
   * Where calls' callbackUris are kept. Default a Map in this delivery, with which `emit` for a
   * call never registered throws. With a registry `emit` cannot know at once: the event is made
   * when emitted, with the URI of a `register` (or `unregister`) of the call on this instance
   * still being recorded then, or else the URI the registry answers before the event is queued;
   * an event for a call the registry does not know is a dead letter (`unregistered`). A
   * registration is written alongside the events emitted after it, not before them. A registry
   * that fails is retried until it answers or the delivery closes (then the event is a dead
   * letter, `closed`).
   */
  registry?: CallbackRegistry;
  /**
   * Sends the attempts instead of the default. With a guard, the default on Node is pinned (see
   * `guard`); a fetch given here cannot be, so the host is resolved and checked just before it.
   */
  fetch?: typeof fetch;
  now?: () => number;
  /** Hears what happens to each delivery, for logs and metrics. */
  onAttempt?: (delivery: PendingDelivery, outcome: { status?: number; error?: string; next: 'done' | 'retry' | DeadLetter['reason'] }) => void;
  /**
   * How many calls' events go to one callbackUri at once. An application usually sends every
   * call's events to one endpoint: calls are delivered concurrently, each in its own order, and a
   * failing event holds back only its own call. Default 16.
   */
  concurrencyPerUri?: number;
  /**
   * With a queue that has leases (shared by instances): how long a call's lease lasts, renewed
   * every third of it while the call is delivered; an instance that dies holds its calls this
   * long. Default 30 s, and at least twice `attemptTimeoutMs`.
   */
  leaseMs?: number;
  /** With a queue that has leases: how often the queue is asked for calls waiting. Default 1 s. */
  pollIntervalMs?: number;
  /**
   * Where the delivery says what it could not do: each event kept as a dead letter (with its
   * reason and its last attempt's status or error), a full backlog, the shutdown's account.
   * Default console.warn.
   */
  log?: (message: string) => void;
}

/** What a shutdown did with the events it found. */
export interface ShutdownReport {
  /** Delivered during the grace period. */
  delivered: number;
  /**
   * Left in a durable queue, for the next process to deliver. In a queue shared by instances (with
   * leases), only the events of the calls this instance had in hand when it stopped (delivering,
   * waiting for a retry or for a slot): what another instance must take over from it. Another
   * instance awaiting the same call's retry counts them too.
   */
  stillQueued: number;
  /**
   * In a queue shared by instances: every event waiting in it when this instance stopped, whichever
   * instance will deliver it, as the queue counts them (`counted`, one read).
   */
  inSharedQueue?: number;
  /** Made dead letters (reason `closed`): a queue in memory does not outlive the process. */
  deadLettered: number;
}

export interface CallbackDelivery extends CallbackEmitter {
  unregister(callLegId: string): void;
  /** Resolves when every queued event is delivered or dead-lettered. */
  drain(): Promise<void>;
  /**
   * Stops sending new events (they become dead letters) and waits at most `timeoutMs` for the
   * queue to drain; what is left then stays queued (durable queue) or becomes a dead letter, and
   * the report (also logged) says how many of each. With a queue shared by instances it waits for
   * this instance's own calls only (those it is delivering, or holds for a slot; one waiting for
   * its retry time is left at once, due then for any instance), and takes up no other instance's
   * meanwhile.
   */
  close(timeoutMs?: number): Promise<ShutdownReport>;
  deadLetters(): Promise<DeadLetter[]>;
  /**
   * Sends a dead letter again from its first attempt, with a new lifetime; false when there is no
   * letter with that id, or (unregistered) its call still has no callbackUri.
   */
  redrive(id: string): Promise<boolean>;
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/**
 * Delivers callback events: CloudEvents 1.0 in structured mode, signed with Standard Webhooks,
 * at least once, in order per call (an event waits for the ones of its call before it), calls
 * concurrently (at most `concurrencyPerUri` to one URI), each attempt with a time limit,
 * redirects not followed. Network errors, timeouts, 408, 429 (after its Retry-After) and 5xx are
 * retried on the schedule with jitter until the lifetime ends, the call's later events waiting
 * behind; any other 4xx or a 3xx is not retried; 410 stops every delivery to that URI. What is not
 * delivered goes to the dead-letter store, from which it can be sent again (`redrive`).
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
  // Every attempt is one post: pinned to the guard's addresses (on Node through undici's
  // Dispatcher.request), or through the fetch given, or the runtime's.
  const pinned = !options.fetch && options.guard ? createPinnedPost(options.guard, 'callbackUri') : undefined;
  const post = pinned ?? postThrough(options.fetch ?? ((input: string, init: RequestInit) => globalThis.fetch(input, init)));
  const now = options.now ?? Date.now;
  const concurrency = options.concurrencyPerUri ?? 16;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrencyPerUri must be a whole number of at least 1, not ${concurrency}.`);
  const log = options.log ?? ((message: string) => console.warn(message));
  const leased = typeof queue.lease === 'function';
  const leaseMs = Math.max(options.leaseMs ?? 30_000, 2 * attemptTimeout);
  // Drawn when first needed: workerd allows no random values at a Worker's top level, where a
  // delivery may be made.
  let ownerId: string | undefined;
  const owner = () => (ownerId ??= crypto.randomUUID());
  /** How long a call waits after its delivery failed for want of a store (the queue, dead letters). */
  const failureRetryMs = 1_000;
  const callbackUris = new Map<string, string>();
  const registry = options.registry;
  /** Per call, the events not yet queued, in the order they were emitted. */
  const chains = new Map<string, Promise<void>>();
  /** Per call, the registry steps (register, unregister) not yet recorded, in the order they were asked for. */
  const registrations = new Map<string, Promise<void>>();
  /**
   * The calls registered (a URI) or unregistered (null) on this instance whose registry step is not
   * recorded yet. An event emitted meanwhile is queued with that URI without waiting for the
   * registry: the registration and the event go to the stores together, in one round trip rather
   * than one after the other (both are recorded before the API answers).
   */
  const recording = new Map<string, { uri: string | null }>();
  let emitting = 0;
  /**
   * The registry steps and events being recorded (the two maps above), numbered in the order they
   * were asked for: `settled()` waits for those asked for before it, without a promise per call
   * under way. The Set keeps the numbers not done yet in that order (the first is the lowest), so
   * it holds no more than the steps under way.
   */
  let stepsAsked = 0;
  const stepsUnderWay = new Set<number>();
  const settleWaiters: Array<{ upTo: number; resolve: () => void }> = [];
  let settleHead = 0;
  const gone = options.gone ?? createMemoryGoneUriStore();
  /** The calls being delivered now, and how many per URI. */
  const working = new Set<string>();
  /** The calls woken (an event queued) while their worker was under way. */
  const wokenWhileWorking = new Set<string>();
  const active = new Map<string, number>();
  /** Per URI, the calls waiting for one of its slots, in the order they asked. */
  const waiting = new Map<string, FifoMap<string, true>>();
  /**
   * A call whose lease this instance took ahead of its worker, with its head and when: as it
   * queued the call's only event (set just before the call is woken, removed at once when no
   * worker starts), or as a shift freed the slot the call waited for (its worker starts as that
   * worker ends; given back at shutdown if it did not). The worker that starts takes it, and
   * starts from it without asking the queue again while the lease is fresh; one that starts
   * later asks for the lease again, which this instance holds already.
   */
  const leasedAhead = new Map<string, { head: PendingDelivery; at: number }>();
  /** The waiting calls a worker's shift is taking up now (one worker each). */
  const beingHanded = new Set<string>();
  /** Per worker's call, the waiting call its last shift took up: the slot goes to it when the worker ends. */
  const handTo = new Map<string, string>();
  /** The calls whose next event waits for its retry time; they hold no slot meanwhile. */
  const scheduled = new Map<string, ReturnType<typeof setTimeout>>();
  /**
   * The attempts under way, each with a controller of its own (made in the attempt, as workerd
   * lets a request use only I/O objects it made): a shutdown's grace period ending aborts them.
   */
  const underWay = new Set<AbortController>();
  let shutdownReason: Error | undefined;
  let idle: Array<() => void> = [];
  /** With a shared queue, who waits (a shutdown) for this instance's own calls to be done with. */
  let ownIdle: Array<() => void> = [];
  const busy = () => working.size > 0 || scheduled.size > 0 || waiting.size > 0 || emitting > 0;
  /**
   * With a shared queue, what a shutdown waits for: attempts under way, calls waiting for a slot
   * here, events being recorded. A call waiting for its retry time holds no lease: it is in the
   * shared queue, due then for any instance, and a receiver that keeps failing does not hold up
   * every restart for the whole grace period.
   */
  const ownBusy = () => working.size > 0 || waiting.size > 0 || emitting > 0;
  let delivered = 0;
  let closed = false;
  /** Set when close() stops waiting: no worker makes another attempt. */
  let stopped = false;
  let released: Promise<void> | undefined;

  async function bury(delivery: PendingDelivery, reason: DeadLetter['reason']) {
    await dead.add({ ...delivery, reason, diedAt: now() });
  }

  /** One attempt: the status, or the error that stood for one. */
  async function attempt(delivery: PendingDelivery): Promise<{ status?: number; retryAfterMs?: number; error?: string; refused?: boolean }> {
    if (options.guard && !pinned) {
      try {
        // Before a fetch of one's own the host is resolved anew, as it may have changed. The
        // pinned post judges the form itself and vets the host's addresses when it connects.
        await options.guard.check(delivery.callbackUri, 'callbackUri', { fresh: true });
      } catch (error) {
        return { refused: true, error: (error as Error).message };
      }
    }
    const timestamp = new Date(now());
    const signature = signers.map((signer) => signer.sign(delivery.id, timestamp, delivery.body)).join(' ');
    // One controller for the time limit and the shutdown.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), attemptTimeout);
    if (shutdownReason) controller.abort(shutdownReason);
    underWay.add(controller);
    try {
      const { status, retryAfter } = await post(delivery.callbackUri, {
        body: delivery.body,
        signal: controller.signal,
        headers: {
          'content-type': 'application/cloudevents+json',
          'webhook-id': delivery.id,
          'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
          'webhook-signature': signature,
        },
      });
      const retryAfterMs = retryAfter === null ? undefined : /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) * 1000 : Math.max(0, Date.parse(retryAfter) - now()) || undefined;
      return { status, retryAfterMs };
    } catch (error) {
      const cause = (error as { cause?: unknown }).cause;
      const refusal = [error, cause].find((e): e is ApiError => e instanceof ApiError && e.code === 'UriNotAllowed');
      if (refusal) return { refused: true, error: refusal.message };
      const detail = (cause as { code?: string } | undefined)?.code ?? (cause instanceof Error ? cause.message : undefined);
      return { error: `${(error as Error).name}: ${(error as Error).message}${detail ? ` (${detail})` : ''}` };
    } finally {
      clearTimeout(timer);
      underWay.delete(controller);
    }
  }

  /**
   * Delivers a call's events while they are due; leaves when none is, or the next waits for its
   * retry time. With a shared queue, only under the call's lease: answers false when another
   * instance holds it.
   */
  async function work(callLegId: string, slot: string): Promise<false | CallHead | undefined> {
    if (!leased) return deliverDue(callLegId, slot, () => false);
    const ahead = leasedAhead.get(callLegId);
    leasedAhead.delete(callLegId);
    // Taken with a push or a shift a moment ago (well within the first renewal's time): it is
    // held, and the head then is the head now, as no other instance delivers the call meanwhile.
    const taken = ahead && Date.now() - ahead.at < leaseMs / 3 ? { head: ahead.head } : await queue.lease!(callLegId, owner(), leaseMs);
    if (!taken) return false;
    let lost = false;
    const renewal = setInterval(() => {
      queue.renew!(callLegId, owner(), leaseMs).then(
        (held) => {
          if (held || lost) return;
          lost = true;
          // Renewed too late (this process or Redis too slow): another instance may deliver the call now, and send again what this one was sending.
          log(`Callback lease of call ${callLegId} lost: another instance may deliver it now.`);
        },
        (error: unknown) => log(`Callback lease of call ${callLegId} not renewed: ${(error as Error).message}`),
      );
    }, leaseMs / 3);
    let done: CallHead | undefined;
    let after: void | CallHead = undefined;
    try {
      done = await deliverDue(callLegId, slot, () => lost, typeof taken === 'object' ? taken : undefined);
    } finally {
      clearInterval(renewal);
      // Given up already when the last event was removed.
      if (!lost && !done?.released) after = await queue.releaseLease!(callLegId, owner(), stopped).catch(() => undefined);
    }
    return done?.released ? done : (after ?? undefined);
  }

  /**
   * Delivers a call's events while they are due, from `known` (its head as the queue answered it
   * last) or else the queue's head. Answers the head the queue answered last, when it says none is
   * left (undefined: not known).
   */
  async function deliverDue(callLegId: string, slot: string, lost: () => boolean, known?: CallHead): Promise<CallHead | undefined> {
    for (;;) {
      if (stopped || lost()) return;
      const delivery = known ? known.head : await queue.head(callLegId);
      const released = known?.released;
      known = undefined;
      if (!delivery) return { head: undefined, released };
      const uri = delivery.callbackUri;
      if (await gone.has(uri)) {
        // Buried before it leaves the queue: a store that fails leaves it queued, not lost.
        await bury(delivery, 'gone');
        log(`Callback event ${delivery.id} of call ${callLegId} for ${uri} was kept as a dead letter (gone): the URI answered 410 before.`);
        known = (await queue.shift(callLegId, delivery.id, leased ? owner() : undefined)) ?? undefined;
        options.onAttempt?.(delivery, { next: 'gone' });
        continue;
      }
      const wait = delivery.notBefore - now();
      if (wait > 0) {
        // Other instances' polls skip the call till then (a hint: if it is not taken, they look again).
        await queue.defer?.(callLegId, delivery.notBefore).catch(() => {});
        if (stopped) return;
        // Its slot goes to another call meanwhile: a failing receiver of one call holds back no other.
        scheduled.set(
          callLegId,
          setTimeout(() => {
            scheduled.delete(callLegId);
            wake(callLegId, uri);
          }, wait),
        );
        return;
      }
      delivery.attempts++;
      const outcome = await attempt(delivery);
      if (stopped) return;
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
      if (next === 'done') delivered++;
      else {
        // Recorded before the event leaves the queue: a store that fails has the attempt made again.
        if (next === 'gone') await gone.add(uri);
        await bury(delivery, next);
        const attempts = `${delivery.attempts} attempt${delivery.attempts === 1 ? '' : 's'}`;
        log(`Callback event ${delivery.id} of call ${callLegId} for ${uri} was kept as a dead letter (${next}) after ${attempts}, the last: ${delivery.lastError?.replace(/\.$/, '')}.`);
      }
      const sent = Date.now();
      const waitingNext = nextWaiting(slot);
      let shifted = false;
      try {
        known = (await queue.shift(callLegId, delivery.id, leased ? owner() : undefined, waitingNext)) ?? undefined;
        shifted = true;
      } finally {
        if (waitingNext) handedOn(callLegId, waitingNext.callLegId, slot, shifted ? known?.next : undefined, sent, !shifted);
      }
    }
  }

  /**
   * With a shared queue, the first call in line for a slot of `uri` that no other worker's shift
   * is taking up: the shift that may end this worker's call takes its lease and head, and the
   * slot goes to it next.
   */
  function nextWaiting(uri: string): { callLegId: string; ms: number } | undefined {
    if (!queue.takesNext) return undefined;
    const queued = waiting.get(uri);
    if (!queued) return undefined;
    let checked = 0;
    for (const callLegId of queued.oldest()) {
      if (!beingHanded.has(callLegId) && !working.has(callLegId)) {
        beingHanded.add(callLegId);
        return { callLegId, ms: leaseMs };
      }
      // The others taken up are at most one per slot.
      if (++checked > concurrency) return undefined;
    }
    return undefined;
  }

  /**
   * After the shift that named `next` as the call to take up: when it took the call's lease and
   * head (`head`), the call's worker starts from them as this worker's slot frees (`handTo`). A
   * call no longer waiting (started meanwhile, under this instance's lease as well, or no longer
   * this instance's to deliver) is left as it is, or its lease given back, as it is when the
   * shift failed (it may have taken the lease all the same). A call not taken up (this worker's
   * call goes on) is free again for any slot, and takes one a worker freed meanwhile.
   */
  function handedOn(from: string, next: string, uri: string, head: PendingDelivery | undefined, at: number, failed: boolean) {
    beingHanded.delete(next);
    if (working.has(next)) return;
    const queued = waiting.get(uri);
    if (head && queued?.has(next) && !stopped) {
      leasedAhead.set(next, { head, at });
      handTo.set(from, next);
      return;
    }
    if (head || failed) void queue.releaseLease!(next, owner(), true).catch(() => {});
    if (queued?.has(next) && (active.get(uri) ?? 0) < concurrency) {
      queued.delete(next);
      if (queued.size === 0) waiting.delete(uri);
      wake(next, uri);
    }
  }

  /** Starts delivering a call's events, when its URI has a free slot; else the call waits for one. */
  function wake(callLegId: string, uri: string) {
    if (stopped) return;
    if (working.has(callLegId)) {
      // Its worker may have read the queue before this: it reads it again when it ends.
      wokenWhileWorking.add(callLegId);
      return;
    }
    if (scheduled.has(callLegId)) return;
    if ((active.get(uri) ?? 0) >= concurrency) {
      const queued = waiting.get(uri);
      if (queued) queued.set(callLegId, true);
      else waiting.set(uri, new FifoMap<string, true>().set(callLegId, true));
      return;
    }
    working.add(callLegId);
    active.set(uri, (active.get(uri) ?? 0) + 1);
    // Started by an event of its own while it waited for a slot: no longer waiting.
    const line = waiting.get(uri);
    if (line?.delete(callLegId) && line.size === 0) waiting.delete(uri);
    let ours = true;
    /** The call's head as the queue answered it last, when the worker ended (undefined: not known). */
    let last: CallHead | undefined;
    let failed = false;
    void work(callLegId, uri)
      .then((worked) => {
        ours = worked !== false;
        last = worked || undefined;
      })
      .catch((error: unknown) => {
        failed = true;
        log(`Callback delivery for call ${callLegId} failed, trying again in ${failureRetryMs} ms: ${(error as Error).message}`);
      })
      .finally(() => {
        working.delete(callLegId);
        const left = active.get(uri)! - 1;
        if (left === 0) active.delete(uri);
        else active.set(uri, left);
        if (failed && !stopped) {
          // A store that failed (Redis away) is given time: the call's events stay queued.
          scheduled.set(
            callLegId,
            setTimeout(() => {
              scheduled.delete(callLegId);
              wake(callLegId, uri);
            }, failureRetryMs),
          );
        }
        // An event queued while the worker was finishing is picked up again: from the queue's
        // last answer, when it gave one after the worker's last change, else by reading the head,
        // also when the worker was refused the lease (the push may have taken the lease another
        // instance gave up meanwhile). Otherwise a call another instance delivers is left to it.
        const woken = wokenWhileWorking.delete(callLegId);
        // The slot goes at once to the call this worker's last shift took up (its lease is held
        // for it), else back to this call if events came meanwhile, else to the call first in line.
        const handed = handTo.get(callLegId);
        handTo.delete(callLegId);
        const taken = handed !== undefined && !stopped && waiting.get(uri)?.has(handed) ? handed : undefined;
        if (taken !== undefined) wake(taken, uri);
        const head = failed ? undefined : woken ? queue.head(callLegId).catch(() => undefined) : !ours ? undefined : last ? last.head : queue.head(callLegId).catch(() => undefined);
        void Promise.resolve(head).then((head) => {
          if (head) wake(callLegId, head.callbackUri);
          // A call another worker's shift is taking up now is left to that worker.
          const queued = waiting.get(uri);
          for (const nextCall of taken === undefined && queued ? queued.oldest() : []) {
            if (beingHanded.has(nextCall)) continue;
            queued!.delete(nextCall);
            if (queued!.size === 0) waiting.delete(uri);
            wake(nextCall, uri);
            break;
          }
          settleIdle();
        });
      });
  }

  function settleIdle() {
    if (ownIdle.length > 0 && !ownBusy()) {
      for (const resolve of ownIdle) resolve();
      ownIdle = [];
    }
    if (idle.length === 0 || busy()) return;
    void queue.size().then(
      (size) => {
        if (size > 0 || working.size > 0 || scheduled.size > 0 || emitting > 0) return;
        for (const resolve of idle) resolve();
        idle = [];
      },
      // A queue that cannot answer now is asked again at the next change, or poll.
      () => {},
    );
  }

  /**
   * With a shared queue, other instances' calls come from polling: calls whose events wait and
   * that no instance delivers (a lease that expired, an instance that stopped) are taken up here.
   */
  let polling = false;
  let pollFailing = false;
  async function poll() {
    // A shutting-down instance takes up no other instance's calls.
    if (polling || stopped || closed) return;
    polling = true;
    try {
      for (const callLegId of await (queue.due ? queue.due() : queue.calls())) {
        if (stopped) return;
        if (working.has(callLegId) || scheduled.has(callLegId) || [...waiting.values()].some((calls) => calls.has(callLegId))) continue;
        const head = await queue.head(callLegId);
        if (head) wake(callLegId, head.callbackUri);
      }
      if (pollFailing) log('Callback queue can be polled again.');
      pollFailing = false;
    } catch (error) {
      // Said once per outage, not once per poll.
      if (!pollFailing) log(`Callback queue cannot be polled: ${(error as Error).message}`);
      pollFailing = true;
    } finally {
      polling = false;
      settleIdle();
    }
  }
  const poller = leased ? setInterval(() => void poll(), options.pollIntervalMs ?? 1_000) : undefined;
  poller?.unref?.();

  /**
   * Runs a step that records a call's registration (in the registry) or event (in the queue)
   * after the call's earlier ones of its kind (`steps`), retrying while it fails (waits doubling up
   * to 5 s); once the delivery stops, `onStopped` runs instead. Resolves when it is done.
   */
  function inOrder(
    steps: Map<string, Promise<void>>,
    callLegId: string,
    step: () => Promise<void>,
    onStopped: () => Promise<void> | void,
    onDone?: () => void,
  ): Promise<void> {
    emitting++;
    const asked = ++stepsAsked;
    stepsUnderWay.add(asked);
    const run = async () => {
      for (let wait = 50; ; wait = Math.min(wait * 2, 5_000)) {
        if (stopped) return onStopped();
        try {
          return await step();
        } catch (error) {
          log(`Callback registration or event of call ${callLegId} not recorded, retrying in ${wait} ms: ${(error as Error).message}`);
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    };
    const next = (steps.get(callLegId) ?? Promise.resolve())
      .then(run)
      .catch((error: unknown) => log(`Callback delivery for call ${callLegId} failed: ${(error as Error).message}`))
      .finally(() => {
        emitting--;
        if (steps.get(callLegId) === next) steps.delete(callLegId);
        onDone?.();
        stepDone(asked);
        settleIdle();
      });
    steps.set(callLegId, next);
    return next;
  }

  /** Counts a step done, and resolves the `settled()` promises whose steps are all done. */
  function stepDone(step: number) {
    stepsUnderWay.delete(step);
    if (settleHead === settleWaiters.length) return;
    const lowest = stepsUnderWay.size ? stepsUnderWay.values().next().value! : Infinity;
    while (settleHead < settleWaiters.length && settleWaiters[settleHead]!.upTo < lowest) settleWaiters[settleHead++]!.resolve();
    if (settleHead === settleWaiters.length) {
      settleWaiters.length = 0;
      settleHead = 0;
    } else if (settleHead > 1_000 && settleHead * 2 > settleWaiters.length) {
      // Steps that overlap without end never leave the list empty: what was resolved goes anyway.
      settleWaiters.splice(0, settleHead);
      settleHead = 0;
    }
  }

  /**
   * Records a call's registry step in order, the URI it leaves known here meanwhile. The call's
   * events emitted before it are queued first, with the URI they were emitted under (an
   * unregister after a call's last event does not leave that event without one).
   */
  function record(callLegId: string, uri: string | null, step: () => Promise<void>, onStopped: () => void) {
    const mark = { uri };
    recording.set(callLegId, mark);
    const emittedBefore = chains.get(callLegId);
    const after = emittedBefore ? () => emittedBefore.then(step) : step;
    // Forgotten as the step ends, before a request waiting in `settled()` for it goes on.
    void inOrder(registrations, callLegId, after, onStopped, () => {
      if (recording.get(callLegId) === mark) recording.delete(callLegId);
    });
  }

  return {
    register(callLegId, callbackUri) {
      if (!registry) callbackUris.set(callLegId, callbackUri);
      // The same URI being recorded for the call already (the handler's register, then the
      // stub's): a second step would record nothing more.
      else if (recording.get(callLegId)?.uri !== callbackUri) {
        record(callLegId, callbackUri, () => registry.set(callLegId, callbackUri), () => log(`The callbackUri of call ${callLegId} was not recorded before shutdown.`));
      }
    },
    unregister(callLegId) {
      if (registry) record(callLegId, null, () => registry.delete(callLegId), () => {});
      else callbackUris.delete(callLegId);
    },
    emit<Name extends EventName>(callLegId: string, name: Name, data: EventData<Name>) {
      const callbackUri = registry ? '' : callbackUris.get(callLegId);
      if (callbackUri === undefined) throw new Error(`No callbackUri is registered for call ${callLegId}.`);
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
      const delivery: PendingDelivery = { id, callLegId, callbackUri, body: JSON.stringify(event), queuedAt: time, attempts: 0, notBefore: time };
      // After close nothing more is sent, but nothing is lost either: the event is kept as a dead letter.
      if (closed) void bury(delivery, 'closed').catch(unkept(delivery));
      else if (!registry && !leased) void enqueue(delivery).catch(unkept(delivery));
      else {
        // A registry or a shared queue may fail: the event waits, in its call's order, for them.
        // A registration (or unregistration) asked for here and not recorded yet names the URI
        // as the event is emitted; otherwise the registry does, when the event's turn comes.
        const registering = registry ? recording.get(callLegId) : undefined;
        void inOrder(
          chains,
          callLegId,
          async () => {
            const uri = registering ? (registering.uri ?? undefined) : registry ? await registry.get(callLegId) : delivery.callbackUri;
            if (uri === undefined) {
              await bury(delivery, 'unregistered');
              options.onAttempt?.(delivery, { next: 'unregistered' });
              log(`No callbackUri is registered for call ${callLegId}: event ${id} was kept as a dead letter (unregistered).`);
              return;
            }
            await enqueue({ ...delivery, callbackUri: uri });
          },
          () => bury(delivery, 'closed').catch(unkept(delivery)),
        );
      }
    },
    settled() {
      if (stepsUnderWay.size === 0) return;
      return new Promise<void>((resolve) => settleWaiters.push({ upTo: stepsAsked, resolve }));
    },
    async drain() {
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (working.size === 0 && scheduled.size === 0 && waiting.size === 0 && emitting === 0 && (await queue.size()) === 0) return;
      await new Promise<void>((resolve) => idle.push(resolve));
    },
    async close(timeoutMs = 10_000) {
      closed = true;
      const deliveredBefore = delivered;
      let deadline: ReturnType<typeof setTimeout> | undefined;
      // With a shared queue the grace period is for this instance's own calls: the others' are
      // theirs to deliver, and the whole queue need not empty for this one to stop.
      const done = leased ? (ownBusy() ? new Promise<void>((resolve) => ownIdle.push(resolve)) : Promise.resolve()) : this.drain();
      const drained = await Promise.race([done.then(() => true), new Promise<false>((resolve) => (deadline = setTimeout(resolve, timeoutMs, false)))]);
      clearTimeout(deadline);
      stopped = true;
      // The calls this instance had in hand: with a shared queue, what it leaves to the others.
      const inHand = new Set([...working, ...scheduled.keys(), ...[...waiting.values()].flatMap((calls) => [...calls.keys()])]);
      clearInterval(poller);
      shutdownReason = new Error('The callback delivery is shutting down.');
      for (const controller of underWay) controller.abort(shutdownReason);
      for (const timer of scheduled.values()) clearTimeout(timer);
      scheduled.clear();
      waiting.clear();
      // Leases taken for calls whose workers did not start are handed back for the others at once.
      await Promise.all([...leasedAhead.keys()].map((callLegId) => queue.releaseLease?.(callLegId, owner(), true).catch(() => {})));
      leasedAhead.clear();
      // The attempts under way were aborted, and events still being looked up are dead letters:
      // wait for them before counting.
      while (working.size > 0 || emitting > 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const report: ShutdownReport = { delivered: delivered - deliveredBefore, stillQueued: 0, deadLettered: 0 };
      if (queue.durable && leased) {
        report.stillQueued = queue.length ? await Promise.all([...inHand].map((callLegId) => queue.length!(callLegId))).then((lengths) => lengths.reduce((sum, n) => sum + n, 0), () => NaN) : NaN;
        report.inSharedQueue = await (queue.counted ?? queue.size).call(queue).catch(() => NaN);
      } else if (queue.durable) report.stillQueued = await queue.size().catch(() => NaN);
      else {
        for (const callLegId of await queue.calls()) {
          for (let delivery = await queue.head(callLegId); delivery; delivery = await queue.head(callLegId)) {
            await queue.shift(callLegId);
            await bury(delivery, 'closed');
            report.deadLettered++;
          }
        }
      }
      if (report.stillQueued || report.deadLettered) {
        const shared = report.inSharedQueue === undefined ? '' : ` (${report.inSharedQueue} waiting in the shared queue for every instance)`;
        log(`Callback delivery stopped: ${report.delivered} delivered while stopping, ${report.stillQueued} left queued${shared}, ${report.deadLettered} kept as dead letters (closed).`);
      }
      // Connections close after the last attempt, when no one is waiting any more.
      released ??= pinned?.close();
      if (drained) await released;
      else void released?.catch(() => {});
      return report;
    },
    deadLetters: () => dead.list(),
    async redrive(id) {
      const letter = await dead.take(id);
      if (!letter) return false;
      const { reason: _reason, diedAt: _diedAt, ...delivery } = letter;
      const time = now();
      if (!delivery.callbackUri) {
        // Emitted before its call was registered here: the registry may know it now.
        const uri = registry ? await registry.get(delivery.callLegId) : callbackUris.get(delivery.callLegId);
        if (uri === undefined) {
          await dead.add(letter);
          return false;
        }
        delivery.callbackUri = uri;
      }
      try {
        await gone.delete(delivery.callbackUri);
        await enqueue({ ...delivery, attempts: 0, queuedAt: time, notBefore: time, lastError: undefined });
      } catch (error) {
        // The letter is kept for another redrive rather than lost with the store that failed.
        await dead.add(letter).catch(() => {});
        throw error;
      }
      return true;
    },
  };

  /** The last word on an event that could be neither queued nor kept as a dead letter (the stores failing). */
  function unkept(delivery: PendingDelivery) {
    return (error: unknown) =>
      log(`Event ${delivery.id} of call ${delivery.callLegId} for ${delivery.callbackUri || 'no callbackUri'} could be neither queued nor kept as a dead letter: ${(error as Error).message}`);
  }

  async function enqueue(delivery: PendingDelivery) {
    const { callLegId, callbackUri: uri } = delivery;
    const sent = Date.now();
    // The lease is asked for with the push only when a worker would start on the call at once: a
    // call waiting for a slot, or for a retry, is left free for another instance's poll.
    const startsNow = leased && !stopped && !working.has(callLegId) && !scheduled.has(callLegId) && (active.get(uri) ?? 0) < concurrency;
    const pushed = await queue.push(delivery, startsNow ? { owner: owner(), ms: leaseMs } : undefined);
    if (pushed === 'leased' && !working.has(callLegId)) {
      // The worker that starts now takes the event and the lease from here.
      leasedAhead.set(callLegId, { head: delivery, at: sent });
      wake(callLegId, uri);
      if (leasedAhead.delete(callLegId)) {
        // No worker started after all (the slots filled, or the delivery is stopping meanwhile):
        // the lease goes back at once, and the call to whichever instance polls it first.
        void queue.releaseLease?.(callLegId, owner(), true)?.catch(() => {});
      }
    } else if (pushed) {
      // A worker of this instance running on the call (with this owner's lease, or refused one)
      // reads the queue again when it ends.
      wake(callLegId, uri);
    } else {
      await bury(delivery, 'overflow');
      options.onAttempt?.(delivery, { next: 'overflow' });
      log(`Callback backlog full: event ${delivery.id} of call ${delivery.callLegId} for ${delivery.callbackUri} was kept as a dead letter (overflow).`);
    }
  }
}
