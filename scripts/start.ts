/**
 * `pnpm start`: builds the docs, then runs the simulator, a working Call Automation service in
 * memory, on HOST:PORT (127.0.0.1:4780 by default) with the docs at /docs and the spec at
 * /openapi.json and /openapi.yaml, and its control surface on 127.0.0.1:CONTROL_PORT (4781).
 * The access key and callback secret come from CALL_AUTOMATION_ACCESS_KEY and
 * CALL_AUTOMATION_CALLBACK_SECRET, or are made up and printed.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { runSimulator } from '@call-automation/simulator';
import { buildDocs } from './lib/docs.ts';
import { repoRoot } from './lib/paths.ts';

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
const port = portFrom('PORT', 4780);
const controlPort = portFrom('CONTROL_PORT', port === 0 ? 0 : port + 1);
const accessKey = process.env.CALL_AUTOMATION_ACCESS_KEY || randomBytes(32).toString('base64');
const callbackSecret = process.env.CALL_AUTOMATION_CALLBACK_SECRET || `whsec_${randomBytes(24).toString('base64')}`;
if (!callbackSecret.startsWith('whsec_')) {
  console.error('CALL_AUTOMATION_CALLBACK_SECRET must be a whsec_ secret: "whsec_" and a base64 key.');
  process.exit(1);
}

console.log('Building the docs…');
await buildDocs(repoRoot, join(repoRoot, 'docs', 'index.html'));

let running;
try {
  running = await runSimulator({
    host,
    port,
    controlPort,
    accessKey,
    callbackSecret,
    allowLoopback: true,
    files: {
      docs: join(repoRoot, 'docs', 'index.html'),
      specJson: join(repoRoot, 'spec', 'dist', 'openapi.json'),
      specYaml: join(repoRoot, 'spec', 'dist', 'openapi.yaml'),
    },
  });
} catch (error) {
  const code = (error as NodeJS.ErrnoException).code;
  console.error(code === 'EADDRINUSE' ? `A port is in use (${host}:${port} or 127.0.0.1:${controlPort}). Choose others: PORT=4790 CONTROL_PORT=4791 pnpm start` : String(error));
  process.exit(1);
}

const keyNote = process.env.CALL_AUTOMATION_ACCESS_KEY ? '' : '  (made up for this run; set CALL_AUTOMATION_ACCESS_KEY to keep one)';
const secretNote = process.env.CALL_AUTOMATION_CALLBACK_SECRET ? '' : '  (made up for this run; set CALL_AUTOMATION_CALLBACK_SECRET to keep one)';
console.log(`
Call Automation simulator on ${running.url}

  connection string  endpoint=${running.url}/;accesskey=${accessKey}${keyNote}
  callback secret    ${callbackSecret}${secretNote}
  docs               ${running.url}/docs
  spec               ${running.url}/openapi.json  ${running.url}/openapi.yaml
  control            ${running.controlUrl}  (loopback only)
                       GET  /calls
                       POST /calls/{callLegId}/dtmf                       {"tones": ["tone1", "pound"]}
                       POST /calls/{callLegId}/participants/{id}/leave
                       POST /invitations/decline                          {"rawId": "4:+14251001000"}

  Callbacks may go to loopback URIs (http://127.0.0.1:…); private addresses are refused.
  Prism's mock of the spec alone: pnpm mock.  Ctrl+C stops it.`);

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping (queued callbacks get up to 5 s to go out)…`);
  await running!.stop();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
