#!/usr/bin/env node
/**
 * call-automation-trigger <EventName> --to URL [--secret whsec_…] [--set data.path=value …]
 *
 * Sends one signed CloudEvent of a webhook of the spec (its example, with the overrides) to a
 * receiver, after checking it against the spec, and prints what the receiver answered.
 */
import { parseArgs } from 'node:util';
import { buildEvent, eventNames, sendEvent, TriggerError } from './trigger.ts';

const usage = `Usage: call-automation-trigger <EventName> --to URL [--secret whsec_…] [--set data.path=value …] [--dry-run]

Sends one schema-valid, signed CloudEvent of a webhook of the spec (the spec's example, with the
--set overrides) to a receiver, and prints its answer.

  EventName        ${eventNames.join(', ')}
  --to URL         the receiver (your callback endpoint)
  --secret S       the whsec_ secret to sign with; default CALL_AUTOMATION_CALLBACK_SECRET; none: unsigned
  --set PATH=VALUE sets a value in the event (repeatable): --set data.toneInfo.tone=pound
                   --set data.callLegId=3f0c… ; a value that reads as JSON (42, true, {"a":1}) is taken as such
  --dry-run        prints the event without sending it
  --help           this text

Exit status: 0 when the receiver answered 2xx, 1 when it answered otherwise or could not be
reached, 2 when the event could not be made.`;

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { to: { type: 'string' }, secret: { type: 'string' }, set: { type: 'string', multiple: true }, 'dry-run': { type: 'boolean' }, help: { type: 'boolean' } },
  });
} catch (error) {
  console.error(`${(error as Error).message}\n\n${usage}`);
  process.exit(2);
}
const { values, positionals } = parsed;
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const [name] = positionals;
if (!name || positionals.length > 1) {
  console.error(`Name one event.\n\n${usage}`);
  process.exit(2);
}
if (!values.to && !values['dry-run']) {
  console.error(`--to URL is required: where to send the event.\n\n${usage}`);
  process.exit(2);
}

let event;
try {
  event = buildEvent(name, values.set ?? []);
} catch (error) {
  if (!(error instanceof TriggerError)) throw error;
  console.error(error.message);
  process.exit(2);
}
console.log(JSON.stringify(event, null, 2));
if (values['dry-run']) process.exit(0);

const secret = values.secret ?? process.env.CALL_AUTOMATION_CALLBACK_SECRET;
if (!secret) console.error('No --secret or CALL_AUTOMATION_CALLBACK_SECRET: sending it unsigned.');
try {
  const sent = await sendEvent({ to: values.to!, event, secret });
  const ok = sent.status >= 200 && sent.status < 300;
  console.log(`\n→ ${values.to}: ${sent.status} ${sent.statusText} (${Math.round(sent.ms)} ms)${sent.body ? `\n${sent.body}` : ''}`);
  process.exit(ok ? 0 : 1);
} catch (error) {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  console.error(`\n→ ${values.to}: not reached: ${(error as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''}`);
  process.exit(1);
}
