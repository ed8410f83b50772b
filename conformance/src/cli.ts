#!/usr/bin/env node
/**
 * call-automation-conformance: checks a running server against the Call Automation contract.
 *
 *   pnpm conformance --base-url http://127.0.0.1:4780 --connection-string "endpoint=…;accesskey=…"
 *     (or the connection string in CALL_AUTOMATION_CONNECTION_STRING; --base-url defaults to its endpoint)
 *     [--callback-secret whsec_…] [--callback-url URL-the-target-can-reach] [--control-url URL]
 *     [--expect-replay-refusal] [--only GLOB]… [--seed N] [--report-dir DIR]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseConnectionString } from '@call-automation/client';
import { startCallbackReceiver } from './harness/receiver.ts';
import { summaryTable, toJUnit } from './report.ts';
import { shellQuote } from './reproduce.ts';
import { runChecks } from './runner.ts';

const usage = `Usage: call-automation-conformance --base-url URL --connection-string "endpoint=…;accesskey=…"
  --connection-string …         the target's endpoint and access key (default: CALL_AUTOMATION_CONNECTION_STRING)
  --base-url URL                the server to check (default: the connection string's endpoint)
  [--callback-secret whsec_…]   verify the signatures of the callbacks received
  [--callback-url URL]          where the target can deliver callbacks: the suite listens on this URL's port
                                (default: a free port on 127.0.0.1, which only a local target can reach)
  [--control-url URL]           a control surface that makes participants act (the simulator prints one)
  [--expect-replay-refusal]     the target refuses a signature it has already accepted (401 ReplayedRequest):
                                run auth.replay, skipped otherwise (servers accept replays by default)
  [--only GLOB]                 run only the checks whose id matches (repeatable; e.g. "auth.*")
  [--seed N]                    the seed of the generated requests (printed, to replay a run)
  [--report-dir DIR]            write conformance.json and junit.xml there (default: reports/conformance)`;

let args;
try {
  args = parseArgs({
    options: {
      'base-url': { type: 'string' },
      'connection-string': { type: 'string' },
      'callback-secret': { type: 'string' },
      'callback-url': { type: 'string' },
      'control-url': { type: 'string' },
      'expect-replay-refusal': { type: 'boolean' },
      only: { type: 'string', multiple: true },
      seed: { type: 'string' },
      'report-dir': { type: 'string', default: join('reports', 'conformance') },
      help: { type: 'boolean' },
    },
  }).values;
} catch (error) {
  console.error(`${(error as Error).message}\n\n${usage}`);
  process.exit(2);
}
if (args.help) {
  console.log(usage);
  process.exit(0);
}
// The connection string: the option, else the variable the client's README reads it from.
const connectionFrom = args['connection-string'] ? '--connection-string' : process.env.CALL_AUTOMATION_CONNECTION_STRING ? 'CALL_AUTOMATION_CONNECTION_STRING' : undefined;
if (!connectionFrom) {
  console.error(
    `No connection string: pass --connection-string "endpoint=https://<server>/;accesskey=<base64 key>", or set CALL_AUTOMATION_CONNECTION_STRING to it (the simulator prints one when it starts).\n\n${usage}`,
  );
  process.exit(2);
}
let accessKey: string;
let endpoint: string;
try {
  ({ accessKey, endpoint } = parseConnectionString(args['connection-string'] || process.env.CALL_AUTOMATION_CONNECTION_STRING!));
} catch (error) {
  console.error(`${connectionFrom}: ${(error as Error).message}`);
  process.exit(2);
}
const seed = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
if (!Number.isInteger(seed)) {
  console.error(`--seed must be an integer, not ${args.seed}.`);
  process.exit(2);
}

const wanted = args['callback-url'] ? new URL(args['callback-url']) : undefined;
const receiver = await startCallbackReceiver({ port: wanted ? Number(wanted.port || (wanted.protocol === 'https:' ? 443 : 80)) : 0 });
const callbackUrl = wanted ? wanted.href.replace(/\/$/, '') : `${receiver.url}/callbacks`;
const baseUrl = (args['base-url'] || endpoint).replace(/\/$/, '');

console.log(`Conformance of ${baseUrl} to the Call Automation contract (seed ${seed}; replay with --seed ${seed})`);
console.log(`callbacks: ${callbackUrl} (received on ${receiver.url})${args['callback-secret'] ? ', signatures verified' : ', signatures not verified (no --callback-secret)'}\n`);

const controlUrl = args['control-url']?.replace(/\/$/, '');
const expectReplayRefusal = args['expect-replay-refusal'] ?? false;
// How this run was started, for re-running a failed check: pnpm's script in the workspace, else
// the bin; the secrets are placeholders, so that the reports can be shared.
const program = process.env.npm_lifecycle_event === 'conformance' ? 'pnpm conformance' : 'call-automation-conformance';
const commandLine = [
  program,
  '--base-url',
  shellQuote(baseUrl),
  // From the environment, the connection string is left there.
  ...(args['connection-string'] ? ['--connection-string', shellQuote(args['connection-string'].replace(/(accesskey=)[^;]*/i, '$1<access key>'))] : []),
  ...(args['callback-secret'] ? ['--callback-secret', shellQuote('<callback secret>')] : []),
  ...(wanted ? ['--callback-url', shellQuote(args['callback-url']!)] : []),
  ...(controlUrl ? ['--control-url', shellQuote(controlUrl)] : []),
  ...(expectReplayRefusal ? ['--expect-replay-refusal'] : []),
].join(' ');

const indent = (text: string, by: string) => by + text.split('\n').join(`\n${by}`);
const marks = { passed: '✓', failed: '✗', skipped: '-' };
const results = await runChecks({
  baseUrl,
  accessKey,
  callbackUrl,
  receiver,
  callbackSecret: args['callback-secret'],
  controlUrl,
  expectReplayRefusal,
  seed,
  only: args.only,
  commandLine,
  onResult(result) {
    console.log(`${marks[result.status]} ${result.id.padEnd(32)} ${result.title} (${result.requests} requests, ${result.durationMs} ms)`);
    if (result.message) console.log(indent(result.message, '    '));
    for (const note of result.notes ?? []) console.log(indent(note, '    '));
    if (result.reproduce) {
      console.log(`    re-run it:\n${indent(result.reproduce.command, '      ')}`);
      if (result.reproduce.curl) console.log(`    the request:\n${indent(result.reproduce.curl, '      ')}`);
    }
  },
});
await receiver.close();

console.log(`\n${summaryTable(results)}\n`);
const skipped = results.filter((r) => r.status === 'skipped');
if (skipped.length) console.log(`Skipped, not passed: ${skipped.map((r) => r.id).join(', ')}`);
await mkdir(args['report-dir'], { recursive: true });
await writeFile(join(args['report-dir'], 'conformance.json'), `${JSON.stringify({ baseUrl, seed, results }, null, 2)}\n`);
await writeFile(join(args['report-dir'], 'junit.xml'), toJUnit(results));
console.log(`Reports: ${join(args['report-dir'], 'conformance.json')}, ${join(args['report-dir'], 'junit.xml')}`);
process.exit(results.some((r) => r.status === 'failed') ? 1 : 0);
