// The release set-up in .changeset, run: `changeset version` (as the root `version` script runs
// it) on a copy of the workspace's manifests with a sample changeset, and what follows from the
// version it writes: every published package at that one version with its CHANGELOG.md, their
// dependencies on each other packed as that version, and the client's User-Agent naming it.
// Offline, and without building anything: about two seconds.
import { exec as execCallback, execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishedPackages, repoRoot } from './packing.ts';

const run = promisify(execFile);
const sh = promisify(execCallback);

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const readJson = async <T>(path: string) => JSON.parse(await readFile(path, 'utf8')) as T;
const relativeDir = (dir: string) => dir.slice(repoRoot.length + 1);

/** The workspace's packages (pnpm-workspace.yaml: packages/* and conformance), as directories relative to the root. */
async function workspaceDirs(): Promise<string[]> {
  const dirs = (await readdir(join(repoRoot, 'packages'))).map((name) => `packages/${name}`);
  return [...dirs, 'conformance'];
}

/** The sample changeset: a patch of the client alone, which the fixed group carries to all four. */
const sample = `---
"@call-automation/client": patch
---

The client's sample fix, for the release test.
`;

/** The next version of a fixed group after the pending changesets: the highest bump wins. */
function bumped(version: string, bumps: string[]): string {
  const [major, minor, patch] = version.split('.').map(Number) as [number, number, number];
  if (bumps.includes('major')) return `${major + 1}.0.0`;
  if (bumps.includes('minor')) return `${major}.${minor + 1}.0`;
  return `${major}.${minor}.${patch + 1}`;
}

