import type { Caller } from './auth.ts';
import type { EventName, EventSchemas, OperationId, operations } from '@call-automation/contract';

type Responses<Op extends OperationId> = operations[Op]['responses'];
type JsonBody<R> = R extends { content: { 'application/json': infer Body } } ? Body : undefined;
type Statuses<Op extends OperationId> = keyof Responses<Op> & number;

/**
 * What a handler may answer: one of the statuses the spec documents for its operation, with that
 * status's body. Anything else does not compile.
 */
export type HandlerReply<Op extends OperationId> = {
  [S in Statuses<Op>]: JsonBody<Responses<Op>[S]> extends undefined
    ? { status: S; body?: undefined; headers?: Record<string, string> }
    : { status: S; body: JsonBody<Responses<Op>[S]>; headers?: Record<string, string> };
}[Statuses<Op>];

type PathOf<Op extends OperationId> = operations[Op]['parameters'] extends { path: infer P } ? P : Record<string, never>;
type HeadersOf<Op extends OperationId> = operations[Op]['parameters'] extends { header?: infer H } ? NonNullable<H> : Record<string, never>;
type BodyOf<Op extends OperationId> = operations[Op]['requestBody'] extends { content: { 'application/json': infer B } } ? B : undefined;

/** A handler's validated input: path ids, body and the operation's headers (names in lower case). */
export interface HandlerInput<Op extends OperationId> {
  params: PathOf<Op>;
  body: BodyOf<Op>;
  headers: { [K in keyof HeadersOf<Op> as Lowercase<K & string>]?: HeadersOf<Op>[K] };
}

export type { EventName };
/** The `data` of the event named `Name`, as the spec's webhook types it. */
export type EventData<Name extends EventName> = EventSchemas[Name]['data'];

/** Sends a call's callback events to its callbackUri. */
export interface CallbackEmitter {
  /**
   * Queues an event for the call's callbackUri (registered with `register`): a CloudEvent of
   * the webhook's type (`Microsoft.Communication.<name>`), signed, delivered in order, retried.
   */
  emit<Name extends EventName>(callLegId: string, name: Name, data: EventData<Name>): void;
  /**
   * Records where a call's events go. The stub does it when an operation with callbacks answers
   * its success (createCall); a handler that emits events before it answers calls it first.
   */
  register(callLegId: string, callbackUri: string): void;
  /**
   * Forgets a call that has ended, after its last event was emitted: events already queued are
   * still delivered. Without it, a long-running service would remember every call's callbackUri.
   */
  unregister?(callLegId: string): void;
  /**
   * Resolves once what was registered, emitted and unregistered so far is recorded where every
   * instance sees it (a shared registry and queue); nothing, when it already is. The service waits
   * for it, up to a limit, before it answers: a request sent after that answer, to any instance,
   * then finds the call registered and its events queued behind the earlier ones.
   */
  settled?(): Promise<void> | void;
}

export interface HandlerContext {
  /** Who made the request. */
  caller: Caller;
  /** This request's id, also in the x-ms-request-id header of the answer. */
  requestId: string;
  /** The call's callback events. */
  events: CallbackEmitter;
}

/** The business logic: one function per operation of the spec. */
export type CallAutomationHandlers = {
  [Op in OperationId]: (input: HandlerInput<Op>, context: HandlerContext) => HandlerReply<Op> | Promise<HandlerReply<Op>>;
};
