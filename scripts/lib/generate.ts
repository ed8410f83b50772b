import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { OpenAPI3 } from 'openapi-typescript';
import { bundleSpec } from './bundle.ts';
import { generateTypes } from './types.ts';
import { generateValidators } from './validators.ts';
import { generateServer } from './server.ts';

const events = ['CallLegStateChanged', 'ParticipantsUpdated', 'DtmfReceived', 'PlayAudioResult', 'InviteParticipantResult'];

/** Every file `pnpm generate` writes, by path relative to the repository root. */
export type GeneratedFiles = Map<string, string>;

/** Produces every generated file from the spec under `root`, in memory. */
export async function generateAll(root: string, log: (line: string) => void = () => {}): Promise<GeneratedFiles> {
  const files: GeneratedFiles = new Map();
  const started = performance.now();
  const bundle = await bundleSpec(root);
  files.set('spec/dist/openapi.yaml', bundle.yaml);
  files.set('spec/dist/openapi.json', bundle.json);
  // The conformance suite ships the contract it checks.
  files.set('conformance/spec/openapi.json', bundle.json);
  log(`bundled spec/openapi.yaml (${Math.round(performance.now() - started)} ms)`);
  const spec = JSON.parse(bundle.json) as OpenAPI3;

  const types = await generateTypes(spec);
  files.set('packages/client/src/generated/openapi.gen.ts', types);
  files.set(
    'packages/client/src/generated/events.gen.ts',
    generateValidators(spec, Object.fromEntries(events.map((name) => [`validate${name}Event`, `#/components/schemas/${name}Event`]))),
  );
  log(`generated the client's types and event validators (${Math.round(performance.now() - started)} ms)`);

  files.set('packages/server/src/generated/openapi.gen.ts', types);
  for (const [name, content] of Object.entries(generateServer(spec))) files.set(`packages/server/src/generated/${name}`, content);
  log(`generated the server stub's types, routes and validators (${Math.round(performance.now() - started)} ms)`);
  return files;
}

export interface StaleFile {
  path: string;
  reason: 'missing' | 'differs';
}

/** Lists the generated files under `root` that are missing or differ from `files`. */
export async function findStale(root: string, files: GeneratedFiles): Promise<StaleFile[]> {
  const stale: StaleFile[] = [];
  for (const [path, content] of files) {
    const current = await readFile(join(root, path), 'utf8').catch(() => undefined);
    if (current === undefined) stale.push({ path, reason: 'missing' });
    else if (current !== content) stale.push({ path, reason: 'differs' });
  }
  return stale;
}

/** Writes `files` under `root`, leaving files whose content is unchanged untouched. */
export async function writeGenerated(root: string, files: GeneratedFiles): Promise<string[]> {
  const written: string[] = [];
  for (const { path } of await findStale(root, files)) {
    const target = join(root, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, files.get(path)!);
    written.push(path);
  }
  return written;
}
