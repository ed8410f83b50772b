import { createCallAutomationService, createUriGuard, type CallbackEmitter } from '@call-automation/server';
import { serveApp } from '@call-automation/server/node';
import { createSimulator } from '../../src/index.ts';
import { announce } from './hmac-check.ts';

// Events are counted, not delivered: the load measures the request path, not callbacks. Targets
// answer after 10 ms, so that calls go through their states as they would, without piling up timers.
let emitted = 0;
const events: CallbackEmitter = { emit: () => void emitted++, register() {} };
const simulator = createSimulator({ answerDelayMs: 10 });
const guard = createUriGuard();
const service = createCallAutomationService({
  handlers: simulator.handlers,
  auth: { accessKeys: ['Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA='], refuseReplays: process.env.REFUSE_REPLAYS === 'on' },
  callbacks: events,
  checkUri: async (uri, field) => void (await guard.check(uri, field)),
  idempotency: false,
});
const running = await serveApp(service);
announce(Number(new URL(running.url).port));
