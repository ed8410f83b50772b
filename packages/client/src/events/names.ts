import { eventTable, type EventName, type EventSchemas } from '@call-automation/contract';

export type { EventName };

/** Every callback event, told apart by `type`. */
export type CallAutomationEvent = EventSchemas[EventName];

/** The events' names, as the spec's webhooks name them. */
export const eventNames = Object.keys(eventTable) as EventName[];

/** The CloudEvent `type` of each event. */
export type EventType = CallAutomationEvent['type'];

/** The event with a given name, e.g. `EventOf<'DtmfReceived'>`. */
export type EventOf<Name extends EventName> = EventSchemas[Name];

/** The name of the event sent with a CloudEvent `type`. */
export const eventNameOfType: ReadonlyMap<string, EventName> = new Map(Object.values(eventTable).map((event) => [event.type, event.name as EventName]));
