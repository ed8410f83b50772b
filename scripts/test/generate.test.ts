import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findStale, generateAll } from '../lib/generate.ts';
import { binDir, repoRoot } from '../lib/paths.ts';

const run = promisify(execFile);

describe('the generated files', () => {
  let copy: string;

  // A copy of the repository's spec and generated files, so that a test can change the spec.
  beforeEach(async () => {
    copy = await mkdtemp(join(tmpdir(), 'call-automation-drift-'));
    await cp(join(repoRoot, 'spec'), join(copy, 'spec'), { recursive: true });
    await cp(join(repoRoot, 'redocly.yaml'), join(copy, 'redocly.yaml'));
  });
  afterEach(() => rm(copy, { recursive: true, force: true }));

  it('as committed match what the spec generates', async () => {
    expect(await findStale(copy, await generateAll(copy))).toEqual([]);
  });

  it('are reported stale when the spec changes and they are not regenerated', async () => {
    const path = join(copy, 'spec', 'components', 'schemas', 'CreateCallRequest.yaml');
    await writeFile(path, (await readFile(path, 'utf8')).replace('maxLength: 256', 'maxLength: 300'));
    const stale = await findStale(copy, await generateAll(copy));
    expect(stale).toEqual([
      { path: 'spec/dist/openapi.yaml', reason: 'differs' },
      { path: 'spec/dist/openapi.json', reason: 'differs' },
    ]);
  });

  it('are reported missing when deleted', async () => {
    await rm(join(copy, 'spec', 'dist', 'openapi.json'));
    expect(await findStale(copy, await generateAll(copy))).toEqual([{ path: 'spec/dist/openapi.json', reason: 'missing' }]);
  });

  it('make `pnpm generate --check` fail with what to do, and `pnpm generate` mend them', async () => {
    const path = join(copy, 'spec', 'paths', 'calls.yaml');
    await writeFile(path, (await readFile(path, 'utf8')).replace('summary: Create a call', 'summary: Start a call'));
    const env = { ...process.env, CALL_AUTOMATION_ROOT: copy };
    const script = join(repoRoot, 'scripts', 'generate.ts');
    const failed = await run(join(binDir, 'tsx'), [script, '--check'], { env }).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain('spec/dist/openapi.yaml: differs');
    expect(failed?.stderr).toContain('Run `pnpm generate` and commit the result.');

    await run(join(binDir, 'tsx'), [script], { env });
    const { stdout } = await run(join(binDir, 'tsx'), [script, '--check'], { env });
    expect(stdout).toContain('Generated files are up to date');
    expect(await readFile(join(copy, 'spec', 'dist', 'openapi.yaml'), 'utf8')).toContain('summary: Start a call');
  });
});
