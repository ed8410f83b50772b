/**
 * A Map whose oldest entry is removed in constant time: for the bounded caches and first-come
 * queues that take from the front while adding at the back. A plain Map keeps its insertion order
 * too, but V8 leaves a deleted entry in place until the table is rebuilt, and `keys().next()`
 * steps over every one of them: a Map of 10 000 keys used so spends about 6 µs a step, this
 * under 1 µs (`BENCH_ONLY=structures pnpm --filter @call-automation/server bench`).
 *
 * Same order as a Map: a key set again keeps its place; deleted and set again, it is the newest.
 */
export class FifoMap<K, V> {
  private readonly entries = new Map<K, { value: V; seq: number }>();
  /** Keys oldest first, with the sequence number they were set with; a key deleted or set anew since is stale here. */
  private order: Array<{ key: K; seq: number }> = [];
  private head = 0;
  private seq = 0;

  get size(): number {
    return this.entries.size;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  get(key: K): V | undefined {
    return this.entries.get(key)?.value;
  }

  set(key: K, value: V): this {
    const entry = this.entries.get(key);
    if (entry) {
      entry.value = value;
      return this;
    }
    const seq = this.seq++;
    this.entries.set(key, { value, seq });
    this.order.push({ key, seq });
    // Stale keys are skipped as the front is taken; where few are taken (keys deleted rather
    // than shifted), the list is rebuilt once they outnumber the live ones.
    if (this.order.length - this.head > 2 * this.entries.size + 1_000) this.rebuild();
    return this;
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.order = [];
    this.head = 0;
  }

  /**
   * The keys, oldest first, for a look at the front: keys deleted from the front are dropped as
   * it goes (once), so that a first-come queue taken from by `delete` stays as cheap as by `shift`.
   */
  *oldest(): Generator<K> {
    this.dropStale();
    for (let i = this.head; i < this.order.length; i++) {
      const { key, seq } = this.order[i]!;
      if (this.entries.get(key)?.seq === seq) yield key;
    }
  }

  /** Removes the oldest entry, answering its key (undefined when empty). */
  shift(): K | undefined {
    this.dropStale();
    if (this.head === this.order.length) return undefined;
    const { key } = this.order[this.head++]!;
    this.entries.delete(key);
    return key;
  }

  /** Moves the front past keys deleted or set anew since they were listed, and lets go of what it passed. */
  private dropStale(): void {
    while (this.head < this.order.length) {
      const { key, seq } = this.order[this.head]!;
      if (this.entries.get(key)?.seq === seq) break;
      this.head++;
    }
    if (this.head === this.order.length) {
      this.order = [];
      this.head = 0;
    } else if (this.head > 1_000 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }

  /** The keys, oldest first. */
  keys(): IterableIterator<K> {
    return this.entries.keys();
  }

  private rebuild(): void {
    this.order = Array.from(this.entries, ([key, { seq }]) => ({ key, seq }));
    this.head = 0;
  }
}
