import { fail } from '../context.ts';
import type { Check } from './types.ts';
import { paramsFor, validBody } from './shared.ts';

export const lifecycleChecks: Check[] = [
  {
    id: 'lifecycle.operations',
    title: 'a call answers every operation with its documented success',
    async run(context) {
      const callLegId = await context.createCall();
      for (const operation of context.contract.operations.filter((o) => o.pathParams.includes('callId') && o.operationId !== 'hangupCall' && o.operationId !== 'removeParticipant')) {
        const exchange = await context.send({ operationId: operation.operationId, params: { callId: callLegId }, body: validBody(context, operation) });
        if (exchange.status !== operation.successStatus) fail(`${operation.operationId} answered ${exchange.status}, not ${operation.successStatus}: ${exchange.text.slice(0, 160)}`, exchange);
      }
      const hangup = await context.send({ operationId: 'hangupCall', params: { callId: callLegId } });
      if (hangup.status !== 202) fail(`hangupCall answered ${hangup.status}, not 202`, hangup);
    },
  },
  {
    id: 'lifecycle.after-hangup',
    title: 'after Hangup, every operation on the call answers 404',
    async run(context) {
      const callLegId = await context.createCall();
      const hangup = await context.send({ operationId: 'hangupCall', params: { callId: callLegId } });
      if (hangup.status !== 202) fail(`hangupCall answered ${hangup.status}, not 202`, hangup);
      for (const operation of context.contract.operations.filter((o) => o.pathParams.includes('callId'))) {
        const exchange = await context.send({ operationId: operation.operationId, params: paramsFor(operation, callLegId), body: validBody(context, operation) });
        context.expectError(exchange, 404, `${operation.operationId} after Hangup`);
      }
    },
  },
];
