/**
 * `pnpm check:breaking`: fails when the contract under spec/ would break clients or callback
 * receivers built against the last released contract, spec/released/openapi.json, unless
 * info.version's major was raised above the released one. Additive changes pass and are listed.
 *
 * The spec is bundled here rather than read from spec/dist/, so that an edit judged before
 * `pnpm generate` is judged as written (the drift check catches a stale spec/dist/ on its own).
 *
 * `pnpm check:breaking --accept` makes the current contract the released one, in the release
 * commit: it writes the bundle (the bytes of spec/dist/openapi.json) to spec/released/, and
 * refuses to when the gate fails or the contract changed without a new info.version.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleSpec } from './lib/bundle.ts';
import { judge, renderVerdict, type JsonObject } from './lib/breaking.ts';
import { repoRoot } from './lib/paths.ts';

const accept = process.argv.includes('--accept');
const root = process.env.CALL_AUTOMATION_ROOT ?? repoRoot;
const snapshot = 'spec/released/openapi.json';

const releasedText = await readFile(join(root, snapshot), 'utf8').catch(() => undefined);
if (releasedText === undefined) {
  console.error(`No released contract at ${snapshot}. To make the current contract the baseline, copy spec/dist/openapi.json there (see spec/released/README.md).`);
  process.exit(1);
}
const released = JSON.parse(releasedText) as JsonObject;
const bundle = await bundleSpec(root);
const current = JSON.parse(bundle.json) as JsonObject;
const verdict = judge(released, current);
const report = renderVerdict(verdict, snapshot);

if (!verdict.passes) {
  console.error(report);
  if (accept) console.error(`\nNot updating ${snapshot}: the breaking changes above are not released by a new major version.`);
  process.exit(1);
}
console.log(report);
if (accept) {
  if (bundle.json === releasedText) {
    console.log(`\n${snapshot} is already the current contract (${verdict.currentVersion}).`);
  } else if (verdict.breaking.length + verdict.additive.length > 0 && verdict.currentVersion === verdict.releasedVersion) {
    // Two different contracts under one version number would leave clients unable to tell them apart.
    console.error(`\nNot updating ${snapshot}: the contract changed but info.version is still ${verdict.currentVersion}. Raise it in spec/openapi.yaml (the minor for additive changes), then run this again.`);
    process.exit(1);
  } else {
    await writeFile(join(root, snapshot), bundle.json);
    console.log(`\nUpdated ${snapshot}: ${verdict.currentVersion} is the released contract now. Commit it with the release.`);
  }
}
