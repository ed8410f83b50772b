import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CheckContext, Contract, curlCommand, maxInlineBody, shellQuote, type SendOptions, type SentRequest } from '../src/index.ts';
import { accessKey } from './fixtures.ts';

const run = promisify(execFile);
const sh = (script: string, cwd?: string) => run('sh', ['-c', script], { cwd, maxBuffer: 8 * 1024 * 1024 });

let hasCurl = true;
try {
  execFileSync('curl', ['--version'], { stdio: 'ignore' });
} catch {
  hasCurl = false;
}

describe('shellQuote', () => {
  const awkward = ['', 'plain', "it's", "''", '"double" $HOME `date` $(id) \\n \\', 'new\nline\ttab', 'glob * ? [a] {b,c} ~ # ; & | < > !', '-n', '☎ café', 'a=b', "end'"];

  it.each(awkward.map((text) => [JSON.stringify(text), text]))('gives sh back %s exactly', async (_name, text) => {
    const { stdout } = await sh(`printf '%s' ${shellQuote(text)}`);
    expect(stdout).toBe(text);
  });

  it("quotes in single quotes, a ' as '\\''", () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('a b')).toBe(`'a b'`);
    expect(shellQuote('')).toBe(`''`);
    expect(shellQuote('http://127.0.0.1:4780/calls/x')).toBe('http://127.0.0.1:4780/calls/x');
  });
});

interface Captured {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

describe.skipIf(!hasCurl)('the curl line of a request', () => {
  let server: Server;
  let baseUrl: string;
  let captured: Captured[];
  let dir: string;
  const contract = new Contract();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'call-automation-curl-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  beforeEach(async () => {
    captured = [];
    server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        captured.push({ method: request.method!, url: request.url!, headers: request.headers, body: Buffer.concat(chunks) });
        response.writeHead(404, { 'content-type': 'application/json' }).end('{"code":"NotFound","message":"captured"}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  /** Sends with the suite, then runs the curl line: both requests as the server read them, and the line. */
  async function sendTwice(options: SendOptions): Promise<{ sent: SentRequest; fetched: Captured; curled: Captured; curl: string; stdout: string }> {
    const context = new CheckContext(contract, { baseUrl, accessKey, seed: 1 });
    const { request: sent } = await context.send(options);
    const curl = await curlCommand(sent);
    if (sent.body && curl.includes('@body.bin')) await writeFile(join(dir, 'body.bin'), sent.body);
    const { stdout } = await sh(curl, dir);
    expect(captured).toHaveLength(2);
    return { sent, fetched: captured[0]!, curled: captured[1]!, curl, stdout };
  }

  /** The request curl made is the one fetch made: method, target, the suite's headers, length and body bytes. */
  function expectSame(sent: SentRequest, fetched: Captured, curled: Captured) {
    expect(curled.method).toBe(fetched.method);
    expect(curled.url).toBe(fetched.url);
    for (const [name] of sent.headers) expect([name, curled.headers[name]]).toEqual([name, fetched.headers[name]]);
    expect(curled.headers['content-type']).toBe(fetched.headers['content-type']);
    expect(curled.headers['content-length']).toBe(fetched.headers['content-length']);
    expect(curled.headers.host).toBe(fetched.headers.host);
    expect(curled.body.equals(fetched.body)).toBe(true);
  }

  it('sends a signed JSON body again, byte for byte, quotes and all', async () => {
    const { sent, fetched, curled, curl, stdout } = await sendTwice({
      operationId: 'playAudio',
      params: { callId: "it's-a-call" },
      body: { audioFileUri: 'https://example.test/a.wav', operationContext: `it's "quoted" $HOME \`date\` \\ ☎\nline` },
    });
    expectSame(sent, fetched, curled);
    expect(fetched.headers.authorization).toMatch(/^HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=/);
    expect(curl).toMatch(/^# signed with x-ms-date .+ GMT: valid for the 15-minute signature window/);
    expect(curl).toContain("--data-binary '{");
    expect(stdout).toMatch(/^HTTP\/1\.1 404/);
  });

  it('sends a request without a body, with the length fetch sends', async () => {
    const { sent, fetched, curled } = await sendTwice({ operationId: 'hangupCall', params: { callId: 'abc' } });
    expect(fetched.body.length).toBe(0);
    expectSame(sent, fetched, curled);
  });

  it('sends a body without a Content-Type without one, not as a form', async () => {
    const { sent, fetched, curled } = await sendTwice({ operationId: 'createCall', body: new TextEncoder().encode('{"a":1}'), contentType: null });
    expect(fetched.headers['content-type']).toBeUndefined();
    expectSame(sent, fetched, curled);
  });

  it('makes a 1 MiB body again with a short command instead of printing it', async () => {
    const padding = 'x'.repeat(1024 * 1024);
    const { sent, fetched, curled, curl } = await sendTwice({ operationId: 'createCall', body: { targets: [], padding, note: "it's" } });
    expect(fetched.body.length).toBeGreaterThan(1024 * 1024);
    expectSame(sent, fetched, curled);
    expect(curl.length).toBeLessThan(2000);
    expect(curl).toContain(`the body: ${sent.body!.length} bytes (sha256 `);
    expect(curl).toContain('head -c 1048576 /dev/zero');
  });

  it('makes a binary body again, bytes no shell string can hold included', async () => {
    const bytes = new Uint8Array(maxInlineBody * 2);
    bytes.set([0xff, 0x00, 0x27, 0x0a, 0xc3], 0);
    bytes.fill(0xfe, 5, 3000);
    bytes.set([0x80, 0x25, 0x5c], 3000);
    const { sent, fetched, curled } = await sendTwice({ operationId: 'createCall', body: bytes, contentType: 'application/octet-stream' });
    expectSame(sent, fetched, curled);
  });

  it('names a large body that cannot be made again by its size and hash, and sends it from body.bin', async () => {
    const text = Array.from({ length: maxInlineBody }, (_, i) => String.fromCharCode(97 + ((i * 7919) % 26))).join('');
    const { sent, fetched, curled, curl } = await sendTwice({ operationId: 'createCall', body: { text } });
    expect(curl).toMatch(/the body \(\d+ bytes, sha256 [0-9a-f]{64}\) is too large to print: put it in body\.bin/);
    expect(curl.length).toBeLessThan(1500);
    expectSame(sent, fetched, curled);
  });
});
