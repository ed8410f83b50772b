/**
 * The published packages as a project outside the workspace has them: the client, the server and
 * the contract unpacked from their tarballs (packed as for publication, so their exports point at
 * dist) into `node_modules/@call-automation/*` of a temporary directory, and each of their
 * dependencies linked to the copy the workspace installed. Bun, Deno (with
 * `--node-modules-dir=manual`) and esbuild then resolve the packages by their published manifests,
 * conditions included (`bun`, `deno`, `browser`, `workerd`), as they would after `npm install`.
 */
import { mkdir, mkdtemp, readFile, realpath, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packPublished, publishedPackages, unpack, type PublishedName } from '../packing.ts';

const used: PublishedName[] = ['@call-automation/contract', '@call-automation/client', '@call-automation/server'];

export interface InstalledProject {
  /** The project's directory: its package.json and node_modules. */
  dir: string;
  /** Where an installed package is: `join(dir, 'node_modules', name)`. */
  packageDir(name: PublishedName): string;
  remove(): Promise<void>;
}

interface Manifest {
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

export async function installPublished(prefix: string): Promise<InstalledProject> {
  const packed = await packPublished();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const modules = join(dir, 'node_modules');
  const linked = new Set<string>();
  for (const name of used) {
    const { tarball } = packed.find((p) => p.name === name)!;
    const unpacked = join(modules, name);
    await mkdir(join(modules, '@call-automation'), { recursive: true });
    await rename(await unpack(tarball, join(dir, '.unpacking', name)), unpacked);
    const manifest = JSON.parse(await readFile(join(unpacked, 'package.json'), 'utf8')) as Manifest;
    const needed = [
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}).filter((peer) => !manifest.peerDependenciesMeta?.[peer]?.optional),
    ];
    const workspaceDir = publishedPackages.find((p) => p.name === name)!.dir;
    for (const dependency of needed) {
      if (dependency.startsWith('@call-automation/') || linked.has(dependency)) continue;
      linked.add(dependency);
      const from = await realpath(join(workspaceDir, 'node_modules', dependency));
      await mkdir(join(modules, ...dependency.split('/').slice(0, -1)), { recursive: true });
      await symlink(from, join(modules, dependency), 'dir');
    }
  }
  await rm(join(dir, '.unpacking'), { recursive: true, force: true });
  const dependencies = Object.fromEntries([...used, ...linked].map((name) => [name, '*']));
  await writeFile(join(dir, 'package.json'), `${JSON.stringify({ name: 'runtime-check', private: true, type: 'module', dependencies }, null, 2)}\n`);
  return {
    dir,
    packageDir: (name) => join(modules, name),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
