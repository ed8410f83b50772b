import { createCallAutomationService, createUriGuard, type CallbackEmitter } from '@call-automation/server';
import { serveApp } from '@call-automation/server/node';
import { announce } from './hmac-check.ts';

// The stub with handlers that do nothing but answer: what authentication, validation, the URI
// guard and the framework cost on their own, apart from the simulator's model of calls.
const events: CallbackEmitter = { emit() {}, register() {} };
const guard = createUriGuard();
const accepted = () => ({ status: 202 as const });
const service = createCallAutomationService({
  handlers: {
    createCall: () => ({ status: 200, body: { callLegId: crypto.randomUUID() } }),
    hangupCall: accepted,
    playAudio: () => ({ status: 202, body: { id: crypto.randomUUID(), status: 'running' } }),
    cancelMediaProcessing: () => ({ status: 202, body: { id: crypto.randomUUID(), status: 'completed' } }),
    inviteParticipants: accepted,
    removeParticipant: accepted,
  },
  auth: { accessKeys: ['Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA='] },
  callbacks: events,
  checkUri: async (uri, field) => void (await guard.check(uri, field)),
  idempotency: false,
});
const running = await serveApp(service);
announce(Number(new URL(running.url).port));
