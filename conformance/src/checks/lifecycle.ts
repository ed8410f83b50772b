import { fail } from '../context.ts';
import type { Check } from './types.ts';
import { paramsFor, sendableOnCall, validBody } from './shared.ts';

export const lifecycleChecks: Check[] = [
  {
    id: 'lifecycle.operations',
    title: 'a call answers every operation with its documented success',
    async run(context) {
      const creator = context.contract.creator();
      const callId = await context.createCall();
      const operations = sendableOnCall(context, context.contract.onCall(creator));
      for (const operation of operations.filter((o) => !o.endsCall)) {
        const exchange = await context.send({ operationId: operation.operationId, params: paramsFor(context, operation, callId), body: validBody(context, operation) });
        if (exchange.status !== operation.successStatus) fail(`${operation.operationId} answered ${exchange.status}, not ${operation.successStatus}: ${exchange.text.slice(0, 160)}`, exchange);
      }
      // The operations that end a call come last: the first ends this call, any other one a call of its own.
      for (const [index, operation] of operations.filter((o) => o.endsCall).entries()) {
        const id = index === 0 ? callId : await context.createCall();
        const exchange = await context.send({ operationId: operation.operationId, params: paramsFor(context, operation, id), body: validBody(context, operation) });
        if (exchange.status !== operation.successStatus) fail(`${operation.operationId} answered ${exchange.status}, not ${operation.successStatus}: ${exchange.text.slice(0, 160)}`, exchange);
      }
    },
  },
  {
    id: 'lifecycle.after-hangup',
    title: 'after the call ends, every operation on it answers 404',
    async run(context) {
      const ender = context.contract.ender();
      const callId = await context.createCall();
      const ended = await context.endCall(callId);
      if (ended.status !== ender.successStatus) fail(`${ender.operationId} answered ${ended.status}, not ${ender.successStatus}`, ended);
      // Made-up ids in the other path parameters are honest here: on an ended call, whatever they name, the answer is 404.
      for (const operation of context.contract.onCall()) {
        const exchange = await context.send({ operationId: operation.operationId, params: paramsFor(context, operation, callId), body: validBody(context, operation) });
        context.expectError(exchange, 404, `${operation.operationId} after ${ender.operationId} ended the call`);
      }
    },
  },
  {
    id: 'lifecycle.unknown-id',
    title: 'on a live call, an unknown id in a path parameter no answer gives answers 404',
    async run(context) {
      // The ids no answer gives (removeParticipant's participantId) cannot be sent for real; an
      // unknown one is what the suite can hold the target to, where 404 is documented.
      const operations = context.contract.onCall().filter((o) => context.contract.unlinkedParams(o).length > 0 && o.statuses.includes(404));
      if (!operations.length) {
        context.notes.push('no operation on a call takes an id no answer gives');
        return;
      }
      const callId = await context.createCall();
      for (const operation of operations) {
        const exchange = await context.send({ operationId: operation.operationId, params: paramsFor(context, operation, callId), body: validBody(context, operation) });
        context.expectError(exchange, 404, `${operation.operationId} with an unknown ${context.contract.unlinkedParams(operation).join(' and ')}`);
      }
      await context.endCall(callId);
    },
  },
];
