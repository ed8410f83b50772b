export { verifyCallbackSignature, CallbackVerificationError } from './verify.ts';
export type { HeadersLike, VerificationFailure } from './verify.ts';
export { parseCallbackEvent, CallbackEventError, UnknownEventTypeError } from './parse.ts';
export type { EventProblem } from './parse.ts';
export { createCallbackHandler } from './handler.ts';
export type { CallbackEventHandlers, CallbackHandlerOptions } from './handler.ts';
export { eventNameOfType, eventNames } from './names.ts';
export type { CallAutomationEvent, EventName, EventOf, EventType } from './names.ts';
export type { EventSchemas } from '@call-automation/contract';
