import { ApiError, type CallAutomationHandlers, type CallbackEmitter, type CommunicationIdentifier, type EventData, type EventName } from '@call-automation/server';

type Tone = EventData<'DtmfReceived'>['toneInfo']['tone'];
type CallState = EventData<'CallLegStateChanged'>['callState'];

export interface SimulatorOptions {
  /** How long targets and invited participants take to answer. Default 200 ms. */
  answerDelayMs?: number;
  /** How long one play of an audio file lasts. Default 1 s. */
  playDurationMs?: number;
  /**
   * The most calls kept in memory at once. When a new call would pass it, the service ends the
   * oldest one (terminating, then terminated, as a hang-up would), so that the calls held in
   * memory stay bounded however long or heavy the run. Default 10 000.
   */
  maxCalls?: number;
}

interface Participant {
  participantId: string;
  identifier: CommunicationIdentifier;
  isMuted: boolean;
}

interface Play {
  id: string;
  operationContext?: string;
  loop: boolean;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * A call in memory. Thousands may be held at once, each for as long as the call lasts, so a call
 * carries few objects: arrays for its (few) participants and plays, and a set of timers only
 * while some are pending.
 */
interface Call {
  callLegId: string;
  state: CallState;
  /** Whether the call asked for ParticipantsUpdated and DtmfReceived. */
  participantsUpdated: boolean;
  dtmfReceived: boolean;
  participants: Participant[];
  /** Plays in the order they were asked for; the first is the one running. */
  plays: Play[];
  /** Until the targets answer. */
  answering: ReturnType<typeof setTimeout> | undefined;
  /** The other timers pending (plays, invitations). */
  timers: Set<ReturnType<typeof setTimeout>> | undefined;
  toneSequence: number;
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

/**
 * The reference implementation: calls in memory, run through their states with timers, emitting
 * the events a real service would. `handlers` plug into the server stub; the other methods are
 * the control surface that makes participants act (press keys, leave, decline).
 */
export function createSimulator(options: SimulatorOptions = {}) {
  const answerDelay = options.answerDelayMs ?? 200;
  const playDuration = options.playDurationMs ?? 1000;
  const maxCalls = options.maxCalls ?? 10_000;
  if (!Number.isInteger(maxCalls) || maxCalls < 1) throw new RangeError(`maxCalls must be a whole number of at least 1, not ${maxCalls}.`);
  const calls = new Map<string, Call>();
  const declining = new Set<string>();
  let events: CallbackEmitter | undefined;

  function emit<Name extends EventName>(call: Call, name: Name, data: EventData<Name>) {
    if (name === 'ParticipantsUpdated' && !call.participantsUpdated) return;
    if (name === 'DtmfReceived' && !call.dtmfReceived) return;
    events?.emit(call.callLegId, name, data);
  }

  function later(call: Call, ms: number, run: () => void) {
    const timer = setTimeout(() => {
      forget(call, timer);
      run();
    }, ms);
    (call.timers ??= new Set()).add(timer);
    return timer;
  }

  function forget(call: Call, timer: ReturnType<typeof setTimeout>) {
    call.timers?.delete(timer);
    if (call.timers?.size === 0) call.timers = undefined;
  }

  function setState(call: Call, state: CallState) {
    call.state = state;
    emit(call, 'CallLegStateChanged', { callLegId: call.callLegId, callState: state });
  }

  function participantsChanged(call: Call) {
    emit(call, 'ParticipantsUpdated', { callLegId: call.callLegId, participants: [...call.participants] });
  }

  function join(call: Call, identifier: CommunicationIdentifier): Participant {
    const participant = { participantId: crypto.randomUUID(), identifier, isMuted: false };
    call.participants.push(participant);
    return participant;
  }

  /** Whether the participant was in the call (and is no more). */
  function removeParticipant(call: Call, participantId: string): boolean {
    const index = call.participants.findIndex((p) => p.participantId === participantId);
    if (index === -1) return false;
    call.participants.splice(index, 1);
    return true;
  }

  /** A call that exists and has not ended, or a 404. */
  function live(callId: string): Call {
    const call = calls.get(callId);
    if (!call) throw new ApiError(404, 'CallNotFound', `No call with id ${callId}.`, { target: 'callId' });
    return call;
  }

  function finishPlay(call: Call, play: Play, status: 'completed' | 'failed', resultInfo: typeof success) {
    clearTimeout(play.timer);
    forget(call, play.timer);
    call.plays.splice(call.plays.indexOf(play), 1);
    emit(call, 'PlayAudioResult', { callLegId: call.callLegId, operationContext: play.operationContext, status, resultInfo });
  }

  // Call ids in creation order, to end the oldest: a Map's first entry is costly to reach after
  // many deletions from its front (each leaves a hole to skip until the Map is rebuilt).
  let order: string[] = [];
  let head = 0;

  function track(callLegId: string) {
    order.push(callLegId);
    // The ids passed over and those of calls already ended are dropped now and then, so that the
    // list stays within a few times the calls kept, in amortised constant time.
    if (head > maxCalls || order.length - head > 2 * maxCalls) {
      order = order.slice(head).filter((id) => calls.has(id));
      head = 0;
    }
  }

  function oldest(): Call | undefined {
    while (head < order.length) {
      const call = calls.get(order[head++]!);
      if (call) return call;
    }
    return undefined;
  }

  /** Ends a call: its operations answer 404 from now on; terminating, then terminated, go out. */
  function end(call: Call) {
    calls.delete(call.callLegId);
    clearTimeout(call.answering);
    for (const timer of call.timers ?? []) clearTimeout(timer);
    call.timers = undefined;
    setState(call, 'terminating');
    setState(call, 'terminated');
    // The call's last event: its callbackUri can be forgotten once that is sent.
    events?.unregister?.(call.callLegId);
  }

  const handlers: CallAutomationHandlers = {
    createCall({ body }, context) {
      events = context.events;
      const callLegId = crypto.randomUUID();
      const call: Call = {
        callLegId,
        state: 'idle',
        participantsUpdated: body.requestedCallEvents?.includes('participantsUpdated') ?? false,
        dtmfReceived: body.requestedCallEvents?.includes('dtmfReceived') ?? false,
        participants: [],
        plays: [],
        answering: undefined,
        timers: undefined,
        toneSequence: 0,
      };
      if (calls.size >= maxCalls) {
        const first = oldest();
        if (first) end(first);
      }
      calls.set(callLegId, call);
      track(callLegId);
      context.events.register(callLegId, body.callbackUri);
      setState(call, 'establishing');
      call.answering = setTimeout(() => {
        call.answering = undefined;
        for (const target of body.targets) join(call, target);
        setState(call, 'established');
        participantsChanged(call);
      }, answerDelay);
      return { status: 200, body: { callLegId } };
    },

    hangupCall({ params }) {
      end(live(params.callId));
      return { status: 202 };
    },

    playAudio({ params, body }) {
      const call = live(params.callId);
      const id = crypto.randomUUID();
      const queued = call.plays.length > 0;
      const play: Play = { id, operationContext: body.operationContext, loop: body.loop ?? false, timer: undefined as never };
      const schedule = (ms: number) => {
        play.timer = later(call, ms, () => (play.loop ? schedule(playDuration) : finishPlay(call, play, 'completed', success)));
      };
      // A play waits for the ones before it; the simulator never downloads the file.
      schedule(playDuration * (call.plays.length + 1));
      call.plays.push(play);
      return {
        status: 202,
        body: { id, status: queued ? 'notStarted' : 'running', operationContext: body.operationContext, resultInfo: { code: 202, subcode: 0, message: 'Action is accepted.' } },
      };
    },

    cancelMediaProcessing({ params, body }) {
      const call = live(params.callId);
      for (const play of [...call.plays]) finishPlay(call, play, 'failed', cancelled);
      return { status: 202, body: { id: crypto.randomUUID(), status: 'completed', operationContext: body.operationContext, resultInfo: success } };
    },

    inviteParticipants({ params, body }) {
      const call = live(params.callId);
      later(call, answerDelay, () => {
        const declined = body.participants.filter((p) => declining.has(rawIdOf(p)));
        const joining = body.participants.filter((p) => !declining.has(rawIdOf(p)));
        for (const identifier of joining) join(call, identifier);
        if (joining.length) {
          emit(call, 'InviteParticipantResult', { callLegId: call.callLegId, operationContext: body.operationContext, status: 'completed', resultInfo: success, participants: joining });
          participantsChanged(call);
        }
        if (declined.length) {
          emit(call, 'InviteParticipantResult', {
            callLegId: call.callLegId,
            operationContext: body.operationContext,
            status: 'failed',
            resultInfo: { code: 603, subcode: 0, message: 'The participant declined the invitation.' },
            participants: declined,
          });
        }
      });
      return { status: 202 };
    },

    removeParticipant({ params }) {
      const call = live(params.callId);
      if (!removeParticipant(call, params.participantId)) {
        throw new ApiError(404, 'ParticipantNotFound', `No participant with id ${params.participantId} in call ${call.callLegId}.`, { target: 'participantId' });
      }
      participantsChanged(call);
      return { status: 202 };
    },
  };

  return {
    handlers,
    /** The calls in progress, with their participants. */
    listCalls() {
      return [...calls.values()].map((call) => ({ callLegId: call.callLegId, state: call.state, participants: [...call.participants] }));
    },
    /** A participant presses DTMF keys: one DtmfReceived per tone, when the call subscribed. */
    pressTones(callLegId: string, tones: readonly Tone[]) {
      const call = live(callLegId);
      for (const tone of tones) emit(call, 'DtmfReceived', { callLegId, toneInfo: { sequenceId: call.toneSequence++, tone } });
    },
    /** A participant hangs up their side. */
    leave(callLegId: string, participantId: string) {
      const call = live(callLegId);
      if (!removeParticipant(call, participantId)) throw new ApiError(404, 'ParticipantNotFound', `No participant with id ${participantId}.`);
      participantsChanged(call);
    },
    /** Invitations to this identifier (its raw id, `4:+1…` for a number) will be declined. */
    declineInvitations(rawId: string) {
      declining.add(rawId);
    },
    /** Stops every call's timers (for shutdown): nothing more is emitted after this. */
    stop() {
      for (const call of calls.values()) {
        clearTimeout(call.answering);
        for (const timer of call.timers ?? []) clearTimeout(timer);
      }
      calls.clear();
      order = [];
      head = 0;
    },
  };
}

export type Simulator = ReturnType<typeof createSimulator>;
