import { ExpiringMap } from './expiring.ts';

/** The answer a request got, kept to answer its repeats. */
export interface StoredReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** What a claim found: the key was free and is now this request's, or another request has it, or no room. */
export type Claim =
  | { state: 'claimed' }
  /** A request with this key is still running. */
  | { state: 'pending'; fingerprint: string }
  /** A request with this key was answered. */
  | { state: 'done'; fingerprint: string; reply: StoredReply }
  /** The store cannot take another key before `retryAfterMs`. */
  | { state: 'full'; retryAfterMs: number };

/**
 * Where the answers of repeatable requests (Repeatability-Request-ID) are kept. A durable store
 * (Redis, a database) can take the in-memory default's place; `claim` must be atomic across
 * instances, and a key must be kept until its `expires`, never forgotten earlier to make room.
 */
export interface IdempotencyStore {
  /** How long after a request was first sent its answer is honoured, in ms. */
  readonly lifetimeMs: number;
  /**
   * Claims `key` for a request whose method, path and body hash to `fingerprint`, to be kept until
   * `expires` (ms since the epoch); or answers what holds it already.
   */
  claim(key: string, fingerprint: string, expires: number): Promise<Claim>;
  /** Stores the reply of a claimed key, until the expiry it was claimed with. */
  complete(key: string, reply: StoredReply): Promise<void>;
  /** Gives up a claim (the handler failed), so that a retry runs again. */
  release(key: string): Promise<void>;
}

export interface MemoryIdempotencyStoreOptions {
  /** How long after a request was first sent its answer is honoured. Default 10 minutes, as the spec documents. */
  lifetimeMs?: number;
  /**
   * The most keys held at once (default 100 000, a few hundred bytes each). A full store refuses
   * new repeatable requests with 503 and Retry-After until keys expire; it never forgets one early.
   */
  maxEntries?: number;
  now?: () => number;
}

type Entry = { fingerprint: string; reply?: StoredReply };

/** An in-memory store, for one instance. */
export function createMemoryIdempotencyStore(options: MemoryIdempotencyStoreOptions = {}): IdempotencyStore {
  const entries = new ExpiringMap<Entry>(options.maxEntries ?? 100_000, options.now);
  return {
    lifetimeMs: options.lifetimeMs ?? 10 * 60_000,
    async claim(key, fingerprint, expires) {
      const held = entries.get(key)?.value;
      if (held) return held.reply ? { state: 'done', fingerprint: held.fingerprint, reply: held.reply } : { state: 'pending', fingerprint: held.fingerprint };
      if (!entries.set(key, { fingerprint }, expires)) return { state: 'full', retryAfterMs: entries.retryAfterMs() };
      return { state: 'claimed' };
    },
    async complete(key, reply) {
      const held = entries.get(key)?.value;
      if (held) entries.update(key, { fingerprint: held.fingerprint, reply });
    },
    async release(key) {
      entries.delete(key);
    },
  };
}
