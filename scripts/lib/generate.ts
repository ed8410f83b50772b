import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { OpenAPI3 } from 'openapi-typescript';
import { bundleSpec } from './bundle.ts';
import { generateClientMethods } from './client-package.ts';
import { generateContract } from './contract-package.ts';
import { generateScenarioSchema } from './scenario-schema.ts';
import { generateTypes } from './types.ts';

/** Every file `pnpm generate` writes, by path relative to the repository root. */
export type GeneratedFiles = Map<string, string>;

/** Produces every generated file from the spec under `root`, in memory. */
export async function generateAll(root: string, log: (line: string) => void = () => {}): Promise<GeneratedFiles> {
  const files: GeneratedFiles = new Map();
  const started = performance.now();
  const bundle = await bundleSpec(root);
  files.set('spec/dist/openapi.yaml', bundle.yaml);
  files.set('spec/dist/openapi.json', bundle.json);
  // The contract package ships the spec it was made from (the conformance suite checks against it).
  files.set('packages/contract/src/generated/openapi.json', bundle.json);
  log(`bundled spec/openapi.yaml (${Math.round(performance.now() - started)} ms)`);
  const spec = JSON.parse(bundle.json) as OpenAPI3;

  files.set('packages/contract/src/generated/openapi.gen.ts', await generateTypes(spec));
  for (const [name, content] of Object.entries(generateContract(spec))) files.set(`packages/contract/src/generated/${name}`, content);
  log(`generated the contract: types, the table of operations and events, validators (${Math.round(performance.now() - started)} ms)`);

  files.set('packages/client/src/generated/operations.gen.ts', generateClientMethods(spec));
  log(`generated the client's methods (${Math.round(performance.now() - started)} ms)`);

  files.set('packages/simulator/scenarios.schema.json', generateScenarioSchema(spec));
  return files;
}

export interface StaleFile {
  path: string;
  /** `orphaned`: a file in a folder of generated code that the spec no longer generates. */
  reason: 'missing' | 'differs' | 'orphaned';
}

/**
 * Lists the generated files under `root` that are missing or differ from `files`, and the files
 * left in a `generated/` folder that nothing generates any more (an operation or event removed).
 */
export async function findStale(root: string, files: GeneratedFiles): Promise<StaleFile[]> {
  const stale: StaleFile[] = [];
  for (const [path, content] of files) {
    const current = await readFile(join(root, path), 'utf8').catch(() => undefined);
    if (current === undefined) stale.push({ path, reason: 'missing' });
    else if (current !== content) stale.push({ path, reason: 'differs' });
  }
  const folders = new Set([...files.keys()].map((path) => dirname(path)).filter((folder) => folder.endsWith('/generated')));
  for (const folder of folders) {
    for (const name of await readdir(join(root, folder)).catch(() => [] as string[])) {
      const path = `${folder}/${name}`;
      if (!files.has(path)) stale.push({ path, reason: 'orphaned' });
    }
  }
  return stale;
}

/** Writes `files` under `root`, leaving files whose content is unchanged untouched. */
export async function writeGenerated(root: string, files: GeneratedFiles): Promise<string[]> {
  const written: string[] = [];
  for (const { path, reason } of await findStale(root, files)) {
    const target = join(root, path);
    if (reason === 'orphaned') await rm(target);
    else {
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, files.get(path)!);
    }
    written.push(path);
  }
  return written;
}
