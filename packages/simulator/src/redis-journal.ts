import type { Cluster, Redis } from 'ioredis';
import { withTimeout } from '@call-automation/server/redis';
import { createJournal, type Journal, type JournalEntry } from './journal.ts';

export interface RedisJournalOptions {
  /** Put before every key. Default `ca:sim:`. */
  prefix?: string;
  /** About how many entries the stream keeps (MAXLEN ~), and this instance's copy. Default 5 000. */
  maxEntries?: number;
  /** Where a failure to record or to read the journal is said (once per outage). Default console.warn. */
  log?: (line: string) => void;
}

// Numbered by one counter, then added to one stream: both under one hash tag, for Redis Cluster.
const addScript = `
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 's', seq, 'e', ARGV[1])
return seq
`;

interface Scripts {
  caSimJournalAdd(stream: string, counter: string, entry: string, max: number): Promise<number>;
}

type StreamEntries = Array<[id: string, fields: string[]]>;

function parse(fields: string[]): JournalEntry | undefined {
  const at = (name: string) => fields[fields.indexOf(name) + 1];
  try {
    return { ...(JSON.parse(at('e') ?? '') as object), seq: Number(at('s')) } as JournalEntry;
  } catch {
    return undefined;
  }
}

/**
 * The journal of every instance on one Redis: what each does goes into a stream, and each keeps a
 * copy of the stream's recent entries, read as they come, so that the inspector of any instance
 * shows every instance's requests, events and deliveries, in one order.
 */
export function createRedisJournal(redis: Redis | Cluster, options: RedisJournalOptions = {}): Journal & { stop(): Promise<void> } {
  const tag = `{${options.prefix ?? 'ca:sim:'}journal}`;
  const stream = `${tag}stream`;
  const counter = `${tag}seq`;
  const maxEntries = options.maxEntries ?? 5_000;
  const log = options.log ?? ((line: string) => console.warn(line));
  redis.defineCommand('caSimJournalAdd', { numberOfKeys: 2, lua: addScript });
  const scripts = redis as unknown as Scripts;
  const copy = createJournal(maxEntries);
  // XREAD BLOCK holds its connection: the reader has one of its own.
  // Its commands wait for it to connect, whatever the instance's own connection was told.
  const waiting = { lazyConnect: false, enableOfflineQueue: true };
  const reader: Redis | Cluster = redis.isCluster ? (redis as Cluster).duplicate(undefined, waiting) : (redis as Redis).duplicate(waiting);
  reader.on('error', () => {});
  let stopped = false;
  let failing = false;
  // Read from the stream's start when it is empty (a concrete id: '$' would skip what is added between two reads).
  let last = '0-0';

  async function read() {
    let started = false;
    while (!stopped) {
      try {
        if (!started) {
          // What the stream holds already, then what comes.
          const backlog = (await reader.xrevrange(stream, '+', '-', 'COUNT', maxEntries)) as StreamEntries;
          for (const [id, fields] of backlog.reverse()) {
            const entry = parse(fields);
            if (entry) copy.record(entry);
            last = id;
          }
          started = true;
        }
        const answer = (await reader.xread('COUNT', 500, 'BLOCK', 1_000, 'STREAMS', stream, last)) as Array<[string, StreamEntries]> | null;
        for (const [, entries] of answer ?? []) {
          for (const [id, fields] of entries) {
            last = id;
            const entry = parse(fields);
            if (entry) copy.record(entry);
          }
        }
        if (failing) log("The simulator's journal reaches Redis again.");
        failing = false;
      } catch (error) {
        if (stopped) return;
        if (!failing) log(`The simulator's journal cannot be read from Redis: ${(error as Error).message}`);
        failing = true;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  }
  const reading = read().catch((error: unknown) => log(`The simulator's journal stopped reading Redis: ${(error as Error).message}`));

  return {
    list: copy.list,
    follow: copy.follow,
    record: copy.record,
    waitUntil: copy.waitUntil,
    get seq() {
      return copy.seq;
    },
    add(entry) {
      const { at, ...rest } = entry;
      withTimeout(scripts.caSimJournalAdd(stream, counter, JSON.stringify({ ...rest, at: at ?? Date.now() }), maxEntries), 2_000, "the simulator's journal").then(
        () => {
          if (failing) log("The simulator's journal reaches Redis again.");
          failing = false;
        },
        (error: unknown) => {
          if (!failing) log(`The simulator's journal cannot be written to Redis: ${(error as Error).message}`);
          failing = true;
        },
      );
    },
    async stop() {
      stopped = true;
      reader.disconnect();
      await reading;
    },
  };
}
