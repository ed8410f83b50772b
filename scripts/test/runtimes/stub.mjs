// The server stub of the runtime checks: a service with the six handlers, its calls in memory, and
// the access key its requests are signed with; with a callback secret, it delivers each call's
// CallLegStateChanged events, signed, to the call's callbackUri (loopback allowed). The programs on
// Bun, Deno and workerd import it.
import { ApiError, createCallAutomationApp, createCallAutomationService, createCallbackDelivery, createUriGuard } from '@call-automation/server';

/** The access key (base64) of the stub: the tests sign with it too. */
export const accessKey = btoa('a local access key of 32 bytes..');
/** The secret the stub signs its callbacks with. */
export const callbackSecret = `whsec_${btoa('the callback secret, 32 bytes...')}`;

/** The body of the createCall the checks send. */
export const createCallBody = (callbackUri = 'https://app.example.com/callbacks') => ({
  targets: [{ phoneNumber: { value: '+14251001000' } }],
  callbackUri,
  requestedModalities: ['audio'],
  requestedCallEvents: ['participantsUpdated'],
});

/** Callback delivery to loopback, failures noted in `log`. */
export function createLoopbackDelivery(log = []) {
  const guard = createUriGuard({ allowLoopback: true });
  const delivery = createCallbackDelivery({
    secret: callbackSecret,
    guard,
    log: (line) => log.push(line),
    onAttempt: (pending, outcome) => {
      if (outcome.next !== 'done') log.push(`${pending.callbackUri}: ${outcome.status ?? outcome.error} (${outcome.next})`);
    },
  });
  return { delivery, guard, log };
}

/**
 * The stub as a Hono app, whose `fetch` is a standard fetch handler. With `callbacks` (from
 * createLoopbackDelivery), createCall and hangupCall send the call's state to its callbackUri.
 */
export function createStubApp(callbacks) {
  const calls = new Set();
  const known = (callId) => {
    if (!calls.has(callId)) throw new ApiError(404, 'CallNotFound', `No call with id ${callId}.`, { target: 'callId' });
  };
  const service = createCallAutomationService({
    auth: { accessKeys: [accessKey] },
    callbacks: callbacks?.delivery,
    checkUri: callbacks && (async (uri, field) => void (await callbacks.guard.check(uri, field))),
    handlers: {
      createCall: ({ body }, { events }) => {
        const callLegId = crypto.randomUUID();
        calls.add(callLegId);
        if (callbacks) {
          events.register(callLegId, body.callbackUri);
          events.emit(callLegId, 'CallLegStateChanged', { callLegId, callState: 'establishing' });
        }
        return { status: 200, body: { callLegId } };
      },
      hangupCall: ({ params }, { events }) => {
        known(params.callId);
        calls.delete(params.callId);
        if (callbacks) {
          events.emit(params.callId, 'CallLegStateChanged', { callLegId: params.callId, callState: 'terminated' });
          events.unregister?.(params.callId);
        }
        return { status: 202 };
      },
      playAudio: ({ params }) => (known(params.callId), { status: 202, body: { id: crypto.randomUUID(), status: 'running' } }),
      cancelMediaProcessing: ({ params }) => (known(params.callId), { status: 202, body: { id: crypto.randomUUID(), status: 'completed' } }),
      inviteParticipants: ({ params }) => (known(params.callId), { status: 202 }),
      removeParticipant: ({ params }) => (known(params.callId), { status: 404, body: { code: 'ParticipantNotFound', message: 'No such participant.' } }),
    },
  });
  return createCallAutomationApp(service);
}

/** A result of the client, as the checks report it. */
export const summary = (result) => ({ status: result.response.status, error: result.error?.code ?? null });
