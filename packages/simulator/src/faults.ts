import { operationTable, type OperationId } from '@call-automation/contract';
import { ApiError, toDetails } from '@call-automation/server';
import type { Ajv2020 } from 'ajv/dist/2020.js';

/** How long `reorder` holds a delivery back at most, waiting for the next one to its URI. */
const reorderHoldMs = 2_000;

/** An operation's faults: refuse it (429 or 503 with Retry-After) at a rate, and/or answer it late. */
export interface OperationFault {
  /** The status a refused request gets: 429 (throttled) or 503 (unavailable). */
  status?: 429 | 503;
  /** The share of requests refused, 0 to 1. Default 1 when `status` is given. */
  rate?: number;
  /** The Retry-After of a refusal, in seconds. Default 1. */
  retryAfterSeconds?: number;
  /** Added before every request of the operation is handled, in ms. */
  latencyMs?: number;
}

/** Faults of callback deliveries, as a network and a real service can cause them. */
export interface CallbackFaults {
  /** The share of deliveries sent twice (the same webhook-id and body), 0 to 1. */
  duplicateRate?: number;
  /**
   * Each delivery is held back until the next one to the same callbackUri has been sent (at most
   * 2 s), then sent: the receiver sees them swapped. A held delivery counts as delivered.
   */
  reorder?: boolean;
  /** Added before each delivery attempt, in ms. */
  delayMs?: number;
  /** A request's events are delivered before its HTTP answer goes (waiting at most 2 s), as the real service can. */
  beforeAnswer?: boolean;
}

/** What `POST /faults` takes. Every part is optional; the same seed gives the same run. */
export interface Faults {
  seed?: number;
  operations?: Partial<Record<OperationId, OperationFault>>;
  callbacks?: CallbackFaults;
}

const fraction = { type: 'number', minimum: 0, maximum: 1 };
const ms = { type: 'integer', minimum: 0, maximum: 60_000 };
const faultSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    seed: { type: 'integer' },
    operations: {
      type: 'object',
      additionalProperties: false,
      // The operations are the spec's.
      properties: Object.fromEntries(
        Object.keys(operationTable).map((operationId) => [
          operationId,
          {
            type: 'object',
            additionalProperties: false,
            properties: { status: { enum: [429, 503] }, rate: fraction, retryAfterSeconds: { type: 'integer', minimum: 0, maximum: 3_600 }, latencyMs: ms },
          },
        ]),
      ),
    },
    callbacks: {
      type: 'object',
      additionalProperties: false,
      properties: { duplicateRate: fraction, reorder: { type: 'boolean' }, delayMs: ms, beforeAnswer: { type: 'boolean' } },
    },
  },
};

/** A small seeded generator (mulberry32): the same seed, the same faults in the same order. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const sleep = (delay: number, signal?: AbortSignal | null) =>
  new Promise<void>((resolve, reject) => {
    if (delay <= 0) return resolve();
    const timer = setTimeout(resolve, delay);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

/**
 * The faults in force: set and cleared through the control surface, applied to the API's
 * operations before their handlers run, and to callback deliveries through `wrapFetch`.
 */
export function createFaults() {
  // Compiled when faults are first set: a start that sets none does without it.
  let validate: ReturnType<Ajv2020['compile']> | undefined;
  let faults: Faults = {};
  let random = seeded(0);
  /** Per callbackUri, the delivery held back to be sent after the next one. */
  const held = new Map<string, { send: () => Promise<void>; timer: ReturnType<typeof setTimeout> }>();
  const sending = new Set<Promise<unknown>>();

  function background(work: Promise<unknown>) {
    const tracked = work.catch(() => {});
    sending.add(tracked);
    void tracked.finally(() => sending.delete(tracked));
  }

  return {
    get current(): Faults {
      return faults;
    },
    /** Replaces the faults in force, after checking them; a 400 ApiError says what is wrong. */
    async set(value: unknown): Promise<Faults> {
      validate ??= new (await import('ajv/dist/2020.js')).Ajv2020({ allErrors: true, strict: true }).compile(faultSchema);
      if (!validate(value)) throw new ApiError(400, 'ValidationFailed', 'The faults do not match what POST /faults takes.', { details: toDetails(validate.errors ?? []) });
      faults = value as Faults;
      random = seeded(faults.seed ?? 0);
      return faults;
    },
    clear() {
      faults = {};
    },
    /** Before an operation's handler: its latency, then perhaps its refusal. */
    async beforeOperation(operationId: OperationId) {
      const fault = faults.operations?.[operationId];
      if (!fault) return;
      if (fault.latencyMs) await sleep(fault.latencyMs);
      if (fault.status && random() < (fault.rate ?? 1)) {
        const seconds = fault.retryAfterSeconds ?? 1;
        const message = fault.status === 429 ? 'Too many requests (an injected fault)' : 'The service is unavailable (an injected fault)';
        throw new ApiError(fault.status, fault.status === 429 ? 'TooManyRequests' : 'ServiceUnavailable', `${message}; retry after ${seconds} seconds.`, { headers: { 'Retry-After': String(seconds) } });
      }
    },
    /** Whether a request's events go out before its answer. */
    get beforeAnswer(): boolean {
      return faults.callbacks?.beforeAnswer ?? false;
    },
    /** The delivery's fetch, with the callback faults in force applied to each attempt. */
    wrapFetch(send: (input: string, init?: RequestInit) => Promise<Response>): typeof fetch {
      return async (target: RequestInfo | URL, init?: RequestInit) => {
        const input = String(target);
        const callbacks = faults.callbacks;
        if (!callbacks || (!callbacks.delayMs && !callbacks.duplicateRate && !callbacks.reorder)) return send(input, init);
        const uri = input;
        if (callbacks.delayMs) await sleep(callbacks.delayMs, init?.signal);
        const duplicate = callbacks.duplicateRate ? random() < callbacks.duplicateRate : false;
        // The copy is sent once the first is answered, free of the attempt's time limit.
        const copy = { ...init, signal: undefined };
        const again = () => (duplicate ? background(send(input, copy).then((response) => response.body?.cancel())) : undefined);
        if (callbacks.reorder) {
          const before = held.get(uri);
          if (!before) {
            const entry = {
              send: async () => {
                if (held.get(uri) === entry) held.delete(uri);
                await send(input, copy).then((response) => response.body?.cancel());
                again();
              },
              // Long enough for a call's next event to come on a busy machine.
              timer: setTimeout(() => background(entry.send()), reorderHoldMs),
            };
            held.set(uri, entry);
            return new Response(null, { status: 204 });
          }
          clearTimeout(before.timer);
          held.delete(uri);
          const response = await send(input, init);
          background(before.send());
          again();
          return response;
        }
        const response = await send(input, init);
        again();
        return response;
      };
    },
    /** Sends what is held back, and waits for what is being sent. */
    async flush() {
      for (const { send, timer } of [...held.values()]) {
        clearTimeout(timer);
        background(send());
      }
      held.clear();
      await Promise.all([...sending]);
    },
  };
}

export type FaultControl = ReturnType<typeof createFaults>;
