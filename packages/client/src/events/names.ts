import type { components } from '../generated/openapi.gen.ts';

/** Every callback event, told apart by `type`. */
export type CallAutomationEvent = components['schemas']['CallAutomationEvent'];

/** The events' names, as in `Microsoft.Communication.<Name>`. */
export const eventNames = ['CallLegStateChanged', 'ParticipantsUpdated', 'DtmfReceived', 'PlayAudioResult', 'InviteParticipantResult'] as const;
export type EventName = (typeof eventNames)[number];

/** The CloudEvent `type` of each event. */
export type EventType = CallAutomationEvent['type'];

/** The event with a given name, e.g. `EventOf<'DtmfReceived'>`. */
export type EventOf<Name extends EventName> = Extract<CallAutomationEvent, { type: `Microsoft.Communication.${Name}` }>;

export const eventTypePrefix = 'Microsoft.Communication.';
