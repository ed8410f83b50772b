import type { CommunicationIdentifier, EventData } from '@call-automation/server';

export type CallState = EventData<'CallLegStateChanged'>['callState'];

export interface Participant {
  participantId: string;
  identifier: CommunicationIdentifier;
  isMuted: boolean;
}

export interface PlayRecord {
  id: string;
  operationContext?: string;
  loop: boolean;
}

/**
 * A call as the simulator keeps it: plain data, so that it can live in Redis as well as in memory.
 * What happens later (targets answering, plays ending, invitations answered) is a timer whose id is
 * listed in `timers` until it has run: a timer not listed (run already, or its call changed past
 * it) does nothing when it fires, so a timer fired twice (at least once, on Redis) acts once.
 */
export interface CallRecord {
  callLegId: string;
  state: CallState;
  /** Whether the call asked for ParticipantsUpdated and DtmfReceived. */
  participantsUpdated: boolean;
  dtmfReceived: boolean;
  participants: Participant[];
  /** Plays in the order they were asked for; the first is the one running. */
  plays: PlayRecord[];
  /** The ids of the timers pending. */
  timers: string[];
  toneSequence: number;
  /** How many of the targets the call was made to have not yet answered, nor failed. */
  ringing: number;
}

/** Something that happens to a call later. */
export type Timer = { id: string; callLegId: string; at: number } & (
  /** Targets of the call answer, or fail (declined, busy, no answer). */
  | { kind: 'answer'; targets: CommunicationIdentifier[] }
  | { kind: 'unanswered'; targets: CommunicationIdentifier[] }
  | { kind: 'play'; playId: string }
  /** Invitees answer (`outcome` answer) or fail, with one InviteParticipantResult for all of them. */
  | { kind: 'invite'; participants: CommunicationIdentifier[]; operationContext?: string; outcome: 'answer' | 'decline' | 'busy' | 'noAnswer' }
  /** A participant's scripted acts, after it answered. */
  | { kind: 'tone'; participantId: string; tone: EventData<'DtmfReceived'>['toneInfo']['tone'] }
  | { kind: 'leave'; participantId: string }
);

/** A call as read, with what a write must name to replace it (nothing else wrote it since). */
export interface Versioned {
  call: CallRecord;
  version: number;
  /**
   * On shared state, how much longer (ms) the call is held by the write that made this version,
   * whose events are on their way to the queue: a change read now would emit its events ahead of
   * them. Read the call again once the hold is released or has lapsed.
   */
  heldMs?: number;
}

/** A hold a write puts on its call (shared state), till its events are queued: `token` releases it, or it lapses after `ms`. */
export interface Hold {
  token: string;
  ms: number;
}

/**
 * Where the simulator keeps its calls and timers: in this process (the default) or in Redis, for
 * several instances serving the same calls. Writes are compare-and-set on a call's version, so
 * two instances changing one call at once cannot lose either change: the one that loses reads
 * the call again and retries.
 */
export interface SimulatorState {
  /** Whether the state outlives this process and is seen by other instances. */
  readonly shared: boolean;
  get(callLegId: string): Promise<Versioned | undefined>;
  /**
   * Writes a call if its version is still `version` (0: the call must not exist yet); false when
   * another write came first. With `hold` (shared state), the call is held with the write: others
   * read it with `heldMs` until `release`, so that its events are queued before any they cause.
   */
  put(call: CallRecord, version: number, hold?: Hold): Promise<boolean>;
  /** Releases a write's hold on its call, if it still holds it. */
  release?(callLegId: string, token: string): Promise<void>;
  /** Deletes a call if its version is still `version`. */
  remove(callLegId: string, version: number): Promise<boolean>;
  /** The calls in progress, oldest first. */
  list(): Promise<CallRecord[]>;
  /** How many calls are kept, and the oldest of them. */
  count(): Promise<number>;
  oldest(): Promise<string | undefined>;
  /** Makes `timer` fire at its time (through `onTimer` given to `start`), on this instance or, when shared, on any. */
  schedule(timer: Timer): Promise<void>;
  /** Says a timer has run (or did nothing): it will not fire again. */
  done(timer: Timer): Promise<void>;
  /** Fires a timer again `ms` from now. */
  postpone(timer: Timer, ms: number): Promise<void>;
  /** Calls off timers by id (those of a call that ended). */
  cancel(timerIds: string[]): Promise<void>;
  /** Invitations to these identifiers (raw ids) are declined. */
  decline(rawId: string): Promise<void>;
  declines(rawIds: string[]): Promise<boolean[]>;
  /** Starts firing timers; `onTimer` resolves once the timer has acted. */
  start(onTimer: (timer: Timer) => Promise<void>): void;
  /** Stops firing timers on this instance; in memory, forgets every call. */
  stop(): Promise<void>;
}

