import { ApiError, type CallAutomationHandlers, type CallbackEmitter, type CommunicationIdentifier, type EventData, type EventName } from '@call-automation/server';
import { createBook, type Behaviour } from './scenarios.ts';
import { createMemoryState, type CallRecord, type CallState, type Hold, type Participant, type PlayRecord, type SimulatorState, type Timer } from './state.ts';

type Tone = EventData<'DtmfReceived'>['toneInfo']['tone'];

export interface SimulatorOptions {
  /** How long targets and invited participants take to answer. Default 200 ms. */
  answerDelayMs?: number;
  /** How long one play of an audio file lasts. Default 1 s. */
  playDurationMs?: number;
  /**
   * The most calls kept at once. When a new call would pass it, the service ends the oldest one
   * (terminating, then terminated, as a hang-up would), so that the calls held stay bounded
   * however long or heavy the run. Default 10 000.
   */
  maxCalls?: number;
  /**
   * How long an identifier that does not answer rings before the call or invitation fails (408).
   * Default 30 s.
   */
  ringTimeoutMs?: number;
  /**
   * What identifiers do when called or invited, by E.164 number or raw id (see `loadScenarios`),
   * over the test numbers (`testNumbers`): decline, be busy, not answer, press keys, hang up.
   */
  scenarios?: Record<string, Behaviour>;
  /** Where calls and timers are kept: in this process by default, or `createRedisState(…)` for many instances. */
  state?: SimulatorState;
  /**
   * Where the events of timers go (targets answering, plays ending). Default: the emitter of the
   * requests' context. A simulator on shared state passes the delivery: a timer may fire on an
   * instance that has served no request yet.
   */
  events?: CallbackEmitter;
  /** Where a timer that failed (its state unreachable) is reported. Default console.warn. */
  log?: (line: string) => void;
}

/** The string form of an identifier, as Communication Services writes it. */
export function rawIdOf(identifier: CommunicationIdentifier): string {
  if (identifier.rawId) return identifier.rawId;
  if ('communicationUser' in identifier) return identifier.communicationUser.id;
  if ('phoneNumber' in identifier) return `4:${identifier.phoneNumber.value}`;
  return `8:orgid:${identifier.microsoftTeamsUser.userId}`;
}

const success = { code: 200, subcode: 0, message: 'Action completed successfully.' };
const cancelled = { code: 400, subcode: 8508, message: 'Action failed, the operation was cancelled.' };
/** Why an invitation failed, with the SIP codes Communication Services reports. */
const failures = {
  decline: { code: 603, subcode: 0, message: 'The participant declined the invitation.' },
  busy: { code: 486, subcode: 0, message: 'The participant is busy.' },
  noAnswer: { code: 408, subcode: 0, message: 'The participant did not answer.' },
};
type Outcome = NonNullable<Behaviour['outcome']>;

/** What a change to a call does once it is written: events to emit, whether the call ended. */
interface Effects {
  events: Array<{ name: EventName; data: EventData<EventName> }>;
  timers: Timer[];
  ended: boolean;
  /** The timers an ended call still had: they are called off once it is gone. */
  cancelled: string[];
}

/** A call's record, copied so that a change that loses its write leaves nothing changed. */
function copy(call: CallRecord): CallRecord {
  return { ...call, participants: [...call.participants], plays: [...call.plays], timers: [...call.timers] };
}

/** How long after its time a timer whose call cannot be found is dropped. */
const orphanAfterMs = 10_000;

/** How often a change is tried again when other writes to its call keep coming first. */
const maxConflicts = 50;

/**
 * On shared state, how long a write holds its call at most for its events to be queued: should
 * the instance stall or die meanwhile, the hold lapses, and other instances change the call.
 */
const holdMs = 5_000;

/**
 * How long a change waits for its events to be queued before it goes on (and its request is
 * answered) anyway, as the service's answer does (`settleTimeoutMs`): the hold is then left to
 * lapse, giving the events the rest of its time to be queued first.
 */
const settleWaitMs = 2_000;

