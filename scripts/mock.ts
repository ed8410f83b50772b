/** `pnpm mock`: Prism's mock of the bundled spec on HOST:PORT (127.0.0.1:4790 by default), logging every request. */
import { join } from 'node:path';
import { repoRoot } from './lib/paths.ts';
import { startPrism } from '@call-automation/conformance/harness';

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 4790);
const prism = await startPrism({
  mode: 'mock',
  spec: join(repoRoot, 'spec', 'dist', 'openapi.yaml'),
  host,
  port,
  log: (line) => console.log(line),
});
console.log(`Prism mock of spec/dist/openapi.yaml on ${prism.url} (pid ${prism.pid}). Ctrl+C stops it.`);
const shutdown = () => void prism.stop().then(() => process.exit(0));
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
