import { parseCallbackEvent, CallbackEventError, UnknownEventTypeError } from './parse.ts';
import { CallbackVerificationError, noSecret, verifyCallbackSignature } from './verify.ts';
import { eventNameOfType, type CallAutomationEvent, type EventName, type EventOf } from './names.ts';

/** One function per event you want; the others are acknowledged and ignored. */
export type CallbackEventHandlers = { [Name in EventName]?: (event: EventOf<Name>) => void | Promise<void> };

export interface CallbackHandlerOptions {
  /** The `whsec_…` callback secret, or several while one is rotated. */
  secret: string | readonly string[];
  on: CallbackEventHandlers;
  /** Called with events of a type this client does not know; they are acknowledged. */
  onUnknownEvent?: (type: string, body: unknown) => void | Promise<void>;
  /** How long to remember handled event ids, so that a redelivery runs no handler twice. Default 10 minutes, 10 000 ids. */
  dedupe?: { ttlMs?: number; maxEntries?: number };
}

function answer(status: number, code?: string, message?: string, details?: unknown): Response {
  if (!code) return new Response(null, { status });
  return Response.json({ code, message, ...(details ? { details } : {}) }, { status });
}

/**
 * A web-standard callback endpoint, `(request: Request) => Promise<Response>`, to mount in Hono
 * (`app.post('/callbacks', (c) => handler(c.req.raw))`), a worker, or Node through an adapter.
 * It verifies the signature (401 if it fails), parses the event (400 if malformed), runs your
 * handler for its type once per event id (a redelivery is acknowledged without running it
 * again), and answers 204. A handler that throws answers 500, so that the service retries.
 */
export function createCallbackHandler(options: CallbackHandlerOptions): (request: Request) => Promise<Response> {
  // Refused when made, not on every delivery: no secret verifies anything.
  const secrets = typeof options.secret === 'string' ? [options.secret] : (options.secret ?? []);
  if (!secrets.some(Boolean)) throw new TypeError(noSecret);
  const ttlMs = options.dedupe?.ttlMs ?? 10 * 60_000;
  const maxEntries = options.dedupe?.maxEntries ?? 10_000;
  const handled = new Map<string, number>();
  const inFlight = new Map<string, Promise<Response>>();

  function remember(id: string) {
    const now = Date.now();
    handled.set(id, now + ttlMs);
    for (const [key, expires] of handled) {
      if (handled.size <= maxEntries && expires > now) break;
      handled.delete(key);
    }
  }

  async function dispatch(id: string, rawBody: string): Promise<Response> {
    let event: CallAutomationEvent;
    try {
      event = parseCallbackEvent(rawBody);
    } catch (error) {
      if (error instanceof UnknownEventTypeError) {
        await options.onUnknownEvent?.(error.type, JSON.parse(rawBody));
        remember(id);
        return answer(204);
      }
      if (error instanceof CallbackEventError) return answer(400, 'InvalidEvent', error.message, error.details);
      throw error;
    }
    const name = eventNameOfType.get(event.type)!;
    const handler = options.on[name] as ((e: CallAutomationEvent) => void | Promise<void>) | undefined;
    try {
      await handler?.(event);
    } catch {
      return answer(500, 'HandlerFailed', `The ${name} handler failed; the event will be delivered again.`);
    }
    remember(id);
    return answer(204);
  }

  return async (request: Request): Promise<Response> => {
    if (request.method !== 'POST') {
      return new Response(JSON.stringify({ code: 'MethodNotAllowed', message: 'Callbacks are delivered with POST.' }), {
        status: 405,
        headers: { Allow: 'POST', 'Content-Type': 'application/json' },
      });
    }
    const rawBody = await request.text();
    let id: string;
    try {
      ({ id } = verifyCallbackSignature(rawBody, request.headers, options.secret));
    } catch (error) {
      if (error instanceof CallbackVerificationError) return answer(401, 'InvalidSignature', error.message);
      throw error;
    }
    const expires = handled.get(id);
    if (expires !== undefined && expires > Date.now()) return answer(204);
    const running = inFlight.get(id);
    if (running) return (await running).clone();
    const pending = dispatch(id, rawBody).finally(() => inFlight.delete(id));
    inFlight.set(id, pending);
    return pending;
  };
}
