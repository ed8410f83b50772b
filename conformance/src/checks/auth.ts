import type { CheckContext, Exchange } from '../context.ts';
import { CheckSkipped, fail } from '../context.ts';
import type { Check } from './types.ts';
import { liveCall, paramsFor, validBody } from './shared.ts';

/** Every operation, sent once with `tamper` applied, must be refused with 401 and the error body. */
async function everyOperationRefused(context: CheckContext, what: string, tamper: (request: Request, context: CheckContext) => Request | Promise<Request>) {
  const callLegId = await liveCall(context);
  const refused: string[] = [];
  let first: Exchange | undefined;
  for (const operation of context.contract.operations) {
    const exchange = await context.send({
      operationId: operation.operationId,
      params: paramsFor(context, operation, callLegId),
      body: validBody(context, operation),
      auth: (request) => tamper(request, context),
    });
    if (exchange.status !== 401) {
      refused.push(`${operation.operationId} answered ${exchange.status}`);
      first ??= exchange;
    } else context.expectError(exchange, 401, what);
  }
  if (refused.length) fail(`${what} was not refused with 401: ${refused.join('; ')}`, first);
}

const wrongKey = btoa('conformance-wrong-access-key-000');

export const authChecks: Check[] = [
  {
    id: 'auth.no-credentials',
    title: 'a request without credentials is refused with 401',
    run: (c) => everyOperationRefused(c, 'a request without Authorization', (request) => request),
  },
  {
    id: 'auth.wrong-signature',
    title: 'a request signed with another key is refused with 401',
    run: (c) =>
      everyOperationRefused(c, 'a request signed with the wrong key', async (request) => {
        const { createHmacAuth } = await import('@call-automation/client/raw');
        return createHmacAuth(wrongKey).sign(request);
      }),
  },
  {
    id: 'auth.stale-date',
    title: 'a request dated 20 minutes ago is refused with 401',
    run: (c) =>
      everyOperationRefused(c, 'a request with a stale x-ms-date', async (request) => {
        const { createHmacAuth } = await import('@call-automation/client/raw');
        return createHmacAuth(c.target.accessKey, { now: () => Date.now() - 20 * 60_000 }).sign(request);
      }),
  },
  {
    id: 'auth.tampered-body',
    title: 'a body changed after signing is refused with 401',
    async run(context) {
      const callLegId = await liveCall(context);
      for (const operation of context.contract.operations.filter((o) => o.hasBody)) {
        const body = JSON.stringify(validBody(context, operation));
        const exchange = await context.send({
          operationId: operation.operationId,
          params: paramsFor(context, operation, callLegId),
          body,
          auth: async (request) => {
            const signed = await context.sign(request);
            return new Request(signed.url, { method: signed.method, headers: signed.headers, body: body.replace(/}$/, ',"tampered":true}') });
          },
        });
        context.expectError(exchange, 401, `${operation.operationId} with a tampered body`);
      }
    },
  },
  {
    id: 'auth.replay',
    title: 'a signed request sent twice is refused the second time (with --expect-replay-refusal)',
    async run(context) {
      // Accepting a signature again within its window is the default (Azure's SDKs sign once and
      // re-send it on every retry); refusing replays is a server's opt-in, held to only when asked.
      if (!context.target.expectReplayRefusal) {
        throw new CheckSkipped('servers accept a re-sent signature within its window by default; run with --expect-replay-refusal (expectReplayRefusal: true) when this one refuses replays');
      }
      // A request the target may well accept twice: no body, the same end state however often it
      // is sent (idempotent), the fewest path parameters; made-up ids, so it changes nothing anyway.
      const operation = context.contract.operations
        .filter((o) => o.idempotent && !o.hasBody)
        .sort((a, b) => a.pathParams.length - b.pathParams.length)[0];
      if (!operation) throw new CheckSkipped('the operation table has no idempotent operation without a body to replay');
      let kept: Request | undefined;
      await context.send({
        operationId: operation.operationId,
        params: paramsFor(context, operation),
        auth: async (request) => {
          const signed = await context.sign(request);
          kept = new Request(signed.url, { method: signed.method, headers: signed.headers });
          return signed;
        },
      });
      const again = await context.send({ operationId: operation.operationId, params: paramsFor(context, operation), auth: () => kept! });
      context.expectError(again, 401, 'a replayed signature');
    },
  },
];
