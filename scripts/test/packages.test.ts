// Each published package as `pnpm pack` packs it: what the tarball holds, its manifest, publint
// and are-the-types-wrong. (The client's own test also runs its dist and bundles it for browsers.)
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { publint } from 'publint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packPublished, publishedPackages, repoRoot, unpack, type Packed, type PublishedName } from './packing.ts';

const run = promisify(execFile);

interface Manifest {
  name: string;
  version: string;
  bin?: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
  imports?: Record<string, Record<string, string>>;
  files: string[];
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

let work: string;
const packs = new Map<PublishedName, { packed: Packed; root: string; manifest: Manifest; files: string[] }>();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'call-automation-packages-'));
  for (const packed of await packPublished()) {
    const root = await unpack(packed.tarball, join(work, packed.name.replace('/', '+')));
    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Manifest;
    const { stdout } = await run('tar', ['-tzf', packed.tarball]);
    packs.set(packed.name, { packed, root, manifest, files: stdout.trim().split('\n').map((f) => f.replace(/^package\//, '')) });
  }
}, 240_000);
afterAll(() => rm(work, { recursive: true, force: true }));

const pack = (name: PublishedName) => packs.get(name)!;

describe.each(publishedPackages.map((p) => p.name))('%s as packed', (name) => {
  it('holds dist, its README and its manifest, and nothing of the sources or tests', () => {
    const { files } = pack(name);
    expect(files.filter((f) => !f.startsWith('dist/')).sort()).toEqual(['README.md', 'package.json']);
    expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => /(^|\/)test\//.test(f))).toEqual([]);
  });

  it('points every export and import at a file of dist that is in the tarball, types first', async () => {
    const { root, manifest } = pack(name);
    const targets = [
      ...Object.entries(manifest.exports).map(([key, target]) => [key, target] as const),
      ...Object.entries(manifest.imports ?? {}).map(([key, target]) => [key, target] as const),
    ];
    for (const [key, target] of targets) {
      if (key === './package.json') continue;
      if (typeof target === 'string') expect(target).toMatch(/^\.\/dist\//);
      else expect(Object.keys(target)[0]).toBe('types');
      for (const file of typeof target === 'string' ? [target] : Object.values(target)) {
        expect(file).toMatch(/^\.\/dist\//);
        expect((await stat(join(root, file))).isFile()).toBe(true);
      }
    }
  });

  it('depends on the other packages by version, with no workspace: or catalog: range left', () => {
    const { manifest } = pack(name);
    const ranges = Object.values({ ...manifest.dependencies, ...manifest.peerDependencies });
    expect(ranges.filter((r) => /^(workspace|catalog):/.test(r))).toEqual([]);
    for (const [dependency, range] of Object.entries(manifest.dependencies ?? {})) if (dependency.startsWith('@call-automation/')) expect(range).toBe(manifest.version);
  });

  it('is clean for publint', async () => {
    const { messages } = await publint({ pkgDir: pack(name).root, level: 'suggestion', pack: false });
    expect(messages).toEqual([]);
  });

  it('is clean for are-the-types-wrong (ESM only)', async () => {
    const { stdout } = await run(join(repoRoot, 'node_modules', '.bin', 'attw'), [pack(name).packed.tarball, '--profile', 'esm-only', '--format', 'json'], { maxBuffer: 64 * 1024 * 1024 }).catch(
      (error: { stdout: string }) => error,
    );
    const { analysis } = JSON.parse(stdout) as { analysis: { problems: Array<{ kind: string; entrypoint: string; resolutionKind?: string }> } };
    // ESM only: CommonJS and node10 resolution are out of scope, as attw's esm-only profile says.
    expect(analysis.problems.filter((p) => !['node10', 'node16-cjs'].includes(p.resolutionKind ?? ''))).toEqual([]);
  }, 60_000);
});

describe('the manifests', () => {
  it('the contract ships its bundled spec as ./openapi.json', async () => {
    const { root, manifest } = pack('@call-automation/contract');
    expect(manifest.exports['./openapi.json']).toBe('./dist/generated/openapi.json');
    const spec = JSON.parse(await readFile(join(root, 'dist', 'generated', 'openapi.json'), 'utf8')) as { openapi: string };
    expect(spec.openapi).toMatch(/^3\.1\./);
  });

  it('the server has hono as a peer, not a dependency of its own', () => {
    const { manifest } = pack('@call-automation/server');
    expect(manifest.peerDependencies?.hono).toMatch(/^\^4\./);
    expect(manifest.dependencies).not.toHaveProperty('hono');
    expect(manifest.peerDependenciesMeta?.hono?.optional).toBeFalsy();
  });

  it("the conformance suite's bin is its built CLI, and Prism an optional peer of its harness", async () => {
    const { root, manifest, files } = pack('@call-automation/conformance');
    expect(manifest.bin).toEqual({ 'call-automation-conformance': './dist/cli.js', 'call-automation-trigger': './dist/trigger-cli.js' });
    expect((await readFile(join(root, 'dist', 'cli.js'), 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect((await readFile(join(root, 'dist', 'trigger-cli.js'), 'utf8')).startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(manifest.dependencies).not.toHaveProperty('@stoplight/prism-cli');
    expect(manifest.peerDependencies?.['@stoplight/prism-cli']).toBeDefined();
    expect(manifest.peerDependenciesMeta?.['@stoplight/prism-cli']?.optional).toBe(true);
    // No copy of the spec: it reads the contract package's.
    expect(files.filter((f) => /openapi|\.ya?ml$/.test(f))).toEqual([]);
    expect(await readFile(join(root, 'dist', 'contract.js'), 'utf8')).toContain("'@call-automation/contract/openapi.json'");
  });

  it('building left nothing outside dist: no .js or .d.ts beside the sources or tests', async () => {
    const { stdout } = await run('git', ['ls-files', '--others', '--exclude-standard', '--', ...publishedPackages.map((p) => p.dir)], { cwd: repoRoot });
    expect(stdout.split('\n').filter((f) => /\.(js|d\.ts|js\.map)$/.test(f))).toEqual([]);
  });

  it('no package runs a build script when installed', () => {
    for (const { manifest } of packs.values()) {
      expect(Object.keys(manifest.scripts ?? {}).filter((s) => /^(pre|post)?install$|^prepare$/.test(s))).toEqual([]);
    }
  });
});
