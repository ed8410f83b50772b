import type { CheckContext, Exchange } from '../context.ts';
import { CheckSkipped, fail } from '../context.ts';
import type { Check } from './types.ts';

/** A createCall with repeatability headers, `firstSent` ago (ms); answers the exchange. */
function repeatableCreate(context: CheckContext, id: string, body: Record<string, unknown>, firstSentAgoMs = 0): Promise<Exchange> {
  if (!context.target.callbackUrl) throw new CheckSkipped('needs --callback-url, a URL the target can deliver callbacks to');
  return context.send({
    operationId: 'createCall',
    body,
    headers: { 'Repeatability-Request-ID': id, 'Repeatability-First-Sent': new Date(Date.now() - firstSentAgoMs).toUTCString() },
  });
}

function callBody(context: CheckContext, subject: string): Record<string, unknown> {
  return {
    targets: [{ phoneNumber: { value: '+14251001000' } }],
    callbackUri: context.target.callbackUrl,
    requestedModalities: ['audio'],
    requestedCallEvents: [],
    subject,
  };
}

function expectResult(exchange: Exchange, wanted: 'accepted' | 'rejected', what: string) {
  const result = exchange.headers.get('repeatability-result');
  if (result !== wanted) fail(`${what}: Repeatability-Result is ${result === null ? 'missing' : JSON.stringify(result)}, not ${wanted}`, exchange);
}

// Repeatability-Request-IDs are random, not from the run's seed: a run repeated with `--seed`
// within the answers' lifetime would otherwise reuse an id for another request.
export const repeatabilityChecks: Check[] = [
  {
    id: 'repeatability.same-request',
    title: 'a repeated createCall (same Repeatability-Request-ID, in any case, and the same body) answers the first callLegId',
    async run(context) {
      const id = crypto.randomUUID();
      const body = callBody(context, 'conformance: repeated');
      const first = await repeatableCreate(context, id, body);
      if (first.status !== 200) fail(`createCall answered ${first.status}, not 200`, first);
      expectResult(first, 'accepted', 'the first request');
      const callLegId = (first.json as { callLegId: string }).callLegId;
      for (const [what, repeatId] of [
        ['the repeat', id],
        ['the repeat with the id in upper case', id.toUpperCase()],
      ] as const) {
        const again = await repeatableCreate(context, repeatId, body);
        if (again.status !== 200) fail(`${what} answered ${again.status}, not 200 with the first result`, again);
        const repeated = (again.json as { callLegId?: string }).callLegId;
        if (repeated !== callLegId) fail(`${what} answered callLegId ${repeated}, not the first request's ${callLegId}: the call was placed twice`, again);
        expectResult(again, 'accepted', what);
      }
      await context.endCall(callLegId);
    },
  },
  {
    id: 'repeatability.other-request',
    title: 'the same Repeatability-Request-ID with another body answers 422, never the first result',
    async run(context) {
      const id = crypto.randomUUID();
      const first = await repeatableCreate(context, id, callBody(context, 'conformance: first'));
      if (first.status !== 200) fail(`createCall answered ${first.status}, not 200`, first);
      const callLegId = (first.json as { callLegId: string }).callLegId;
      const other = await repeatableCreate(context, id, callBody(context, 'conformance: another call'));
      if (other.text.includes(callLegId)) fail(`another request with the same Repeatability-Request-ID was answered the first request's callLegId ${callLegId}`, other);
      context.expectError(other, 422, 'another request with a used Repeatability-Request-ID');
      expectResult(other, 'rejected', 'the other request');
      await context.endCall(callLegId);
    },
  },
  {
    id: 'repeatability.expired',
    title: 'a Repeatability-First-Sent older than the answers lifetime (10 minutes) answers 412, rejected',
    async run(context) {
      const exchange = await repeatableCreate(context, crypto.randomUUID(), callBody(context, 'conformance: too late'), 11 * 60_000);
      if (exchange.status === 200) {
        await context.endCall((exchange.json as { callLegId: string }).callLegId);
      }
      context.expectError(exchange, 412, 'a Repeatability-First-Sent 11 minutes old');
      expectResult(exchange, 'rejected', 'the late request');
    },
  },
];
