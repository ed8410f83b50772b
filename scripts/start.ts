/**
 * `pnpm start`: regenerates what the spec makes and builds the docs, each only when stale, then
 * runs the simulator, a working Call Automation service in memory, on HOST:PORT (127.0.0.1:4780
 * by default) with the docs at /docs and the spec at /openapi.json and /openapi.yaml, and its
 * control surface on 127.0.0.1:CONTROL_PORT (PORT + 1 by default). With REDIS_URL it runs on that
 * Redis instead of in memory, sharing its calls, timers and callbacks with every instance started
 * on the same Redis. The access key and callback secret come from CALL_AUTOMATION_ACCESS_KEY and
 * CALL_AUTOMATION_CALLBACK_SECRET, or are made up and printed (instances sharing a Redis need the
 * same ones). Browser pages on any origin may call its API (CORS), as befits a development
 * emulator; SIMULATOR_CORS_ORIGINS (comma-separated origins) restricts that to the ones listed.
 * `pnpm start --help` lists every setting. SIGINT and SIGTERM stop it.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { repoRoot } from './lib/paths.ts';
import { recordedSourceHash, specSourceHash } from './lib/sources.ts';

const defaultPort = 4780;
const help = `pnpm start: the Call Automation simulator, a working service on this machine.

Its settings are environment variables:
  HOST                             the API's address (127.0.0.1)
  PORT                             the API's port (${defaultPort}; 0 for any free one)
  CONTROL_PORT                     the control surface's port, on 127.0.0.1 (PORT + 1)
  CALL_AUTOMATION_ACCESS_KEY       the access key requests are signed with, base64 (made up and printed)
  CALL_AUTOMATION_CALLBACK_SECRET  the whsec_ secret callbacks are signed with (made up and printed)
  REDIS_URL                        redis://… : calls, timers and callbacks on that Redis, shared by every
                                   instance started on it (in memory without it)
  SIMULATOR_ANSWER_DELAY_MS        how long a target rings before it answers, in ms
  SIMULATOR_RING_TIMEOUT_MS        how long a target that never answers rings, in ms
  SIMULATOR_SCENARIOS              a JSON or YAML file of identifiers that behave as scripted
  SIMULATOR_CORS_ORIGINS           the browser origins that may call the API, comma-separated (any)

e.g. PORT=4790 REDIS_URL=redis://127.0.0.1:6379 pnpm start`;
const args = process.argv.slice(2).filter((arg) => arg !== '--');
if (args.includes('--help') || args.includes('-h')) {
  console.log(help);
  process.exit(0);
}
if (args.length) {
  console.error(`pnpm start takes no arguments (${args.join(' ')}): its settings are environment variables.\n\n${help}`);
  process.exit(1);
}

function portFrom(name: string, fallback: number): number {
  const text = process.env[name];
  const port = text === undefined || text === '' ? fallback : Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`${name} must be a port number (0-65535), not "${text}".`);
    process.exit(1);
  }
  return port;
}

const host = process.env.HOST || '127.0.0.1';
const port = portFrom('PORT', defaultPort);
const controlPort = portFrom('CONTROL_PORT', port === 0 ? 0 : port + 1);
const accessKey = process.env.CALL_AUTOMATION_ACCESS_KEY || randomBytes(32).toString('base64');
const callbackSecret = process.env.CALL_AUTOMATION_CALLBACK_SECRET || `whsec_${randomBytes(24).toString('base64')}`;
const redisUrl = process.env.REDIS_URL || undefined;
if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) {
  console.error(`REDIS_URL must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379), not "${redisUrl}".`);
  process.exit(1);
}
if (!callbackSecret.startsWith('whsec_')) {
  console.error('CALL_AUTOMATION_CALLBACK_SECRET must be a whsec_ secret: "whsec_" and a base64 key.');
  process.exit(1);
}

/** Whether nothing listens on a port yet (0 always is free): checked before any slow work. */
function free(onHost: string, onPort: number): Promise<boolean> {
  if (onPort === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(onPort, onHost, () => probe.close(() => resolve(true)));
  });
}
for (const [onHost, onPort, name] of [[host, port, 'PORT'], ['127.0.0.1', controlPort, 'CONTROL_PORT']] as const) {
  if (!(await free(onHost, onPort))) {
    console.error(`${onHost}:${onPort} is in use (${name}). Stop what holds it, or choose other ports: PORT=4790 CONTROL_PORT=4791 pnpm start`);
    process.exit(1);
  }
}

// What the spec makes is regenerated, and the docs rebuilt, only when the spec changed: the
// hash of its sources is recorded in the bundled spec and beside the docs.
const sources = await specSourceHash(repoRoot);
const bundled = await readFile(join(repoRoot, 'spec', 'dist', 'openapi.yaml'), 'utf8').catch(() => '');
if (recordedSourceHash(bundled) === sources) console.log('Generated files are current with the spec (skipped pnpm generate).');
else {
  console.log('The spec changed: regenerating…');
  // The generator and the docs builder load only when they have work: a start with nothing stale stays quick.
  const { findStale, generateAll, writeGenerated } = await import('./lib/generate.ts');
  const files = await generateAll(repoRoot);
  const written = await writeGenerated(repoRoot, files);
  console.log(written.length ? `  wrote ${written.join(', ')}` : '  every generated file was already current');
  if ((await findStale(repoRoot, files)).length) throw new Error('Generated files are still stale after regenerating.');
}
const docs = join(repoRoot, 'docs', 'index.html');
const docsStamp = join(repoRoot, 'docs', '.sources-sha256');
const docsBuiltFrom = await readFile(docsStamp, 'utf8').catch(() => undefined);
if (docsBuiltFrom === sources && (await readFile(docs).then(() => true, () => false))) console.log('The docs are current with the spec (skipped building them).');
else {
  console.log('Building the docs…');
  const { buildDocs } = await import('./lib/docs.ts');
  await buildDocs(repoRoot, docs);
  await writeFile(docsStamp, sources);
}
// Loaded now, so that it runs on the code just regenerated.
const { loadScenarios, redactedUrl, runSimulator, testNumbers } = await import('@call-automation/simulator');

