import { generate, type JsonSchema } from 'json-schema-faker';
import type { CheckContext } from '../context.ts';
import { CheckSkipped, fail } from '../context.ts';
import type { Operation } from '../contract.ts';
import type { Check } from './types.ts';
import { sendableOnCall } from './shared.ts';

const perOperation = 8;

/**
 * Valid bodies generated from an operation's request schema (the table's `body`), with
 * json-schema-faker seeded from the run's seed, so that `--seed` replays them. The fields the
 * table lists as URIs the target contacts point at the callback URL: the suite never makes a
 * target reach anywhere else.
 */
async function generatedBodies(context: CheckContext, operation: Operation, count: number): Promise<Array<Record<string, unknown>>> {
  const pointer = `#/components/schemas/${operation.body!}`;
  const validate = context.contract.validator(pointer);
  const bodies = [];
  for (let i = 0; i < count; i++) {
    // The spec's references go deeper than the generator's default depth (5), which then yields "".
    const root = { $ref: pointer, components: context.contract.spec.components } as unknown as JsonSchema;
    const body = (await generate(root, { seed: Math.floor(context.random() * 2 ** 31), maxDepth: 12 })) as Record<string, unknown>;
    context.pointUris(body, operation, `-${i}`);
    if (!validate(body)) throw new Error(`the generator made an invalid ${operation.body}: ${JSON.stringify(validate.errors?.[0])}`);
    bodies.push(body);
  }
  return bodies;
}

function needsCallbacks(context: CheckContext) {
  if (!context.target.callbackUrl) throw new CheckSkipped('needs --callback-url: generated calls send their callbacks there');
}

function refused(operation: Operation, exchange: { status: number; text: string }, body: unknown): string {
  return `${operation.operationId} refused a valid body with ${exchange.status}: ${exchange.text.slice(0, 200)}\n    body: ${JSON.stringify(body).slice(0, 400)}`;
}

export const positiveChecks: Check[] = [
  {
    id: 'positive.create-call',
    title: `the operation that creates a call accepts ${perOperation} valid bodies generated from its schema`,
    async run(context) {
      needsCallbacks(context);
      for (const creator of context.contract.creators()) {
        if (!creator.body) {
          context.notes.push(`${creator.operationId} takes no body: nothing to generate`);
          continue;
        }
        for (const body of await generatedBodies(context, creator, perOperation)) {
          const exchange = await context.send({ operationId: creator.operationId, params: context.paramsFor(creator), body });
          if (exchange.status !== creator.successStatus) fail(refused(creator, exchange, body), exchange);
          await context.endCall(context.createdId(creator, exchange), creator);
        }
      }
    },
  },
  {
    id: 'positive.call-operations',
    title: 'the operations on a call accept valid bodies generated from their schemas',
    async run(context) {
      needsCallbacks(context);
      const creator = context.contract.creator();
      const operations = sendableOnCall(context, context.contract.onCall(creator).filter((o) => o.body !== null));
      const callId = await context.createCall();
      for (const operation of operations) {
        for (const body of await generatedBodies(context, operation, perOperation)) {
          // An operation that ends the call gets a call of its own for each body.
          const target = operation.endsCall ? await context.createCall() : callId;
          const exchange = await context.send({ operationId: operation.operationId, params: context.paramsFor(operation, { [creator.linkedParam!]: target }), body });
          if (exchange.status !== operation.successStatus) fail(refused(operation, exchange, body), exchange);
        }
      }
      await context.endCall(callId, creator);
    },
  },
];
