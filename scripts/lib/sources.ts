import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

/** The spec's own folders that hold what `pnpm generate` makes or keeps, not the spec's sources. */
const notSources = new Set(['dist', 'released', 'test']);

/**
 * A hash of the hand-written spec (every YAML file under spec/, by path and content): recorded in
 * the bundled spec, so that `pnpm start` tells in milliseconds whether it must regenerate.
 */
export async function specSourceHash(root: string): Promise<string> {
  const files: string[] = [];
  async function walk(folder: string) {
    for (const entry of await readdir(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (!(folder === join(root, 'spec') && notSources.has(entry.name))) await walk(path);
      } else if (entry.name.endsWith('.yaml')) files.push(path);
    }
  }
  await walk(join(root, 'spec'));
  const hash = createHash('sha256');
  for (const path of files.sort()) hash.update(`${relative(root, path)}\n`).update(await readFile(path)).update('\n');
  return hash.digest('hex');
}

/** The line of the bundled spec that records its sources' hash. */
export const sourceHashLine = (hash: string) => `# Sources: sha256 ${hash} (every YAML file of spec/ but dist/, released/ and test/).\n`;

/** The sources' hash a bundled spec (its YAML text) records, if it records one. */
export function recordedSourceHash(bundledYaml: string): string | undefined {
  return /^# Sources: sha256 ([0-9a-f]{64}) /m.exec(bundledYaml.split('\n', 3).join('\n'))?.[1];
}
