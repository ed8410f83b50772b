import type { CheckContext } from '../context.ts';
import type { Operation } from '../contract.ts';

/** Path parameters for an operation: a live call's id in the parameter it fills, made-up ids for the rest. */
export function paramsFor(context: CheckContext, operation: Operation, callId?: string): Record<string, string> {
  return context.paramsFor(operation, callId === undefined ? {} : { [context.contract.creator().linkedParam!]: callId });
}

/** A valid body for an operation: the spec's example, with URIs the target may contact pointed at the callback URL. */
export function validBody(context: CheckContext, operation: Operation): unknown {
  return context.validBody(operation);
}

/** A live call when the target can be given one (else undefined: checks then use made-up ids). */
export async function liveCall(context: CheckContext): Promise<string | undefined> {
  return context.target.callbackUrl ? context.createCall() : undefined;
}

/**
 * The operations on a call that a check can send as the contract means them: those whose every
 * path parameter takes an id some answer gives. The others (removeParticipant takes a
 * participantId, which no answer of the API gives) are noted in the check's result, with why:
 * a made-up id would only test a 404.
 */
export function sendableOnCall(context: CheckContext, operations: Operation[]): Operation[] {
  const linked = context.contract
    .creators()
    .map((o) => `${o.linkedParam}, from ${o.operationId}`)
    .join('; ');
  return operations.filter((operation) => {
    const unlinked = context.contract.unlinkedParams(operation);
    if (unlinked.length) context.notes.push(`${operation.operationId} not sent: its path takes ${unlinked.join(' and ')}, an id no answer gives (the operation table links only ${linked})`);
    return unlinked.length === 0;
  });
}
