import { eventTable, type EventName, type Validator } from '@call-automation/contract';
import * as validators from '@call-automation/contract/event-validators';
import { Webhook } from 'standardwebhooks';
import { Contract, type Json, type JsonObject } from './contract.ts';

const validatorNamed = validators as unknown as Record<string, Validator>;

/** The webhooks' names, as the spec has them (CallLegStateChanged, DtmfReceived, …). */
export const eventNames = Object.keys(eventTable) as EventName[];

/** Why an event was not sent: what was asked cannot make a valid event. */
export class TriggerError extends Error {
  override readonly name = 'TriggerError';
}

/**
 * The spec's example of a webhook's CloudEvent, with a fresh id and time, and `sets` applied:
 * `data.toneInfo.tone=pound` sets a value at a dotted path (a number, true, false, null or JSON
 * when it reads as one; a string otherwise), `data.operationContext=` an empty string.
 */
export function buildEvent(name: string, sets: readonly string[] = [], contract = new Contract()): JsonObject {
  const facts = eventTable[name as EventName];
  if (!facts) throw new TriggerError(`No webhook ${name} in the spec. It has: ${eventNames.join(', ')}.`);
  const post = (contract.resolve((contract.spec.webhooks as JsonObject)[name]) as JsonObject).post as JsonObject;
  const media = ((contract.resolve(post.requestBody) as JsonObject).content as JsonObject)['application/cloudevents+json'] as JsonObject;
  const example = Object.values((media.examples ?? {}) as JsonObject)[0];
  if (!example) throw new TriggerError(`The spec has no example of ${name} to start from.`);
  const event = structuredClone((contract.resolve(example) as JsonObject).value) as JsonObject;
  event.id = `evt_${crypto.randomUUID().replace(/-/g, '')}`;
  event.time = new Date().toISOString();
  for (const set of sets) apply(event, set);
  // An event is about the call its data names: its source follows, unless it was set itself.
  const callLegId = (event.data as JsonObject | undefined)?.callLegId;
  if (typeof callLegId === 'string' && !sets.some((set) => set.startsWith('source='))) event.source = `calls/${callLegId}`;
  const validate = validatorNamed[facts.validator]!;
  if (!validate(event)) {
    const problems = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params && 'allowedValues' in e.params ? ` (${(e.params.allowedValues as unknown[]).join(', ')})` : ''}`);
    throw new TriggerError(`The ${name} event does not match the spec, so it was not sent:\n  ${problems.join('\n  ')}`);
  }
  return event;
}

function apply(event: JsonObject, set: string) {
  const equals = set.indexOf('=');
  if (equals <= 0) throw new TriggerError(`--set takes path=value (e.g. data.toneInfo.tone=pound), not "${set}".`);
  const path = set.slice(0, equals).split('.');
  const text = set.slice(equals + 1);
  let value: Json;
  try {
    value = JSON.parse(text) as Json;
  } catch {
    value = text;
  }
  let node: JsonObject = event;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (next === undefined || next === null) node = node[key] = {};
    // An array's items are reached by their index: data.participants.0.isMuted=true.
    else if (typeof next === 'object') node = next as JsonObject;
    else throw new TriggerError(`Cannot set ${path.join('.')}: ${key} is not an object.`);
  }
  node[path.at(-1)!] = value;
}

export interface SentEvent {
  event: JsonObject;
  status: number;
  statusText: string;
  body: string;
  ms: number;
}

/**
 * Sends one event to a receiver as the service does: a CloudEvent in structured mode, signed with
 * the Standard Webhooks scheme when `secret` is given.
 */
export async function sendEvent(options: { to: string; event: JsonObject; secret?: string; timeoutMs?: number }): Promise<SentEvent> {
  const body = JSON.stringify(options.event);
  const id = String(options.event.id);
  const timestamp = new Date();
  const headers: Record<string, string> = {
    'content-type': 'application/cloudevents+json',
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
  };
  if (options.secret) headers['webhook-signature'] = new Webhook(options.secret).sign(id, timestamp, body);
  const started = performance.now();
  const response = await fetch(options.to, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(options.timeoutMs ?? 10_000) });
  return { event: options.event, status: response.status, statusText: response.statusText, body: await response.text(), ms: performance.now() - started };
}
