import { eventTable, type Validator } from '@call-automation/contract';
import * as validators from '@call-automation/contract/event-validators';
import { eventNameOfType, type CallAutomationEvent } from './names.ts';

export interface EventProblem {
  /** A JSON pointer into the event. */
  target: string;
  message: string;
}

/** A delivery whose body is not a well-formed event of this API. */
export class CallbackEventError extends Error {
  override readonly name: string = 'CallbackEventError';
  constructor(
    message: string,
    readonly details: EventProblem[] = [],
  ) {
    super(details.length ? `${message}: ${details.map((d) => `${d.target || '/'} ${d.message}`).join('; ')}` : message);
  }
}

/** An event of a type this version of the API does not know (perhaps from a newer service). */
export class UnknownEventTypeError extends CallbackEventError {
  override readonly name = 'UnknownEventTypeError';
  constructor(readonly type: string) {
    super(`Unknown event type "${type}"; this client knows ${[...eventNameOfType.keys()].join(', ')}.`);
  }
}

const validatorNamed = validators as unknown as Record<string, Validator>;

/**
 * Parses a callback delivery's body (the raw text, or JSON already parsed) into one of the API's
 * events, checked against its schema in the spec. Throws a CallbackEventError naming every
 * problem, or an UnknownEventTypeError for a type it does not know.
 */
export function parseCallbackEvent(body: string | unknown): CallAutomationEvent {
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch (error) {
      throw new CallbackEventError(`The event is not JSON (${(error as Error).message})`);
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new CallbackEventError('The event is not a JSON object');
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') throw new CallbackEventError('The event has no type', [{ target: '/type', message: 'must be a string' }]);
  const name = eventNameOfType.get(type);
  if (!name) throw new UnknownEventTypeError(type);
  const validate = validatorNamed[eventTable[name].validator]!;
  if (!validate(value)) {
    const details = (validate.errors ?? []).map((e) => {
      const property = (e.params.missingProperty ?? e.params.additionalProperty) as string | undefined;
      return { target: property === undefined ? e.instancePath : `${e.instancePath}/${property}`, message: e.message ?? 'is invalid' };
    });
    throw new CallbackEventError(`The ${name} event does not match its schema`, details);
  }
  return value as CallAutomationEvent;
}
