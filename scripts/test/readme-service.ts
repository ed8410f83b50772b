/**
 * The service of packages/server/README.md ("A service in seventy lines"), as the tests that run
 * it need it: the README's code block with only what must differ here swapped, the credentials
 * it reads from its environment, a start that waits for its "listening on …" line, a stop by pid,
 * and the conformance checks it is expected to skip.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stopProcess } from '../../conformance/src/harness/prism.ts';
import { repoRoot } from './packing.ts';

export const serverDir = join(repoRoot, 'packages', 'server');

/** The access key and callback secret the README's service reads (ACCESS_KEY, CALLBACK_SECRET). */
export const readmeCredentials = {
  accessKey: Buffer.from('readme-conformance-access-key-01').toString('base64'),
  callbackSecret: `whsec_${Buffer.from('readme-conformance-callback-secret').toString('base64')}`,
};

/**
 * The conformance checks the README's service skips, each for what the service does not have or
 * was not asked to do. A skip is not a pass: the tests hold the skipped set to exactly these.
 */
export const readmeSkips: Record<string, { why: string; needs: RegExp }> = {
  // The README's authenticator is not given a replay store: a replayed signature is accepted,
  // within the clock window, and the suite checks a refusal only when told to expect one.
  'auth.replay': { why: 'refusing a replayed signature, which the README does not ask of its service', needs: /--expect-replay-refusal/ },
  // DTMF is a participant pressing keys: the suite makes one act only through a control surface,
  // which the README's service has not.
  'callbacks.dtmf': { why: 'a control surface that makes a participant press keys, which the README does not give its service', needs: /--control-url/ },
};

/**
 * The ```ts block of the README's "A service in seventy lines", with `swap` applied: each pair is
 * replaced everywhere, and must be there (so that a change to the README fails here, by name,
 * rather than running something else). Always swapped, whoever runs it: the address, a free port on
 * loopback rather than 0.0.0.0:8080, and a URI guard that allows loopback, where the suite's
 * callback receiver listens (the machine running the tests reaches nothing else); the README's
 * guard, for a real deployment, refuses it.
 */
export async function readmeServiceCode(swap: Array<[string, string]> = []): Promise<string> {
  let code = await readmeBlock('A service in seventy lines');
  const substitutions: Array<[string, string]> = [
    ...swap,
    ["{ host: '0.0.0.0', port: 8080 }", "{ host: '127.0.0.1', port: 0 }"],
    ['createUriGuard()', 'createUriGuard({ allowLoopback: true })'],
  ];
  for (const [from, to] of substitutions) {
    if (!code.includes(from)) throw new Error(`The README's example no longer has ${from}`);
    code = code.replaceAll(from, to);
  }
  return code;
}

/** The ```ts block of the server README's section `heading` (its one block), as written. */
async function readmeBlock(heading: string): Promise<string> {
  const readme = await readFile(join(serverDir, 'README.md'), 'utf8');
  const section = readme.split(/^(?=## )/m).find((part) => part.startsWith(`## ${heading}\n`));
  if (!section) throw new Error(`packages/server/README.md no longer has the section "## ${heading}"`);
  const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  if (blocks.length !== 1) throw new Error(`The server README's "${heading}" has ${blocks.length} \`\`\`ts blocks, not one`);
  return blocks[0]!;
}

/** The server README's setup on Redis ("On Redis"), as written. */
export const readmeRedisCode = () => readmeBlock('On Redis');

// A TCP port free on 127.0.0.1 right now, as the Redis tests find theirs.
export { freePort } from '../../packages/server/test/redis-server.ts';

/** Ends a child by its pid: SIGTERM, then SIGKILL after a grace period (the conformance harness's stop). */
export function stop(child: ChildProcess | undefined, graceMs = 3000): Promise<void> {
  return child ? stopProcess(child, graceMs) : Promise.resolve();
}

/**
 * Starts the README's service (`command args…`, with its credentials in the environment) and
 * answers its URL, from the line it prints ("listening on …"). If it does not get there, it is
 * stopped and the error has its output.
 */
export async function startReadmeService(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...(options.env ?? process.env), ACCESS_KEY: readmeCredentials.accessKey, CALLBACK_SECRET: readmeCredentials.callbackSecret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`The README's service did not start within 30 s:\n${output}`)), 30_000);
      const read = (chunk: Buffer) => {
        output += chunk.toString();
        const listening = /listening on (http:\/\/\S+)/.exec(output);
        if (listening) {
          clearTimeout(timer);
          resolve(listening[1]!.replace(/\/$/, ''));
        }
      };
      child.stdout!.on('data', read);
      child.stderr!.on('data', read);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`The README's service exited (${code}) before listening:\n${output}`));
      });
    });
    return { child, url };
  } catch (error) {
    await stop(child);
    throw error;
  }
}
