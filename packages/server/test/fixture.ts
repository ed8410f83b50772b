import { createCallAutomationClient } from '@call-automation/client';
import { ApiError, createCallAutomationApp, createCallAutomationService, type CallAutomationHandlers, type CallAutomationServiceOptions } from '../src/index.ts';
import { serveApp, type RunningServer } from '../src/node.ts';

export const accessKey = 'Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=';
export const rotatedKey = Buffer.from('the-next-access-key-after-rotate').toString('base64');

export const phoneCall = {
  targets: [{ phoneNumber: { value: '+14251001000' } }],
  callbackUri: 'https://app.contoso.com/api/callbacks',
  requestedModalities: ['audio' as const],
  requestedCallEvents: ['participantsUpdated' as const],
};

/** A few lines of business logic: calls in a map, participants by id. */
export function memoryHandlers() {
  const calls = new Map<string, Set<string>>();
  let created = 0;
  const known = (callId: string) => {
    const call = calls.get(callId);
    if (!call) throw new ApiError(404, 'CallNotFound', `No call with id ${callId}.`, { target: 'callId' });
    return call;
  };
  const handlers: CallAutomationHandlers = {
    createCall: () => {
      created++;
      const callLegId = crypto.randomUUID();
      calls.set(callLegId, new Set(['p-1']));
      return { status: 200, body: { callLegId } };
    },
    hangupCall: ({ params }) => {
      known(params.callId);
      calls.delete(params.callId);
      return { status: 202 };
    },
    playAudio: ({ params, body }) => {
      known(params.callId);
      return { status: 202, body: { id: 'op-1', status: 'running', operationContext: body.operationContext } };
    },
    cancelMediaProcessing: ({ params, body }) => {
      known(params.callId);
      return { status: 202, body: { id: 'op-2', status: 'completed', operationContext: body.operationContext } };
    },
    inviteParticipants: ({ params }) => {
      known(params.callId);
      return { status: 202 };
    },
    removeParticipant: ({ params }) => {
      const call = known(params.callId);
      if (!call.delete(params.participantId)) {
        return { status: 404, body: { code: 'ParticipantNotFound', message: `No participant ${params.participantId}.`, target: 'participantId' } };
      }
      return { status: 202 };
    },
  };
  return { handlers, calls, createdCount: () => created };
}

export interface Served {
  url: string;
  server: RunningServer;
  client: ReturnType<typeof createCallAutomationClient>;
  state: ReturnType<typeof memoryHandlers>;
}

let throughHono = false;

/**
 * Serve through the Hono adapter from now on. By default the tests serve the service with the
 * Node adapter; test files that call this run the same tests on the Hono adapter, which
 * middleware and other runtimes use.
 */
export function serveThroughHono() {
  throughHono = true;
}

export async function serveMemory(options: Partial<CallAutomationServiceOptions> = {}): Promise<Served> {
  const state = memoryHandlers();
  const service = createCallAutomationService({ handlers: state.handlers, auth: { accessKeys: [accessKey, rotatedKey] }, ...options });
  const server = await serveApp(throughHono ? createCallAutomationApp(service) : service);
  const client = createCallAutomationClient(`endpoint=${server.url}/;accesskey=${accessKey}`, { retry: false });
  return { url: server.url, server, client, state };
}
