import Fastify from 'fastify';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { CallbackEmitter, HandlerContext } from '@call-automation/server';
import { createSimulator } from '../../src/index.ts';
import { announce, benchKey, hmacCheck } from './hmac-check.ts';

// The spec's CreateCallRequest with its $refs inlined, for Fastify's own (Ajv) validation.
const spec = JSON.parse(readFileSync(process.env.SPEC_JSON!, 'utf8'));
function inline(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(inline);
  if (!node || typeof node !== 'object') return node;
  const object = node as Record<string, unknown>;
  if (typeof object.$ref === 'string') {
    const target = object.$ref.slice(2).split('/').reduce((o: Record<string, unknown>, k) => o[k] as Record<string, unknown>, spec);
    const { $ref: _ref, ...rest } = object;
    return { ...(inline(target) as object), ...(inline(rest) as object) };
  }
  return Object.fromEntries(Object.entries(object).filter(([k]) => !['examples', 'discriminator', 'default'].includes(k) && !k.startsWith('x-')).map(([k, v]) => [k, inline(v)]));
}
const schema = inline(spec.components.schemas.CreateCallRequest);

const app = Fastify({ logger: false });
app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
  (req as unknown as { rawBody: string }).rawBody = body as string;
  try {
    done(null, JSON.parse(body as string));
  } catch (error) {
    done(error as Error, undefined);
  }
});
app.addHook('preValidation', async (req, reply) => {
  if (!hmacCheck(benchKey, req.method, req.url, req.headers.host ?? '', req.headers, (req as unknown as { rawBody: string }).rawBody ?? '')) {
    return reply.code(401).send({ code: 'InvalidSignature', message: 'no' });
  }
});
if (process.env.HANDLER === 'simulator') {
  // The same business logic as the full stub's: the simulator's createCall, its events counted as there.
  const events: CallbackEmitter = { emit() {}, register() {} };
  const context = { caller: { kind: 'hmac', keyIndex: 0 }, requestId: '', events } as HandlerContext;
  const simulator = createSimulator({ answerDelayMs: 10 });
  app.post('/calls', { schema: { body: schema as object } }, async (req) => {
    const reply = (await simulator.handlers.createCall({ body: req.body, params: {}, headers: {} } as never, context)) as { body: unknown };
    return reply.body;
  });
} else {
  app.post('/calls', { schema: { body: schema as object } }, async () => ({ callLegId: crypto.randomUUID() }));
}
await app.listen({ host: '127.0.0.1', port: 0 });
announce((app.server.address() as AddressInfo).port);
