/**
 * The published packages packed as `pnpm pack` packs them for publication (its prepack builds
 * dist; workspace: and catalog: ranges become versions), once for all the tests that need them.
 *
 * Tests run in parallel and every pack rebuilds a package's dist, so packing is serialised by a
 * lock directory, and the tarballs are kept under node_modules/.cache keyed by a hash of what
 * goes into them: the tests that need them share one pack per change of the sources.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const repoRoot = join(import.meta.dirname, '..', '..');

/** The published packages, in the order they depend on each other. */
export const publishedPackages = [
  { name: '@call-automation/contract', dir: join(repoRoot, 'packages', 'contract') },
  { name: '@call-automation/client', dir: join(repoRoot, 'packages', 'client') },
  { name: '@call-automation/server', dir: join(repoRoot, 'packages', 'server') },
  { name: '@call-automation/conformance', dir: join(repoRoot, 'conformance') },
] as const;

export type PublishedName = (typeof publishedPackages)[number]['name'];

/** A packed package: its tarball and its manifest as packed. */
export interface Packed {
  name: PublishedName;
  tarball: string;
}

const cacheRoot = join(repoRoot, 'node_modules', '.cache', 'call-automation-packs');
const lockDir = join(cacheRoot, '.lock');

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await filesUnder(path)));
    else if (entry.isFile()) files.push(path);
  }
  return files;
}

/** A hash of everything a pack is made from. */
async function inputsHash(): Promise<string> {
  const hash = createHash('sha256');
  const files = [join(repoRoot, 'tsconfig.base.json'), join(repoRoot, 'pnpm-workspace.yaml')];
  for (const { dir } of publishedPackages) {
    files.push(...(await filesUnder(join(dir, 'src'))));
    for (const name of await readdir(dir)) if (/^(package\.json|README\.md|tsconfig.*\.json)$/.test(name)) files.push(join(dir, name));
  }
  for (const file of files.sort()) hash.update(`${relative(repoRoot, file)}\0`).update(await readFile(file)).update('\0');
  return hash.digest('hex').slice(0, 16);
}

async function withLock<T>(work: () => Promise<T>): Promise<T> {
  await mkdir(cacheRoot, { recursive: true });
  const deadline = Date.now() + 240_000;
  for (;;) {
    try {
      await mkdir(lockDir);
      break;
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error;
      // A lock left by a run that died: older than any pack takes.
      const since = await stat(lockDir).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (since > 180_000) await rm(lockDir, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`Waited too long for ${lockDir}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

/**
 * Packs the published packages (each with `pnpm pack`, which builds it first) and gives back their
 * tarballs, from the cache when nothing they are made from changed.
 */
export function packPublished(): Promise<Packed[]> {
  return withLock(async () => {
    const dir = join(cacheRoot, await inputsHash());
    const complete = async () => {
      const names = await readdir(dir).catch(() => [] as string[]);
      return publishedPackages.map(({ name }) => {
        const prefix = `${name.slice(1).replace('/', '-')}-`;
        const file = names.find((f) => f.startsWith(prefix) && f.endsWith('.tgz'));
        return file ? { name, tarball: join(dir, file) } : undefined;
      });
    };
    let packed = await complete();
    if (packed.every(Boolean)) return packed as Packed[];
    const building = `${dir}.building`;
    await rm(building, { recursive: true, force: true });
    await mkdir(building, { recursive: true });
    // Two at a time (each build is a tsc of its own sources, and the machines running this have
    // two cores or more); no build reads another package's dist.
    const queue = publishedPackages.map((p) => p.dir);
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await run('pnpm', ['pack', '--pack-destination', building], { cwd: next });
    };
    await Promise.all([worker(), worker()]);
    // Packs of older sources are of no more use.
    for (const old of await readdir(cacheRoot)) if (old !== '.lock' && old !== `${dir.slice(cacheRoot.length + 1)}.building`) await rm(join(cacheRoot, old), { recursive: true, force: true });
    await rename(building, dir);
    packed = await complete();
    if (!packed.every(Boolean)) throw new Error(`pnpm pack left ${(await readdir(dir)).join(', ')} in ${dir}`);
    return packed as Packed[];
  });
}

/** Unpacks a tarball into `into` (its files under `into/package`). */
export async function unpack(tarball: string, into: string): Promise<string> {
  await mkdir(into, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', into]);
  return join(into, 'package');
}
