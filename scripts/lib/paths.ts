import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The repository's root folder. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the workspace's own command-line tools are installed. */
export const binDir = join(repoRoot, 'node_modules', '.bin');