const scenariosPath = process.env.SIMULATOR_SCENARIOS || undefined;
let scenarios;
try {
  scenarios = scenariosPath ? await loadScenarios(scenariosPath) : undefined;
} catch (error) {
  console.error(`${(error as Error).message}\nSIMULATOR_SCENARIOS names a JSON or YAML file of the shape packages/simulator/scenarios.schema.json describes.`);
  process.exit(1);
}
/** A whole number of milliseconds from the environment, or undefined (the simulator's default). */
function millisFrom(name: string): number | undefined {
  const text = process.env[name];
  const ms = text ? Number(text) : undefined;
  if (ms !== undefined && !(Number.isInteger(ms) && ms >= 0)) {
    console.error(`${name} must be a whole number of milliseconds, not "${text}".`);
    process.exit(1);
  }
  return ms;
}
const ringTimeoutMs = millisFrom('SIMULATOR_RING_TIMEOUT_MS');
const answerDelayMs = millisFrom('SIMULATOR_ANSWER_DELAY_MS');

// A local development emulator: pages on any origin may call it, unless the origins are listed.
const corsText = process.env.SIMULATOR_CORS_ORIGINS?.trim();
const corsOrigins = !corsText || corsText === '*' ? ('*' as const) : corsText.split(/[\s,]+/).filter(Boolean);

let running;
try {
  running = await runSimulator({
    host,
    port,
    controlPort,
    accessKey,
    callbackSecret,
    allowLoopback: true,
    redisUrl,
    scenarios,
    ringTimeoutMs,
    answerDelayMs,
    cors: { origins: corsOrigins },
    files: {
      docs: join(repoRoot, 'docs', 'index.html'),
      specJson: join(repoRoot, 'spec', 'dist', 'openapi.json'),
      specYaml: join(repoRoot, 'spec', 'dist', 'openapi.yaml'),
    },
  });
} catch (error) {
  const code = (error as NodeJS.ErrnoException).code;
  const message = (error as Error).message;
  console.error(
    code === 'EADDRINUSE'
      ? `A port is in use (${host}:${port} or 127.0.0.1:${controlPort}). Choose others: PORT=4790 CONTROL_PORT=4791 pnpm start`
      : message.startsWith('cors.origins')
        ? `SIMULATOR_CORS_ORIGINS lists origins separated by commas (https://app.contoso.com,http://127.0.0.1:5173): ${message}`
        : message,
  );
  process.exit(1);
}

const keyNote = process.env.CALL_AUTOMATION_ACCESS_KEY ? '' : '  (made up for this run; set CALL_AUTOMATION_ACCESS_KEY to keep one)';
const secretNote = process.env.CALL_AUTOMATION_CALLBACK_SECRET ? '' : '  (made up for this run; set CALL_AUTOMATION_CALLBACK_SECRET to keep one)';
const stateNote = redisUrl
  ? `on Redis at ${redactedUrl(redisUrl)}: calls, timers and callbacks shared with every instance on it`
  : 'in memory (REDIS_URL=redis://… runs it on Redis, shared by several instances)';
console.log(`
Call Automation simulator on ${running.url}

  state              ${stateNote}
  connection string  endpoint=${running.url}/;accesskey=${accessKey}${keyNote}
                     for the client and pnpm conformance: export CALL_AUTOMATION_CONNECTION_STRING='endpoint=${running.url}/;accesskey=${accessKey}'
  callback secret    ${callbackSecret}${secretNote}
  docs               ${running.url}/docs
  spec               ${running.url}/openapi.json  ${running.url}/openapi.yaml
  browser pages      ${corsOrigins === '*' ? 'any origin may call the API (SIMULATOR_CORS_ORIGINS=https://… restricts it)' : `only ${corsOrigins.join(', ')} may call the API (SIMULATOR_CORS_ORIGINS)`}
  inspector          ${running.controlUrl}/  (calls, requests, events and deliveries, live; loopback only)
  control            ${running.controlUrl}  (loopback only)
                       GET  /calls                                        POST /calls/{callLegId}/hangup
                       POST /calls/{callLegId}/dtmf                       {"tones": ["tone1", "pound"]}
                       POST /calls/{callLegId}/participants/{id}/leave
                       POST /invitations/decline                          {"rawId": "4:+14251001000"}
                       GET  /dead-letters                                 POST /dead-letters/{id}/redrive
                       GET  /stream  (Server-Sent Events)                 GET|POST|DELETE /faults

  test numbers       ${Object.entries(testNumbers)
    .map(([number, behaviour]) => `${number} ${behaviour.description}`)
    .join('\n                     ')}${scenariosPath ? `\n  scenarios          ${Object.keys(scenarios!).length} ${Object.keys(scenarios!).length === 1 ? 'identifier' : 'identifiers'} from ${scenariosPath}` : ''}

  Callbacks may go to loopback URIs (http://127.0.0.1:…); private addresses are refused.
  Prism's mock of the spec alone: pnpm mock.  pnpm start --help: the settings.  Ctrl+C stops it.`);

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(
    redisUrl
      ? `\n${signal}: stopping (callbacks this instance is sending get up to 5 s; the rest stay queued in Redis, for the other instances or the next one started)…`
      : `\n${signal}: stopping (queued callbacks get up to 5 s to go out)…`,
  );
  await running!.stop();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
