import type { CallbackEventHandlers } from './handler.ts';
import { eventNameOfType, eventNames, type CallAutomationEvent, type EventName, type EventOf } from './names.ts';

export interface EventTrackerOptions {
  /** The most events kept for waits still to come; past it the oldest go first. Default 1 000. */
  maxEvents?: number;
  /** The time limit of a wait that names none. Default 30 s. */
  defaultTimeoutMs?: number;
}

export interface WaitOptions<Name extends EventName> {
  /** Only an event of this operation (events that carry `operationContext`). */
  operationContext?: string;
  /** How long to wait before the promise rejects with an EventTimeoutError. */
  timeoutMs?: number;
  /** Only an event this accepts. */
  where?: (event: EventOf<Name>) => boolean;
  /** Stops the wait (rejects with the signal's reason). */
  signal?: AbortSignal;
}

/** A wait that ran out: says what the call did have. */
export class EventTimeoutError extends Error {
  override readonly name = 'EventTimeoutError';
  constructor(
    readonly callLegId: string,
    readonly eventName: EventName,
    readonly timeoutMs: number,
    /** The events seen for the call, oldest first. */
    readonly seen: readonly CallAutomationEvent[],
  ) {
    const had = seen.map(describe).join(', ');
    super(`No ${eventName} for call ${callLegId} within ${timeoutMs} ms; ${seen.length ? `it had: ${had}` : 'no event of it arrived'}.`);
  }
}

/** An event in a word: its name and what it says (the state, the result, the tone). */
function describe(event: CallAutomationEvent): string {
  const data = event.data as { callState?: string; status?: string; toneInfo?: { tone?: string } };
  const detail = data.callState ?? data.status ?? data.toneInfo?.tone;
  return `${eventNameOfType.get(event.type) ?? event.type}${detail ? ` (${detail})` : ''}`;
}

interface Waiter {
  callLegId: string;
  name: EventName;
  matches: (event: CallAutomationEvent) => boolean;
  resolve: (event: CallAutomationEvent) => void;
}

/**
 * Matches callback events to the calls and operations that caused them. Events reach it through
 * `handle` (or `on`, handlers for createCallbackHandler); `waitFor` resolves with the event a
 * call is waiting for, whether it arrived before the wait began (before the HTTP answer that
 * named the call, which the service can do) or after. Each event answers one wait: two waits for
 * a call's DtmfReceived get its first and its second tone. An event seen twice (the same id, a
 * redelivery) counts once.
 */
export function createEventTracker(options: EventTrackerOptions = {}) {
  const maxEvents = options.maxEvents ?? 1_000;
  if (!Number.isInteger(maxEvents) || maxEvents < 1) throw new RangeError(`maxEvents must be a whole number of at least 1, not ${maxEvents}.`);
  const defaultTimeoutMs = options.defaultTimeoutMs ?? 30_000;
  /** Events not yet taken by a wait, oldest first. */
  const unclaimed: CallAutomationEvent[] = [];
  /** Every event seen, per call, for the timeout's account (bounded with the rest). */
  const history = new Map<string, CallAutomationEvent[]>();
  const seenIds = new Set<string>();
  const order: CallAutomationEvent[] = [];
  const waiters = new Set<Waiter>();

  function callOf(event: CallAutomationEvent): string {
    return (event.data as { callLegId: string }).callLegId;
  }

  function handle(event: CallAutomationEvent): void {
    if (seenIds.has(event.id)) return;
    seenIds.add(event.id);
    order.push(event);
    const callLegId = callOf(event);
    const list = history.get(callLegId);
    if (list) list.push(event);
    else history.set(callLegId, [event]);
    // The oldest events go once there are too many, from every list they are in.
    while (order.length > maxEvents) {
      const old = order.shift()!;
      seenIds.delete(old.id);
      const calls = history.get(callOf(old));
      calls?.splice(calls.indexOf(old), 1);
      if (calls?.length === 0) history.delete(callOf(old));
      const at = unclaimed.indexOf(old);
      if (at !== -1) unclaimed.splice(at, 1);
    }
    for (const waiter of waiters) {
      if (waiter.callLegId === callLegId && waiter.matches(event)) {
        waiters.delete(waiter);
        waiter.resolve(event);
        return;
      }
    }
    unclaimed.push(event);
  }

  return {
    handle,
    /** Handlers for every event, for `createCallbackHandler({ secret, on: tracker.on })`. */
    on: Object.fromEntries(eventNames.map((name) => [name, handle])) as CallbackEventHandlers,
    /**
     * The first event of a call with this name (and `operationContext`, and `where`) not taken by
     * another wait: one already received, or the next to come.
     */
    waitFor<Name extends EventName>(callLegId: string, eventName: Name, waitOptions: WaitOptions<Name> = {}): Promise<EventOf<Name>> {
      const matches = (event: CallAutomationEvent) =>
        callOf(event) === callLegId &&
        eventNameOfType.get(event.type) === eventName &&
        (waitOptions.operationContext === undefined || (event.data as { operationContext?: string }).operationContext === waitOptions.operationContext) &&
        (waitOptions.where?.(event as EventOf<Name>) ?? true);
      const at = unclaimed.findIndex(matches);
      if (at !== -1) return Promise.resolve(unclaimed.splice(at, 1)[0] as EventOf<Name>);
      const timeoutMs = waitOptions.timeoutMs ?? defaultTimeoutMs;
      return new Promise<EventOf<Name>>((resolve, reject) => {
        const waiter: Waiter = {
          callLegId,
          name: eventName,
          matches,
          resolve: (event) => {
            clearTimeout(timer);
            waitOptions.signal?.removeEventListener('abort', abort);
            resolve(event as EventOf<Name>);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          waitOptions.signal?.removeEventListener('abort', abort);
          reject(new EventTimeoutError(callLegId, eventName, timeoutMs, [...(history.get(callLegId) ?? [])]));
        }, timeoutMs);
        const abort = () => {
          clearTimeout(timer);
          waiters.delete(waiter);
          reject(waitOptions.signal!.reason);
        };
        if (waitOptions.signal?.aborted) return abort();
        waitOptions.signal?.addEventListener('abort', abort, { once: true });
        waiters.add(waiter);
      });
    },
    /** The events seen for a call, oldest first. */
    events(callLegId: string): CallAutomationEvent[] {
      return [...(history.get(callLegId) ?? [])];
    },
    /** Forgets a call's events (once it has ended and nothing more will be waited for). */
    forget(callLegId: string): void {
      for (const event of history.get(callLegId) ?? []) {
        seenIds.delete(event.id);
        order.splice(order.indexOf(event), 1);
        const at = unclaimed.indexOf(event);
        if (at !== -1) unclaimed.splice(at, 1);
      }
      history.delete(callLegId);
    },
  };
}

export type EventTracker = ReturnType<typeof createEventTracker>;
