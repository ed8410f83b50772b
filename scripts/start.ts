/**
 * `pnpm start`: builds the docs and serves the API on HOST:PORT (127.0.0.1:4780 by default),
 * with the docs at /docs and the spec at /openapi.json and /openapi.yaml. The API is Prism's
 * mock of the spec: it answers the spec's examples and checks requests against the schemas.
 */
import { join } from 'node:path';
import { buildDocs } from './lib/docs.ts';
import { startFront } from './lib/front.ts';
import { repoRoot } from './lib/paths.ts';
import { startPrism } from './lib/prism.ts';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 4780);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`PORT must be a port number, not "${process.env.PORT}".`);
  process.exit(1);
}

console.log('Building the docs…');
await buildDocs(repoRoot, join(repoRoot, 'docs', 'index.html'));
console.log('Starting the mock…');
const prism = await startPrism({ mode: 'mock', spec: join(repoRoot, 'spec', 'dist', 'openapi.yaml') });
let front: Awaited<ReturnType<typeof startFront>>;
try {
  front = await startFront({ root: repoRoot, upstream: prism.url, host, port });
} catch (error) {
  await prism.stop();
  const code = (error as NodeJS.ErrnoException).code;
  console.error(code === 'EADDRINUSE' ? `${host}:${port} is in use. Stop what holds it, or choose another port: PORT=4790 pnpm start` : String(error));
  process.exit(1);
}

console.log(`
Call Automation API (Prism mock of the spec) on ${front.url}
  docs:  ${front.url}/docs
  spec:  ${front.url}/openapi.json  ${front.url}/openapi.yaml

  Any Authorization header is accepted by the mock. Ask for a documented status with Prefer:
    curl -i -X POST ${front.url}/calls/abc/Hangup -H 'Authorization: HMAC-SHA256 x' -H 'Prefer: code=404'

Ctrl+C stops it.`);

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping…`);
  front.server.closeAllConnections();
  await Promise.all([new Promise((done) => front.server.close(done)), prism.stop()]);
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
