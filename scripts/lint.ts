/**
 * `pnpm lint`: Redocly's lint of the spec with the rules in redocly.yaml. Fails on any error
 * or warning, so that the spec stays at zero of both.
 */
import { redocly } from './lib/redocly.ts';
import { repoRoot } from './lib/paths.ts';

const { code, stdout, stderr } = await redocly(['lint', 'spec/openapi.yaml', '--format', 'stylish'], repoRoot);
const output = [stdout, stderr].filter(Boolean).join('\n');
const warnings = /(\d+) warnings?/.exec(output);
if (code !== 0 || (warnings && Number(warnings[1]) > 0)) {
  console.error(output);
  console.error('\nThe spec has lint problems (above). Fix them in spec/ and run `pnpm lint` again.');
  process.exit(1);
}
console.log('spec/openapi.yaml: 0 errors, 0 warnings');
