import type { components, OperationId, operations } from '@call-automation/contract';

export type CommunicationError = components['schemas']['CommunicationError'];
export type { OperationId };

type Responses<Op extends OperationId> = operations[Op]['responses'];
type JsonBody<R> = R extends { content: { 'application/json': infer Body } } ? Body : undefined;
type SuccessStatus = 200 | 201 | 202 | 204;

/** The statuses the spec documents for an operation. */
export type StatusOf<Op extends OperationId> = keyof Responses<Op> & number;

/** The body the spec gives an operation's answer with status `S`. */
export type BodyOf<Op extends OperationId, S extends StatusOf<Op>> = JsonBody<Responses<Op>[S]>;

/** What a successful call answers: the body of the operation's 2xx response (undefined when it has none). */
export type DataOf<Op extends OperationId> = { [S in StatusOf<Op>]: S extends SuccessStatus ? BodyOf<Op, S> : never }[StatusOf<Op>];

/**
 * The result of an operation, as openapi-fetch gives it: `data` on success, `error` (the spec's error
 * body) otherwise, never both, and the `response`. An HTTP error is a result, not an exception;
 * a network error or an abort throws.
 */
export type OperationResult<Op extends OperationId> = Op extends OperationId
  ? (
      | { data: DataOf<Op>; error?: never }
      | { data?: never; error: CommunicationError }
    ) & {
      response: Response;
      /** The operation that was called. */
      operation: Op;
    }
  : never;

/** A result narrowed to one documented status. */
export type ResultWithStatus<Op extends OperationId, S extends StatusOf<Op>> = OperationResult<Op> &
  (S extends SuccessStatus ? { data: BodyOf<Op, S>; error?: never } : { data?: never; error: BodyOf<Op, S> }) & { response: { status: S } };

/**
 * Narrows a result by its status code, to one the spec documents for its operation:
 * `if (hasStatus(result, 404)) result.error.code`.
 */
export function hasStatus<Op extends OperationId, S extends StatusOf<Op>>(result: OperationResult<Op>, status: S): result is ResultWithStatus<Op, S> {
  return result.response.status === status;
}

/**
 * The error body of a failed response: the service's CommunicationError when it sent one, else
 * one made here that says what came back (a proxy's HTML page, an empty 502, …).
 */
export function toCommunicationError(body: unknown, response: Response): CommunicationError {
  if (body && typeof body === 'object' && typeof (body as CommunicationError).code === 'string' && typeof (body as CommunicationError).message === 'string') {
    return body as CommunicationError;
  }
  const text = (typeof body === 'string' ? body.trim() : body === undefined ? '' : JSON.stringify(body)).slice(0, 200);
  // HTTP/2 answers have no status text.
  const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
  return { code: `Http${response.status}`, message: text ? `${status} without an error body: ${text}` : `${status} without a body` };
}
