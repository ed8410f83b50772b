import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redocly } from './redocly.ts';
import { generatedHeader } from './generated.ts';
import { sourceHashLine, specSourceHash } from './sources.ts';

export interface Bundle {
  yaml: string;
  json: string;
}

/**
 * Bundles the multi-file spec under `root/spec` into one document, in YAML (with a do-not-edit
 * header) and JSON. Internal `$ref`s into `components` are kept, so that schemas keep their names.
 */
export async function bundleSpec(root: string): Promise<Bundle> {
  const out = await mkdtemp(join(tmpdir(), 'call-automation-bundle-'));
  try {
    const formats = ['yaml', 'json'] as const;
    const [yaml, json] = await Promise.all(
      formats.map(async (ext) => {
        const file = join(out, `openapi.${ext}`);
        const result = await redocly(['bundle', 'spec/openapi.yaml', '--ext', ext, '-o', file], root);
        if (result.code !== 0) {
          throw new Error(`redocly bundle failed:\n${result.stdout}\n${result.stderr}`);
        }
        return readFile(file, 'utf8');
      }),
    );
    return { yaml: generatedHeader('#', 'spec/openapi.yaml') + sourceHashLine(await specSourceHash(root)) + yaml!, json: json! };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}
