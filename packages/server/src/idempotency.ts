/** The answer a request got, kept to answer its repeats. */
export interface StoredReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * Where the answers of idempotent creates are kept. A durable store (Redis, a database) can take
 * the in-memory default's place; `claim` must be atomic across instances.
 */
export interface IdempotencyStore {
  /** Claims `key` for a first request (answers undefined), or answers the reply already stored for it. */
  claim(key: string): Promise<StoredReply | 'pending' | undefined>;
  /** Stores the reply of a claimed key. */
  complete(key: string, reply: StoredReply): Promise<void>;
  /** Gives up a claim (the handler failed), so that a retry runs again. */
  release(key: string): Promise<void>;
}

/** An in-memory store: replies kept `ttlMs` (10 minutes by default), at most `maxEntries` (10 000). */
export function createMemoryIdempotencyStore(options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}): IdempotencyStore {
  const ttl = options.ttlMs ?? 10 * 60_000;
  const max = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, { reply?: StoredReply; expires: number }>();
  return {
    async claim(key) {
      const time = now();
      const entry = entries.get(key);
      if (entry && entry.expires > time) return entry.reply ?? 'pending';
      for (const [k, e] of entries) {
        if (entries.size < max && e.expires > time) break;
        entries.delete(k);
      }
      entries.set(key, { expires: time + ttl });
      return undefined;
    },
    async complete(key, reply) {
      entries.set(key, { reply, expires: now() + ttl });
    },
    async release(key) {
      entries.delete(key);
    },
  };
}
