import type { CheckContext } from '../context.ts';
import type { Operation } from '../contract.ts';

/** Path parameters for an operation: a live call's id when there is one, else made-up ids. */
export function paramsFor(operation: Operation, callLegId?: string, participantId?: string): Record<string, string> {
  return { callId: callLegId ?? 'conformance-no-such-call', participantId: participantId ?? 'conformance-no-such-participant' };
}

/** A valid body for an operation: the spec's example, with URIs the target may contact pointed at the callback URL. */
export function validBody(context: CheckContext, operation: Operation): unknown {
  if (!operation.hasBody) return undefined;
  const body = structuredClone(operation.exampleBody ?? {}) as Record<string, unknown>;
  if ('callbackUri' in body && context.target.callbackUrl) body.callbackUri = context.target.callbackUrl;
  if ('audioFileUri' in body && context.target.callbackUrl) body.audioFileUri = `${context.target.callbackUrl.replace(/\/$/, '')}/audio.wav`;
  return body;
}

/** A live call when the target can be given one (else undefined: checks then use made-up ids). */
export async function liveCall(context: CheckContext): Promise<string | undefined> {
  return context.target.callbackUrl ? context.createCall() : undefined;
}