describe('changeset version', () => {
  let work: string;
  let before: Map<string, Manifest>;
  let after: Map<string, Manifest>;
  let bumps: string[];
  let output: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'call-automation-changesets-'));
    // The manifests and the changesets are all `changeset version` reads (no sources, no git);
    // node_modules is the workspace's, for the CLI and its changelog module.
    await cp(join(repoRoot, 'package.json'), join(work, 'package.json'));
    await cp(join(repoRoot, 'pnpm-workspace.yaml'), join(work, 'pnpm-workspace.yaml'));
    await cp(join(repoRoot, '.changeset'), join(work, '.changeset'), { recursive: true });
    await symlink(join(repoRoot, 'node_modules'), join(work, 'node_modules'), 'dir');
    before = new Map();
    for (const dir of await workspaceDirs()) {
      await mkdir(join(work, dir), { recursive: true });
      await cp(join(repoRoot, dir, 'package.json'), join(work, dir, 'package.json'));
      before.set(dir, await readJson<Manifest>(join(repoRoot, dir, 'package.json')));
    }
    // The client's version module, which the User-Agent reads in the sources.
    await mkdir(join(work, 'packages/client/src'), { recursive: true });
    await cp(join(repoRoot, 'packages/client/src/version.ts'), join(work, 'packages/client/src/version.ts'));
    // The changesets already pending (the repository's own) and the sample.
    await writeFile(join(work, '.changeset', 'release-test-sample.md'), sample);
    bumps = [];
    for (const file of (await readdir(join(work, '.changeset'))).filter((f) => f.endsWith('.md') && f !== 'README.md')) {
      const front = (await readFile(join(work, '.changeset', file), 'utf8')).split('---')[1]!;
      bumps.push(...[...front.matchAll(/:\s*(major|minor|patch)\b/g)].map((m) => m[1]!));
    }

    // The root `version` script's changeset step, as it is written there.
    const { scripts } = await readJson<Manifest>(join(repoRoot, 'package.json'));
    const versionStep = scripts!.version!.split('&&')[0]!.trim();
    expect(versionStep).toMatch(/changeset(\.mjs)? version$/);
    const result = await sh(versionStep, { cwd: work, env: { ...process.env, CI: 'true' } });
    output = result.stdout + result.stderr;

    after = new Map();
    for (const dir of await workspaceDirs()) after.set(dir, await readJson<Manifest>(join(work, dir, 'package.json')));
  }, 30_000);
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('gives the four published packages one new version, the highest bump of the changesets pending', async () => {
    const published = publishedPackages.map((p) => relativeDir(p.dir));
    const old = published.map((dir) => before.get(dir)!.version);
    expect(new Set(old).size, `versions before: ${old.join(', ')}`).toBe(1);
    const expected = bumped(old[0]!, bumps);
    expect(published.map((dir) => [after.get(dir)!.name, after.get(dir)!.version])).toEqual(published.map((dir) => [before.get(dir)!.name, expected]));
    // The private simulator is not versioned.
    for (const [dir, manifest] of before) if (manifest.private) expect(after.get(dir)!.version).toBe(manifest.version);
    expect(output).not.toMatch(/error/i);
  });

  it('is run by the root scripts: changeset, version (then generate) and release (build, then publish)', async () => {
    const { scripts } = await readJson<Manifest>(join(repoRoot, 'package.json'));
    expect(scripts!.changeset).toBe('node .changeset/changeset.mjs');
    expect(scripts!.version).toBe('node .changeset/changeset.mjs version && pnpm generate');
    expect(scripts!.release).toBe('pnpm -r run build && node .changeset/changeset.mjs publish');
    const config = await readJson<{ fixed: string[][]; access: string; baseBranch: string }>(join(repoRoot, '.changeset', 'config.json'));
    expect(config).toMatchObject({ access: 'public', baseBranch: 'main', fixed: [publishedPackages.map((p) => p.name)] });
  });

  it('writes a CHANGELOG.md for each, with the new version and what changed', async () => {
    for (const { dir, name } of publishedPackages) {
      const changelog = await readFile(join(work, relativeDir(dir), 'CHANGELOG.md'), 'utf8');
      const { version } = after.get(relativeDir(dir))!;
      expect(changelog.startsWith(`# ${name}\n\n## ${version}\n`), changelog.slice(0, 200)).toBe(true);
    }
    expect(await readFile(join(work, 'packages/client/CHANGELOG.md'), 'utf8')).toContain("- The client's sample fix, for the release test.");
    // The changesets are consumed; the set-up stays.
    expect((await readdir(join(work, '.changeset'))).sort()).toEqual(['README.md', 'changeset.mjs', 'config.json']);
  });

  it('packs their dependencies on each other as the new version', async () => {
    const version = after.get('packages/contract')!.version;
    const names = new Map<string, string>(publishedPackages.map(({ name, dir }) => [name, relativeDir(dir)]));
    const workspace = new Map([...after].map(([dir, manifest]) => [manifest.name, dir]));
    const out = join(work, 'packs');
    await Promise.all(
      publishedPackages.map(async ({ dir }) => {
        const at = join(work, relativeDir(dir));
        const manifest = after.get(relativeDir(dir))!;
        // Where an install would link the workspace packages it depends on (dev dependencies
        // too), for pnpm pack to read their versions.
        for (const dependency of Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies, ...manifest.devDependencies })) {
          const target = workspace.get(dependency);
          if (!target) continue;
          await mkdir(join(at, 'node_modules', '@call-automation'), { recursive: true });
          await symlink(join(work, target), join(at, 'node_modules', dependency), 'dir');
        }
        // No prepack build: only the manifest as packed is read here.
        await run('pnpm', ['pack', '--pack-destination', out], { cwd: at, env: { ...process.env, npm_config_ignore_scripts: 'true' } }).catch((error: Error & { stderr?: string; stdout?: string }) => {
          throw new Error(`pnpm pack in ${relativeDir(dir)}: ${error.stdout ?? ''}${error.stderr ?? error.message}`);
        });
      }),
    );
    const packed: Record<string, Record<string, string>> = {};
    for (const file of await readdir(out)) {
      const { stdout } = await run('tar', ['-xzOf', join(out, file), 'package/package.json']);
      const manifest = JSON.parse(stdout) as Manifest;
      expect(manifest.version).toBe(version);
      packed[manifest.name] = Object.fromEntries(Object.entries({ ...manifest.dependencies, ...manifest.peerDependencies }).filter(([name]) => names.has(name)));
    }
    expect(packed).toEqual({
      '@call-automation/contract': {},
      '@call-automation/client': { '@call-automation/contract': version },
      '@call-automation/server': { '@call-automation/contract': version },
      '@call-automation/conformance': { '@call-automation/client': version, '@call-automation/contract': version },
    });
  }, 30_000);

  it("carries the new version into the client's User-Agent, in the sources and as built", async () => {
    const { version } = after.get('packages/client')!;
    const client = join(work, 'packages/client');
    const source = (await import(join(client, 'src/version.ts'))) as typeof import('../../packages/client/src/version.ts');
    expect(source.packageVersion).toBe(version);
    // The build's step that writes dist/version.js, as the client's build script has it.
    const step = after.get('packages/client')!.scripts!.build!.split('&&').map((s) => s.trim()).find((s) => s.includes('version.js'));
    expect(step).toBeDefined();
    await mkdir(join(client, 'dist'), { recursive: true });
    await sh(step!, { cwd: client });
    expect(await readFile(join(client, 'dist/version.js'), 'utf8')).toBe(`export const packageVersion = ${JSON.stringify(version)};\n`);
  });
});