/**
 * The state in this process: a Map of calls, a timer each, bounded by the simulator's maxCalls.
 * The records are changed in place (the simulator changes one only once it can no longer fail).
 */
export function createMemoryState(): SimulatorState {
  const calls = new Map<string, Versioned>();
  const declining = new Set<string>();
  /** Per call, its pending timers' handles, so that they stop with the call. */
  const handles = new Map<string, Map<string, ReturnType<typeof setTimeout>>>();
  let onTimer: ((timer: Timer) => Promise<void>) | undefined;
  // Call ids in creation order, to find the oldest: a Map's first entry is costly to reach after
  // many deletions from its front (each leaves a hole to skip until the Map is rebuilt).
  let order: string[] = [];
  let head = 0;

  function clearTimers(callLegId: string) {
    const pending = handles.get(callLegId);
    if (!pending) return;
    for (const handle of pending.values()) clearTimeout(handle);
    handles.delete(callLegId);
  }

  return {
    shared: false,
    async get(callLegId) {
      return calls.get(callLegId);
    },
    async put(call, version) {
      const current = calls.get(call.callLegId);
      if ((current?.version ?? 0) !== version) return false;
      if (current) {
        current.call = call;
        current.version++;
      } else {
        calls.set(call.callLegId, { call, version: 1 });
        order.push(call.callLegId);
        // The ids passed over and those of calls already ended are dropped now and then, so that
        // the list stays within a few times the calls kept, in amortised constant time.
        if (head > calls.size || order.length - head > 2 * calls.size + 16) {
          order = order.slice(head).filter((id) => calls.has(id));
          head = 0;
        }
      }
      return true;
    },
    async remove(callLegId, version) {
      if (calls.get(callLegId)?.version !== version) return false;
      calls.delete(callLegId);
      clearTimers(callLegId);
      return true;
    },
    async list() {
      return [...calls.values()].map((entry) => entry.call);
    },
    async count() {
      return calls.size;
    },
    async oldest() {
      while (head < order.length) {
        const id = order[head]!;
        if (calls.has(id)) return id;
        head++;
      }
      return undefined;
    },
    async schedule(timer) {
      const handle = setTimeout(() => {
        const pending = handles.get(timer.callLegId);
        pending?.delete(timer.id);
        if (pending?.size === 0) handles.delete(timer.callLegId);
        void onTimer?.(timer);
      }, Math.max(0, timer.at - Date.now()));
      const pending = handles.get(timer.callLegId);
      if (pending) pending.set(timer.id, handle);
      else handles.set(timer.callLegId, new Map([[timer.id, handle]]));
    },
    async done() {},
    async postpone(timer, ms) {
      await this.schedule({ ...timer, at: Date.now() + ms });
    },
    // A call's timers stop when it is removed.
    async cancel() {},
    async decline(rawId) {
      declining.add(rawId);
    },
    async declines(rawIds) {
      return rawIds.map((id) => declining.has(id));
    },
    start(handler) {
      onTimer = handler;
    },
    async stop() {
      for (const callLegId of [...handles.keys()]) clearTimers(callLegId);
      calls.clear();
      order = [];
      head = 0;
      onTimer = undefined;
    },
  };
}
