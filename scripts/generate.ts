/**
 * `pnpm generate`: makes every generated file from the spec (the bundled spec, and what the
 * packages generate from it). `pnpm generate --check` writes nothing and fails when a committed
 * generated file is stale, which is how CI catches a spec change that was not regenerated.
 */
import { findStale, generateAll, writeGenerated } from './lib/generate.ts';
import { repoRoot } from './lib/paths.ts';

const check = process.argv.includes('--check');
const root = process.env.CALL_AUTOMATION_ROOT ?? repoRoot;

const files = await generateAll(root, (line) => console.log(`  ${line}`));
if (check) {
  const stale = await findStale(root, files);
  if (stale.length > 0) {
    console.error(`Generated files are stale (${stale.length}):`);
    for (const file of stale) console.error(`  ${file.path}: ${file.reason}`);
    console.error('Run `pnpm generate` and commit the result.');
    process.exit(1);
  }
  console.log(`Generated files are up to date (${files.size} checked).`);
} else {
  const written = await writeGenerated(root, files);
  console.log(written.length ? `Wrote ${written.join(', ')}.` : `Generated files were already up to date (${files.size}).`);
}
