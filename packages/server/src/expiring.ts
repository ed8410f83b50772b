/**
 * Entries that each live until their own expiry time, at most `maxEntries` at once. Nothing is
 * forgotten before it expires: when the map is full, `set` refuses, and `retryAfterMs` says how
 * long until the earliest entry expires. The stores that promise to remember something for a
 * stated time (seen signatures, repeatable requests' answers) are built on it.
 *
 * Expiry times fall within a bounded window of the clock, so entries are grouped by the second
 * they expire in: pruning, once a second, drops whole seconds, and no entry is scanned on a
 * lookup.
 */
export class ExpiringMap<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  /** The keys set to expire in each second (a key set again may be listed twice). */
  private readonly seconds = new Map<number, string[]>();
  private prunedAt = -Infinity;

  constructor(
    readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(maxEntries >= 1)) throw new RangeError(`maxEntries must be at least 1, not ${maxEntries}.`);
  }

  get size(): number {
    this.prune();
    return this.entries.size;
  }

  /** The live entry for `key`. */
  get(key: string): { value: V; expires: number } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires > this.now()) return entry;
    this.entries.delete(key);
    return undefined;
  }

  /** Stores `value` until `expires` (ms since the epoch); answers false, storing nothing, when the map is full. */
  set(key: string, value: V, expires: number): boolean {
    this.prune();
    const existing = this.entries.get(key);
    if (!existing && this.entries.size >= this.maxEntries) return false;
    this.entries.set(key, { value, expires });
    if (existing && Math.ceil(existing.expires / 1000) === Math.ceil(expires / 1000)) return true;
    const second = Math.ceil(expires / 1000);
    const keys = this.seconds.get(second);
    if (keys) keys.push(key);
    else this.seconds.set(second, [key]);
    return true;
  }

  /** Replaces the value of a live entry, keeping its expiry. */
  update(key: string, value: V): void {
    const entry = this.get(key);
    if (entry) entry.value = value;
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  /** Milliseconds until the earliest entry expires: when a full map has room again. */
  retryAfterMs(): number {
    this.prune();
    let earliest = Infinity;
    for (const second of this.seconds.keys()) earliest = Math.min(earliest, second * 1000);
    return Number.isFinite(earliest) ? Math.max(0, earliest - this.now()) : 0;
  }

  /** Drops the entries whose second has passed; runs at most once per second of the clock. */
  private prune(): void {
    const time = this.now();
    const current = Math.floor(time / 1000);
    if (current === this.prunedAt) return;
    this.prunedAt = current;
    for (const [second, keys] of this.seconds) {
      if (second * 1000 > time) continue;
      for (const key of keys) {
        const entry = this.entries.get(key);
        if (entry && entry.expires <= time) this.entries.delete(key);
      }
      this.seconds.delete(second);
    }
  }
}
