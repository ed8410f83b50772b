import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const packageDir = join(import.meta.dirname, '..');

describe('the README', async () => {
  const readme = await readFile(join(packageDir, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const dir = await mkdtemp(join(packageDir, 'test', '.readme-'));
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('has its examples', () => {
    expect(blocks.length).toBe(7);
  });

  it('examples compile against the package, strict', async () => {
    const files = await Promise.all(
      blocks.map(async (code, i) => {
        const file = join(dir, `example-${i + 1}.ts`);
        // Examples import the package by name, as users do; here the name maps to the source.
        await writeFile(file, `export {};\n${code.replaceAll("'@call-automation/client/events'", "'../../src/events/index.ts'").replaceAll("'@call-automation/client/raw'", "'../../src/raw/index.ts'").replaceAll("'@call-automation/client'", "'../../src/index.ts'")}`);
        return file;
      }),
    );
    const base = ts.readConfigFile(join(packageDir, '..', '..', 'tsconfig.base.json'), ts.sys.readFile).config;
    const { options } = ts.convertCompilerOptionsFromJson({ ...base.compilerOptions, types: ['node'] }, packageDir);
    const program = ts.createProgram(files, options);
    const problems = ts
      .getPreEmitDiagnostics(program)
      .map((d) => `${d.file ? `${d.file.fileName.split('/').pop()}: ` : ''}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(problems).toEqual([]);
  }, 60_000);
});
