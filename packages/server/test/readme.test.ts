import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const packageDir = join(import.meta.dirname, '..');

describe('the README', () => {
  it('examples (the service in seventy lines, its setup on Redis) compile against the package, strict', async () => {
    const readme = await readFile(join(packageDir, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks).toHaveLength(2);
    const dir = await mkdtemp(join(packageDir, 'test', '.readme-'));
    try {
      const files = await Promise.all(
        blocks.map(async (block, i) => {
          const file = join(dir, `example-${i}.ts`);
          const source = block
            .replaceAll("'@call-automation/server/node'", "'../../src/node.ts'")
            .replaceAll("'@call-automation/server/redis'", "'../../src/redis.ts'")
            .replaceAll("'@call-automation/server'", "'../../src/index.ts'");
          await writeFile(file, `export {};\n${source}`);
          return file;
        }),
      );
      const base = ts.readConfigFile(join(packageDir, '..', '..', 'tsconfig.base.json'), ts.sys.readFile).config;
      const { options } = ts.convertCompilerOptionsFromJson({ ...base.compilerOptions, types: ['node'] }, packageDir);
      const program = ts.createProgram(files, options);
      const problems = ts.getPreEmitDiagnostics(program).map((d) => `${d.file?.fileName.slice(dir.length + 1) ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
      expect(problems).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
