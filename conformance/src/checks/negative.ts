import type { CheckContext, Exchange } from '../context.ts';
import { CheckSkipped, fail } from '../context.ts';
import type { JsonObject, Operation } from '../contract.ts';
import type { Check } from './types.ts';
import { paramsFor, sendableOnCall, validBody } from './shared.ts';

interface BadRequest {
  name: string;
  body: unknown;
  contentType?: string | null;
  status: number;
}

/** A value of another JSON type than the schema wants. */
function wrongType(schema: JsonObject): unknown {
  switch (schema.type) {
    case 'string':
      return 12345;
    case 'boolean':
      return 'yes';
    case 'array':
      return { not: 'an array' };
    case 'integer':
    case 'number':
      return 'seven';
    default:
      return 'not an object';
  }
}

/** Invalid requests made from an operation's request schema, each breaking one rule. */
export function invalidRequests(context: CheckContext, operation: Operation): BadRequest[] {
  const base = validBody(context, operation) as JsonObject;
  const schema = context.contract.schemaAt(`#/components/schemas/${operation.body!}`);
  const properties = (schema.properties ?? {}) as JsonObject;
  const cases: BadRequest[] = [];
  for (const name of (schema.required ?? []) as string[]) {
    const { [name]: _dropped, ...rest } = base;
    cases.push({ name: `without the required ${name}`, body: rest, status: 400 });
  }
  for (const [name, raw] of Object.entries(properties)) {
    const property = context.contract.resolve(raw) as JsonObject;
    cases.push({ name: `${name} of the wrong type`, body: { ...base, [name]: wrongType(property) }, status: 400 });
    if (typeof property.maxLength === 'number') {
      cases.push({ name: `${name} over its maxLength`, body: { ...base, [name]: `https://${'x'.repeat(property.maxLength as number)}` }, status: 400 });
    }
    const items = property.items ? (context.contract.resolve(property.items) as JsonObject) : undefined;
    if (property.type === 'array' && typeof property.maxItems === 'number') {
      const sample = (base[name] as unknown[] | undefined)?.[0] ?? 'x';
      cases.push({ name: `${name} with one item too many`, body: { ...base, [name]: Array((property.maxItems as number) + 1).fill(sample) }, status: 400 });
    }
    if (property.type === 'array' && typeof property.minItems === 'number' && (property.minItems as number) > 0) {
      cases.push({ name: `${name} empty`, body: { ...base, [name]: [] }, status: 400 });
    }
    if (items?.enum) cases.push({ name: `${name} with a value outside its enum`, body: { ...base, [name]: ['conformance-not-a-value'] }, status: 400 });
    if (property.enum) cases.push({ name: `${name} outside its enum`, body: { ...base, [name]: 'conformance-not-a-value' }, status: 400 });
  }
  if (schema.additionalProperties === false) cases.push({ name: 'with an unknown field', body: { ...base, conformanceUnknownField: true }, status: 400 });
  cases.push({ name: 'malformed JSON', body: '{"conformance": ', status: 400 });
  cases.push({ name: 'a JSON array instead of an object', body: '[]', status: 400 });
  cases.push({ name: 'sent as text/plain', body: JSON.stringify(base), contentType: 'text/plain', status: 400 });
  cases.push({ name: 'without a Content-Type', body: new TextEncoder().encode(JSON.stringify({ ...base, operationContext: 'no-type' })), contentType: null, status: 400 });
  cases.push({ name: 'over the size limit (1 MiB)', body: JSON.stringify({ ...base, padding: 'x'.repeat(1024 * 1024) }), status: 413 });
  return cases;
}

async function refuseAll(context: CheckContext, operation: Operation, params: Record<string, string>) {
  const accepted: string[] = [];
  let first: Exchange | undefined;
  for (const bad of invalidRequests(context, operation)) {
    const exchange = await context.send({ operationId: operation.operationId, params, body: bad.body, contentType: bad.contentType });
    if (exchange.status !== bad.status) {
      accepted.push(`${bad.name}: ${exchange.status}, not ${bad.status}`);
      first ??= exchange;
    } else context.expectError(exchange, bad.status, `${operation.operationId} ${bad.name}`);
  }
  if (accepted.length) fail(`${operation.operationId}: ${accepted.join('; ')}`, first);
}

export const negativeChecks: Check[] = [
  {
    id: 'negative.create-call',
    title: 'the operation that creates a call refuses every invalid body with the documented 4xx and the error body',
    async run(context) {
      for (const creator of context.contract.creators().filter((o) => o.hasBody)) await refuseAll(context, creator, paramsFor(context, creator));
    },
  },
  {
    id: 'negative.call-operations',
    title: 'the operations on a call refuse every invalid body with the documented 4xx',
    async run(context) {
      if (!context.target.callbackUrl) throw new CheckSkipped('needs a live call, so --callback-url');
      const operations = sendableOnCall(context, context.contract.onCall().filter((o) => o.hasBody));
      const callId = await context.createCall();
      for (const operation of operations) await refuseAll(context, operation, paramsFor(context, operation, callId));
      await context.endCall(callId);
    },
  },
  {
    id: 'negative.odd-ids',
    title: 'odd ids in the path answer 400 or 404, never a server error',
    async run(context) {
      const linked = context.contract.creator().linkedParam!;
      for (const operation of context.contract.onCall()) {
        for (const id of ['..%2F..', '%00', 'x'.repeat(300), '%E2%98%8E', "' OR 1=1 --"]) {
          // Sent as the path, not as a parameter: the escapes must reach the target as written.
          const raw = id.includes('%') ? id : encodeURIComponent(id);
          const params = paramsFor(context, operation);
          const path = operation.path.replace(/\{([^}]+)\}/g, (_m, name: string) => (name === linked ? raw : encodeURIComponent(params[name]!)));
          const exchange = await context.send({ operationId: operation.operationId, path, body: validBody(context, operation) });
          context.expectError(exchange, [400, 404], `${operation.operationId} with the id ${id.slice(0, 20)}`);
        }
      }
    },
  },
];
