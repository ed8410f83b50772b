import { generate, type JsonSchema } from 'json-schema-faker';
import type { CheckContext } from '../context.ts';
import { CheckSkipped, fail } from '../context.ts';
import type { Check } from './types.ts';

const perOperation = 8;

/**
 * Valid bodies generated from an operation's request schema (json-schema-faker, seeded from the
 * run's seed, so that `--seed` replays them). URIs the target would contact point at the callback
 * URL: the suite never makes a target reach anywhere else.
 */
async function generatedBodies(context: CheckContext, schema: string, count: number): Promise<Array<Record<string, unknown>>> {
  const callbackUrl = context.target.callbackUrl!;
  const bodies = [];
  for (let i = 0; i < count; i++) {
    // The spec's references go deeper than the generator's default depth (5), which then yields "".
    const root = { $ref: `#/components/schemas/${schema}`, components: context.contract.spec.components } as unknown as JsonSchema;
    const body = (await generate(root, { seed: Math.floor(context.random() * 2 ** 31), maxDepth: 12 })) as Record<string, unknown>;
    if ('callbackUri' in body) body.callbackUri = callbackUrl;
    if ('audioFileUri' in body) body.audioFileUri = `${callbackUrl.replace(/\/$/, '')}/generated-${i}.wav`;
    const validate = context.contract.validator(`#/components/schemas/${schema}`);
    if (!validate(body)) throw new Error(`the generator made an invalid ${schema}: ${JSON.stringify(validate.errors?.[0])}`);
    bodies.push(body);
  }
  return bodies;
}

function needsCallbacks(context: CheckContext) {
  if (!context.target.callbackUrl) throw new CheckSkipped('needs --callback-url: generated calls send their callbacks there');
}

export const positiveChecks: Check[] = [
  {
    id: 'positive.create-call',
    title: `createCall accepts ${perOperation} valid bodies generated from its schema`,
    async run(context) {
      needsCallbacks(context);
      for (const body of await generatedBodies(context, 'CreateCallRequest', perOperation)) {
        const exchange = await context.send({ operationId: 'createCall', body });
        if (exchange.status !== 200) fail(`createCall refused a valid body with ${exchange.status}: ${exchange.text.slice(0, 200)}\n    body: ${JSON.stringify(body).slice(0, 400)}`, exchange);
        await context.send({ operationId: 'hangupCall', params: { callId: (exchange.json as { callLegId: string }).callLegId } });
      }
    },
  },
  {
    id: 'positive.call-operations',
    title: 'the operations on a call accept valid bodies generated from their schemas',
    async run(context) {
      needsCallbacks(context);
      const callLegId = await context.createCall();
      const operations = [
        ['playAudio', 'PlayAudioRequest'],
        ['cancelMediaProcessing', 'CancelMediaProcessingRequest'],
        ['inviteParticipants', 'InviteParticipantsRequest'],
      ] as const;
      for (const [operationId, schema] of operations) {
        for (const body of await generatedBodies(context, schema, perOperation)) {
          const exchange = await context.send({ operationId, params: { callId: callLegId }, body });
          if (exchange.status !== 202) fail(`${operationId} refused a valid body with ${exchange.status}: ${exchange.text.slice(0, 200)}\n    body: ${JSON.stringify(body).slice(0, 400)}`, exchange);
        }
      }
      await context.send({ operationId: 'hangupCall', params: { callId: callLegId } });
    },
  },
];
