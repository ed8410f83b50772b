/** One thing the simulator did or saw, as the inspector shows it. */
export type JournalEntry = { seq: number; at: number; callLegId?: string } & (
  | { kind: 'request'; operationId: string; method: string; path: string; status: number; ms: number; requestId: string }
  | { kind: 'event'; type: string; data: unknown }
  | {
      kind: 'attempt';
      eventId: string;
      type: string;
      /** What the event says, in a word: the call's state, the tone, the result. */
      detail?: string;
      uri: string;
      attempt: number;
      status?: number;
      error?: string;
      /** done, retry, or the dead letter's reason. */
      next: string;
      /** When the next attempt starts, for a retry. */
      nextAt?: number;
      /** How long the attempt took, and the webhook-signature it carried (what went on the wire). */
      ms?: number;
      signature?: string;
    }
  | { kind: 'control'; action: string; detail?: string }
  | { kind: 'faults'; faults: unknown }
);

type Unsequenced<T> = T extends unknown ? Omit<T, 'seq' | 'at'> & { at?: number } : never;

/**
 * What the simulator did, recently: a bounded list (the oldest entries go first) that the
 * inspector reads when it opens, and follows as entries are added.
 */
export function createJournal(maxEntries = 5_000) {
  const entries: JournalEntry[] = [];
  const listeners = new Set<(entry: JournalEntry) => void>();
  let seq = 0;
  function record(full: JournalEntry) {
    seq = Math.max(seq, full.seq);
    entries.push(full);
    if (entries.length > maxEntries) entries.splice(0, entries.length - maxEntries);
    for (const listener of listeners) listener(full);
  }
  return {
    add(entry: Unsequenced<JournalEntry>) {
      record({ ...entry, seq: seq + 1, at: entry.at ?? Date.now() } as JournalEntry);
    },
    /** Keeps an entry numbered elsewhere (another instance's, read from a shared journal). */
    record,
    /** The entries kept, oldest first; with `after`, only those that came after that sequence number. */
    list(after = 0): JournalEntry[] {
      return after ? entries.filter((entry) => entry.seq > after) : [...entries];
    },
    /** The sequence number of the newest entry (0 when there is none). */
    get seq(): number {
      return seq;
    },
    /** Resolves once `done()` holds, checked now and after each new entry; false after `timeoutMs`. */
    waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
      if (done()) return Promise.resolve(true);
      return new Promise((resolve) => {
        const finish = (result: boolean) => {
          clearTimeout(timer);
          listeners.delete(check);
          resolve(result);
        };
        const check = () => void (done() && finish(true));
        const timer = setTimeout(() => finish(false), timeoutMs);
        listeners.add(check);
      });
    },
    /** Hears each entry as it is added; answers the function that stops it. */
    follow(listener: (entry: JournalEntry) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

export type Journal = ReturnType<typeof createJournal>;
export type { Unsequenced };