/** Whether `promise` settled within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([promise.then(() => true, () => true), new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)))]);
  clearTimeout(timer);
  return settled;
}

/**
 * The reference implementation: calls run through their states with timers, emitting the events a
 * real service would. Its state is in memory, or shared (Redis) by several instances, any of which
 * serves any call and fires any call's timers. `handlers` plug into the server stub; the other
 * methods are the control surface that makes participants act (press keys, leave, decline).
 */
export function createSimulator(options: SimulatorOptions = {}) {
  const answerDelay = options.answerDelayMs ?? 200;
  const playDuration = options.playDurationMs ?? 1000;
  const maxCalls = options.maxCalls ?? 10_000;
  if (!Number.isInteger(maxCalls) || maxCalls < 1) throw new RangeError(`maxCalls must be a whole number of at least 1, not ${maxCalls}.`);
  const ringTimeout = options.ringTimeoutMs ?? 30_000;
  const behaviourOf = createBook(options.scenarios);
  const state = options.state ?? createMemoryState();
  const log = options.log ?? ((line: string) => console.warn(line));
  let events = options.events;

  function emit<Name extends EventName>(call: CallRecord, fx: Effects, name: Name, data: EventData<Name>) {
    if (name === 'ParticipantsUpdated' && !call.participantsUpdated) return;
    if (name === 'DtmfReceived' && !call.dtmfReceived) return;
    fx.events.push({ name, data });
  }

  function setState(call: CallRecord, fx: Effects, callState: CallState) {
    call.state = callState;
    emit(call, fx, 'CallLegStateChanged', { callLegId: call.callLegId, callState });
  }

  function participantsChanged(call: CallRecord, fx: Effects) {
    emit(call, fx, 'ParticipantsUpdated', { callLegId: call.callLegId, participants: [...call.participants] });
  }

  function later(call: CallRecord, fx: Effects, ms: number, what: DistributiveOmit<Timer, 'id' | 'callLegId' | 'at'>) {
    const timer = { ...what, id: crypto.randomUUID(), callLegId: call.callLegId, at: Date.now() + ms } as Timer;
    call.timers.push(timer.id);
    fx.timers.push(timer);
  }

  function join(call: CallRecord, identifier: CommunicationIdentifier): Participant {
    const participant = { participantId: crypto.randomUUID(), identifier, isMuted: false };
    call.participants.push(participant);
    return participant;
  }

  function finishPlay(call: CallRecord, fx: Effects, play: PlayRecord, status: 'completed' | 'failed', resultInfo: typeof success) {
    call.plays.splice(call.plays.indexOf(play), 1);
    emit(call, fx, 'PlayAudioResult', { callLegId: call.callLegId, operationContext: play.operationContext, status, resultInfo });
  }

  function endCall(call: CallRecord, fx: Effects) {
    fx.ended = true;
    fx.cancelled = call.timers;
    call.timers = [];
    setState(call, fx, 'terminating');
    setState(call, fx, 'terminated');
  }

  /**
   * When and how each identifier settles (answers, or fails), grouped: those that settle alike at
   * the same time do so together. Identifiers declined through the control surface decline.
   */
  async function settling(identifiers: CommunicationIdentifier[]): Promise<Array<{ ms: number; outcome: Outcome; identifiers: CommunicationIdentifier[] }>> {
    const declined = await state.declines(identifiers.map(rawIdOf));
    const groups = new Map<string, { ms: number; outcome: Outcome; identifiers: CommunicationIdentifier[] }>();
    identifiers.forEach((identifier, i) => {
      const behaviour = behaviourOf(identifier);
      const outcome: Outcome = declined[i] ? 'decline' : (behaviour?.outcome ?? 'answer');
      const ms = outcome === 'noAnswer' ? ringTimeout : (behaviour?.ringMs ?? answerDelay);
      const key = `${outcome}:${ms}`;
      const group = groups.get(key);
      if (group) group.identifiers.push(identifier);
      else groups.set(key, { ms, outcome, identifiers: [identifier] });
    });
    return [...groups.values()];
  }

  /** Participants who answered join the call, and their scripted acts (keys, hanging up) are timed from now. */
  function answer(call: CallRecord, fx: Effects, identifiers: CommunicationIdentifier[]): Participant[] {
    return identifiers.map((identifier) => {
      const participant = join(call, identifier);
      const behaviour = behaviourOf(identifier);
      for (const { afterMs, tone } of behaviour?.tones ?? []) later(call, fx, afterMs, { kind: 'tone', participantId: participant.participantId, tone });
      if (behaviour?.leaveAfterMs !== undefined) later(call, fx, behaviour.leaveAfterMs, { kind: 'leave', participantId: participant.participantId });
      return participant;
    });
  }

  /** A participant hangs up their side; a call with no one left ends. False when they were not in the call. */
  function leaves(call: CallRecord, fx: Effects, participantId: string): boolean {
    const index = call.participants.findIndex((p) => p.participantId === participantId);
    if (index === -1) return false;
    call.participants.splice(index, 1);
    participantsChanged(call, fx);
    if (call.participants.length === 0 && call.ringing === 0) endCall(call, fx);
    return true;
  }

  /** A failure of the shared state, answered as the API's 503 (the request may be sent again). */
  function unavailable(error: unknown): never {
    if (error instanceof ApiError) throw error;
    throw new ApiError(503, 'ServiceUnavailable', `The simulator's state cannot be reached now; retry after 1 second. (${(error as Error).message})`, { headers: { 'Retry-After': '1' } });
  }

  /**
   * Runs `change` on the call's current record and writes it, if nothing else wrote the call
   * meanwhile (else reads it again and retries); then schedules its timers, and emits its events
   * in order. Its timers are scheduled before the write: a timer of a write that lost finds its
   * id in no record, and does nothing. A call held by another instance's write (shared state) is
   * read again once its events are queued: a change's events follow those of the change before.
   */
  async function update<R>(callLegId: string, change: (call: CallRecord, fx: Effects) => R, missing: () => R): Promise<R> {
    for (let conflicts = 0; ; ) {
      const found = await state.get(callLegId);
      if (!found) return missing();
      if (found.heldMs) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(found.heldMs!, 20)));
        continue;
      }
      const call = copy(found.call);
      const fx: Effects = { events: [], timers: [], ended: false, cancelled: [] };
      const result = change(call, fx);
      await Promise.all(fx.timers.map((timer) => state.schedule(timer)));
      const hold = holdFor(fx);
      if (await (fx.ended ? state.remove(callLegId, found.version) : state.put(call, found.version, hold))) {
        await commit(callLegId, fx, hold);
        return result;
      }
      if (++conflicts > maxConflicts) throw new Error(`Call ${callLegId} is changed too often at once to be changed now.`);
    }
  }

  /**
   * On shared state, the hold a write with events puts on its call: another instance's change
   * read before those events are queued would have its own queued ahead of them. A call removed
   * needs none: no change of it comes after.
   */
  function holdFor(fx: Effects): Hold | undefined {
    return state.shared && fx.events.length > 0 && !fx.ended ? { token: crypto.randomUUID(), ms: holdMs } : undefined;
  }

  /** Emits a written change's events; with a hold, waits for them to be queued where every instance sees them, then releases the call. */
  async function commit(callLegId: string, fx: Effects, hold: Hold | undefined) {
    flush(callLegId, fx);
    if (!hold) return;
    const settling = events?.settled?.();
    if (settling && !(await within(settling, settleWaitMs))) return;
    // Not released (Redis failing): the hold lapses.
    await state.release?.(callLegId, hold.token).catch(() => {});
  }

  function flush(callLegId: string, fx: Effects) {
    for (const { name, data } of fx.events) events?.emit(callLegId, name, data);
    // The call's last event: its callbackUri can be forgotten once that is sent.
    if (fx.ended) events?.unregister?.(callLegId);
    // A timer not called off (the state failing now) finds no call when it fires, and is dropped then.
    if (fx.cancelled.length) void state.cancel(fx.cancelled).catch(() => {});
  }

  /** A call that exists and has not ended, or a 404. */
  function notFound(callId: string): never {
    throw new ApiError(404, 'CallNotFound', `No call with id ${callId}.`, { target: 'callId' });
  }

  /** Changes a call named by a request: a 404 when it does not exist, a 503 when the state cannot be reached. */
  function request<R>(callId: string, change: (call: CallRecord, fx: Effects) => R): Promise<R> {
    return update(callId, change, () => notFound(callId)).catch(unavailable);
  }

  async function end(callLegId: string) {
    await update(callLegId, (call, fx) => endCall(call, fx), () => undefined);
  }

  /** What a timer does when it fires: nothing, when its call ended or it already ran. */
  async function fire(timer: Timer) {
    try {
      const outcome = await update<'gone' | undefined>(
        timer.callLegId,
        (call, fx): undefined => {
          const index = call.timers.indexOf(timer.id);
          if (index === -1) return;
          call.timers.splice(index, 1);
          if (timer.kind === 'answer') {
            call.ringing -= timer.targets.length;
            answer(call, fx, timer.targets);
            if (call.state === 'establishing') setState(call, fx, 'established');
            participantsChanged(call, fx);
          } else if (timer.kind === 'unanswered') {
            call.ringing -= timer.targets.length;
            // No target answered: the call could not be established.
            if (call.ringing === 0 && call.participants.length === 0) endCall(call, fx);
          } else if (timer.kind === 'play') {
            const play = call.plays.find((p) => p.id === timer.playId);
            if (!play) return;
            if (play.loop) later(call, fx, playDuration, { kind: 'play', playId: play.id });
            else finishPlay(call, fx, play, 'completed', success);
          } else if (timer.kind === 'invite') {
            const { participants, operationContext } = timer;
            if (timer.outcome === 'answer') {
              answer(call, fx, participants);
              emit(call, fx, 'InviteParticipantResult', { callLegId: call.callLegId, operationContext, status: 'completed', resultInfo: success, participants });
              participantsChanged(call, fx);
            } else {
              emit(call, fx, 'InviteParticipantResult', { callLegId: call.callLegId, operationContext, status: 'failed', resultInfo: failures[timer.outcome], participants });
            }
          } else if (timer.kind === 'tone') {
            if (!call.participants.some((p) => p.participantId === timer.participantId)) return;
            emit(call, fx, 'DtmfReceived', { callLegId: call.callLegId, toneInfo: { sequenceId: call.toneSequence++, tone: timer.tone } });
          } else {
            leaves(call, fx, timer.participantId);
          }
        },
        () => 'gone',
      );
      // A call not found may be one whose first write is still on its way (a timer due at once,
      // the state slow): the timer is tried again a little later, until it is clearly an orphan.
      if (outcome === 'gone' && Date.now() - timer.at < orphanAfterMs) return await state.postpone(timer, 100);
      await state.done(timer);
    } catch (error) {
      // Kept where it is: on shared state it fires again (on any instance) once its claim lapses.
      log(`Timer ${timer.kind} of call ${timer.callLegId} did not run: ${(error as Error).message}`);
    }
  }
  state.start(fire);

  const handlers: CallAutomationHandlers = {
    async createCall({ body }, context) {
      events = options.events ?? context.events;
      const callLegId = crypto.randomUUID();
      const call: CallRecord = {
        callLegId,
        state: 'idle',
        participantsUpdated: body.requestedCallEvents?.includes('participantsUpdated') ?? false,
        dtmfReceived: body.requestedCallEvents?.includes('dtmfReceived') ?? false,
        participants: [],
        plays: [],
        timers: [],
        toneSequence: 0,
        ringing: body.targets.length,
      };
      try {
        if ((await state.count()) >= maxCalls) {
          const first = await state.oldest();
          if (first) await end(first);
        }
        const fx: Effects = { events: [], timers: [], ended: false, cancelled: [] };
        setState(call, fx, 'establishing');
        for (const { ms, outcome, identifiers } of await settling(body.targets)) later(call, fx, ms, { kind: outcome === 'answer' ? 'answer' : 'unanswered', targets: identifiers });
        await Promise.all(fx.timers.map((timer) => state.schedule(timer)));
        // Registered before its first event is emitted: the event's callbackUri is looked up in order.
        context.events.register(callLegId, body.callbackUri);
        const hold = holdFor(fx);
        await state.put(call, 0, hold);
        await commit(callLegId, fx, hold);
      } catch (error) {
        unavailable(error);
      }
      return { status: 200, body: { callLegId } };
    },

    async hangupCall({ params }, context) {
      events = options.events ?? context.events;
      await request(params.callId, (call, fx) => endCall(call, fx));
      return { status: 202 };
    },

    async playAudio({ params, body }, context) {
      events = options.events ?? context.events;
      const id = crypto.randomUUID();
      const queued = await request(params.callId, (call, fx) => {
        const queued = call.plays.length > 0;
        // A play waits for the ones before it; the simulator never downloads the file.
        later(call, fx, playDuration * (call.plays.length + 1), { kind: 'play', playId: id });
        call.plays.push({ id, operationContext: body.operationContext, loop: body.loop ?? false });
        return queued;
      });
      return {
        status: 202,
        body: { id, status: queued ? 'notStarted' : 'running', operationContext: body.operationContext, resultInfo: { code: 202, subcode: 0, message: 'Action is accepted.' } },
      };
    },

    async cancelMediaProcessing({ params, body }, context) {
      events = options.events ?? context.events;
      await request(params.callId, (call, fx) => {
        for (const play of [...call.plays]) finishPlay(call, fx, play, 'failed', cancelled);
      });
      return { status: 202, body: { id: crypto.randomUUID(), status: 'completed', operationContext: body.operationContext, resultInfo: success } };
    },

    async inviteParticipants({ params, body }, context) {
      events = options.events ?? context.events;
      const groups = await settling(body.participants).catch(unavailable);
      await request(params.callId, (call, fx) => {
        for (const { ms, outcome, identifiers } of groups) later(call, fx, ms, { kind: 'invite', participants: identifiers, operationContext: body.operationContext, outcome });
      });
      return { status: 202 };
    },

    async removeParticipant({ params }, context) {
      events = options.events ?? context.events;
      await request(params.callId, (call, fx) => {
        const index = call.participants.findIndex((p) => p.participantId === params.participantId);
        if (index === -1) {
          throw new ApiError(404, 'ParticipantNotFound', `No participant with id ${params.participantId} in call ${call.callLegId}.`, { target: 'participantId' });
        }
        call.participants.splice(index, 1);
        participantsChanged(call, fx);
      });
      return { status: 202 };
    },
  };

  return {
    handlers,
    /** The calls in progress, with their participants (on shared state: every instance's). */
    async listCalls() {
      try {
        return (await state.list()).map((call) => ({ callLegId: call.callLegId, state: call.state, participants: [...call.participants], plays: [...call.plays] }));
      } catch (error) {
        return unavailable(error);
      }
    },
    /** A participant presses DTMF keys: one DtmfReceived per tone, when the call subscribed. */
    async pressTones(callLegId: string, tones: readonly Tone[]) {
      await request(callLegId, (call, fx) => {
        for (const tone of tones) emit(call, fx, 'DtmfReceived', { callLegId, toneInfo: { sequenceId: call.toneSequence++, tone } });
      });
    },
    /** Ends a call, as the application's hang-up would. */
    async hangUp(callLegId: string) {
      await request(callLegId, (call, fx) => endCall(call, fx));
    },
    /** A participant hangs up their side; when no one is left, the call ends. */
    async leave(callLegId: string, participantId: string) {
      await request(callLegId, (call, fx) => {
        if (!call.participants.some((p) => p.participantId === participantId)) throw new ApiError(404, 'ParticipantNotFound', `No participant with id ${participantId}.`);
        leaves(call, fx, participantId);
      });
    },
    /** Calls and invitations to this identifier (its raw id, `4:+1…` for a number) will be declined. */
    async declineInvitations(rawId: string) {
      await state.decline(rawId).catch(unavailable);
    },
    /**
     * Stops firing timers here: nothing more is emitted after this. In memory every call is
     * forgotten; on shared state the calls stay, and other instances fire their timers.
     */
    async stop() {
      await state.stop();
    },
  };
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export type Simulator = ReturnType<typeof createSimulator>;
