import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createHmacAuth } from '@call-automation/client/raw';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessKey } from './fixture.ts';

const signer = createHmacAuth(accessKey);

/** The stub in a process of its own (see serve-apart.ts), on the direct path or Hono's. */
async function stop(child: ChildProcess) {
  child.kill('SIGTERM');
  if (child.exitCode === null) await once(child, 'exit');
}

async function serveApart(throughHono: boolean, discardMs?: number): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./serve-apart.ts', import.meta.url))], {
    env: { ...process.env, THROUGH_HONO: throughHono ? '1' : '', DISCARD_MS: discardMs ? String(discardMs) : '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [url] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  return { url, child };
}

describe.each([
  ['straight from node:http', false],
  ["through Hono's path", true],
])('a body over the limit, served %s', (_path, throughHono) => {
  let served: { url: string; child: ChildProcess };
  beforeAll(async () => {
    served = await serveApart(throughHono);
  });
  afterAll(() => stop(served.child));

  it.each([
    ['1 MiB', 1024 * 1024, '/calls'],
    ['10 MB', 10_000_000, '/calls'],
    ['1 MiB, on an operation of a call', 1024 * 1024, '/calls/4f1c2b7e/PlayAudio'],
  ])('of %s is answered 413 and the client reads the answer, 20 times in a row', async (_name, size, path) => {
    const body = JSON.stringify({ padding: 'x'.repeat(size) });
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) {
      const request = await signer.sign(new Request(`${served.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } }));
      try {
        const response = await fetch(request);
        const error = (await response.json()) as { code: string };
        outcomes.push(`${response.status} ${error.code}`);
      } catch (error) {
        outcomes.push(`${(error as Error).message} (${(error as { cause?: { code?: string } }).cause?.code})`);
      }
    }
    expect(outcomes).toEqual(Array(20).fill('413 PayloadTooLarge'));
  });

  it('sent without a length (chunked) is answered 413, and the client reads the answer', async () => {
    const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 32) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const request = await signer.sign(new Request(`${served.url}/calls`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-ms-content-sha256': 'unsigned' } }));
    const response = await fetch(request.url, { method: 'POST', headers: request.headers, body, duplex: 'half' } as RequestInit);
    expect(response.status).toBe(413);
    expect(((await response.json()) as { code: string }).code).toBe('PayloadTooLarge');
  });
});

describe('an upload that does not end after its 413', () => {
  it('is read for a bounded time, then its connection is closed', async () => {
    const { url, child } = await serveApart(false, 300);
    try {
      const socket = connect(Number(new URL(url).port), '127.0.0.1');
      await once(socket, 'connect');
      socket.write(`POST /calls HTTP/1.1\r\nHost: ${new URL(url).host}\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n`);
      let answer = '';
      socket.on('data', (data: Buffer) => (answer += data.toString()));
      const started = performance.now();
      // Keep sending, slowly, as a client that ignores the answer would.
      const sending = setInterval(() => socket.write(Buffer.alloc(1024, 0x20)), 20);
      // The server closes the connection: the client may see a reset (ECONNRESET) or an end.
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('close', resolve));
      clearInterval(sending);
      const closedAfter = performance.now() - started;
      expect(answer).toMatch(/^HTTP\/1\.1 413 /);
      expect(answer).toContain('PayloadTooLarge');
      expect(closedAfter).toBeGreaterThan(250);
      expect(closedAfter).toBeLessThan(5_000);
    } finally {
      await stop(child);
    }
  });
});
