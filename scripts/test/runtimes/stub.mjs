// The server stub of the runtime checks: a service with the six handlers, its calls in memory, and
// the access key its requests are signed with. The programs on Bun, Deno and workerd import it.
import { ApiError, createCallAutomationApp, createCallAutomationService } from '@call-automation/server';

/** The access key (base64) of the stub: the tests sign with it too. */
export const accessKey = btoa('a local access key of 32 bytes..');

/** The body of the createCall the checks send. */
export const createCallBody = (callbackUri = 'https://app.example.com/callbacks') => ({
  targets: [{ phoneNumber: { value: '+14251001000' } }],
  callbackUri,
  requestedModalities: ['audio'],
  requestedCallEvents: ['participantsUpdated'],
});

/** The stub as a Hono app, whose `fetch` is a standard fetch handler. */
export function createStubApp() {
  const calls = new Set();
  const known = (callId) => {
    if (!calls.has(callId)) throw new ApiError(404, 'CallNotFound', `No call with id ${callId}.`, { target: 'callId' });
  };
  const service = createCallAutomationService({
    auth: { accessKeys: [accessKey] },
    handlers: {
      createCall: () => {
        const callLegId = crypto.randomUUID();
        calls.add(callLegId);
        return { status: 200, body: { callLegId } };
      },
      hangupCall: ({ params }) => {
        known(params.callId);
        calls.delete(params.callId);
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
