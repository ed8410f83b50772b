import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { publint } from 'publint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packPublished, unpack } from '../../../scripts/test/packing.ts';

const run = promisify(execFile);
const packageDir = join(import.meta.dirname, '..');
const bin = (name: string) => join(packageDir, 'node_modules', '.bin', name);

/**
 * The main entry's budget, bundled for browsers, minified, gzipped: everything it exports, with
 * its signing and retries and the spec's operations its methods are made from, as `pnpm bench`
 * prints it. 4.5 kB: the methods are made from the contract's `operationRoutes`, the seven fields
 * of the table of operations the client reads, and not from `operationTable`, whose other fields
 * (statuses, validators, contacted URIs, …) serve the server and the conformance suite and stay
 * out of the bundle (about 0.27 kB less). That keeps room for the two errors a user meets first
 * saying what to do (about 0.11 kB): a missing connection string names
 * CALL_AUTOMATION_CONNECTION_STRING, and a network error names the operation, method, URL and code.
 */
const sizeCeiling = 4608;

describe('the published package', () => {
  let dir: string;
  let tarball: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'call-automation-client-pack-'));
    // Packed as for publication (pnpm pack, whose prepack builds dist), with the contract it
    // depends on; the packs are shared with the other tests that need them.
    const packed = await packPublished();
    const packOf = (name: string) => packed.find((p) => p.name === name)!.tarball;
    tarball = packOf('@call-automation/client');
    await unpack(tarball, dir);
    // The contract unpacked where an install would put it, and the third-party dependencies of
    // both linked from the workspace: the client's dist then runs on plain Node as it would installed.
    const contractDir = join(packageDir, '..', 'contract');
    const modules = join(dir, 'package', 'node_modules');
    await mkdir(join(modules, '@call-automation', 'contract'), { recursive: true });
    await run('tar', ['-xzf', packOf('@call-automation/contract'), '-C', join(modules, '@call-automation', 'contract'), '--strip-components=1']);
    for (const from of [packageDir, contractDir]) {
      const { dependencies } = JSON.parse(await readFile(join(from, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
      for (const name of Object.keys(dependencies).filter((n) => !n.startsWith('@call-automation/'))) {
        await symlink(join(from, 'node_modules', name), join(modules, name)).catch((error: { code?: string }) => {
          if (error.code !== 'EEXIST') throw error;
        });
      }
    }
  }, 240_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('exports dist, types first, with the workspace source swapped out', async () => {
    const manifest = JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(join(dir, 'package', 'package.json'), 'utf8')));
    expect(Object.keys(manifest.exports['.'])).toEqual(['types', 'default']);
    expect(manifest.exports['.'].default).toBe('./dist/index.js');
    expect(manifest.exports['./events'].types).toBe('./dist/events/index.d.ts');
    expect(manifest.exports['./raw']).toEqual({ types: './dist/raw/index.d.ts', default: './dist/raw/index.js' });
  });

  it('runs from dist on Node, signing with node:crypto through its #node-crypto import', async () => {
    const dist = (await import(join(dir, 'package', 'dist', 'index.js'))) as typeof import('../src/index.ts');
    const source = await import('../src/index.ts');
    const sign = (module: typeof source) => module.createHmacSigner('Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=', { now: () => 0 })('POST', 'https://x.example/calls', '{}');
    const signed = sign(dist);
    expect(signed instanceof Promise).toBe(false);
    expect(signed).toEqual(await sign(source));
    // The version the User-Agent names, written into dist from package.json by the build.
    const { version } = JSON.parse(await readFile(join(dir, 'package', 'package.json'), 'utf8')) as { version: string };
    expect(dist.packageVersion).toBe(version);
    expect(await readFile(join(dir, 'package', 'dist', 'version.js'), 'utf8')).toBe(`export const packageVersion = ${JSON.stringify(version)};\n`);
  });

  it('is clean for publint', async () => {
    const { messages } = await publint({ pkgDir: join(dir, 'package'), level: 'suggestion', pack: false });
    expect(messages).toEqual([]);
  });

  it("is clean for are-the-types-wrong (ESM only)", async () => {
    const { stdout } = await run(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'json']).catch((error: { stdout: string }) => error);
    const { analysis } = JSON.parse(stdout) as { analysis: { problems: Array<{ kind: string; entrypoint: string; resolutionKind: string }> } };
    // The package is ESM only: CommonJS and node10 resolution are out of scope, as attw's esm-only profile says.
    const problems = analysis.problems.filter((p) => !['node10', 'node16-cjs'].includes(p.resolutionKind));
    expect(problems).toEqual([]);
    expect(analysis.problems.map((p) => p.entrypoint)).toEqual(['.', '.', './events', './events', './raw', './raw']);
  });

  it.each(['index.js', 'events/index.js', 'raw/index.js'])('bundles %s for browsers with no node: import', async (entry) => {
    const result = await build({
      entryPoints: [join(dir, 'package', 'dist', entry)],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      metafile: true,
      nodePaths: [join(packageDir, 'node_modules')],
    });
    expect(Object.keys(result.metafile.inputs).filter((input) => input.startsWith('node:'))).toEqual([]);
  });

  it('bundles the main entry for browsers within its 4.5 kB budget, without openapi-fetch or the table of operations', async () => {
    const result = await build({
      entryPoints: [join(dir, 'package', 'dist', 'index.js')],
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      metafile: true,
      nodePaths: [join(packageDir, 'node_modules')],
    });
    expect(Object.keys(result.metafile.inputs).filter((input) => input.includes('openapi-fetch') || input.endsWith('package.json'))).toEqual([]);
    // The Node signing path stays out of a browser build (the #node-crypto import's browser condition).
    expect(Object.keys(result.metafile.inputs).filter((input) => input.includes('node-crypto'))).toEqual(['package/dist/no-node-crypto.js'].map((f) => expect.stringContaining(f)));
    expect(result.outputFiles[0]!.text).not.toContain('getBuiltinModule');
    // The operations come from operationRoutes: the table's fields for the server stay out.
    for (const field of ['successStatus', 'contactedUris', 'validators', 'endsCall']) expect(result.outputFiles[0]!.text).not.toContain(field);
    const gzipped = gzipSync(result.outputFiles[0]!.contents, { level: 9 }).length;
    expect(gzipped).toBeLessThanOrEqual(sizeCeiling);
  });
});
