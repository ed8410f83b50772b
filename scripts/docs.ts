/** `pnpm build:docs`: builds docs/index.html, the self-contained API reference, from the bundled spec. */
import { join } from 'node:path';
import { buildDocs } from './lib/docs.ts';
import { repoRoot } from './lib/paths.ts';

const out = join(repoRoot, 'docs', 'index.html');
const started = performance.now();
const { bytes } = await buildDocs(repoRoot, out);
console.log(`Wrote docs/index.html (${(bytes / 1024 / 1024).toFixed(1)} MB, self-contained) in ${Math.round(performance.now() - started)} ms.`);
