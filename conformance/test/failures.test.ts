import { execFile, execFileSync } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CheckContext, Contract, NetworkError, runChecks, type Check, type CheckResult } from '../src/index.ts';
import { startCallbackReceiver, type CallbackReceiver } from '../src/harness/index.ts';
import { accessKey, brokenServers, callbackSecret, serveTarget } from './fixtures.ts';

const run = promisify(execFile);
let hasCurl = true;
try {
  execFileSync('curl', ['--version'], { stdio: 'ignore' });
} catch {
  hasCurl = false;
}

/** A TCP server on loopback that does `onConnection` to every connection; closed after each test. */
const servers: Server[] = [];
const sockets = new Set<Socket>();
async function tcpServer(onConnection: (socket: Socket) => void): Promise<string> {
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** Resets the connection as soon as a request starts to arrive. */
const resetting = () => tcpServer((socket) => socket.once('data', () => socket.resetAndDestroy()));

describe('a request that gets no answer', () => {
  it('fails its check naming the request and the cause, with no stack trace', async () => {
    const baseUrl = await resetting();
    const [result] = await runChecks({ baseUrl, accessKey, seed: 5, only: ['errors.unknown-call'] });
    expect(result).toMatchObject({ id: 'errors.unknown-call', status: 'failed', requests: 1 });
    expect(result!.message).toMatch(/^network error on \w+ (GET|POST|PUT|PATCH|DELETE) \/calls\/conformance-no-such-call\/?\w* \((no body|application\/json, \d+ bytes sent)\): /);
    expect(result!.message).toMatch(/ECONNRESET|EPIPE|UND_ERR_SOCKET|socket/);
    expect(result!.message).not.toMatch(/fetch failed|\n\s+at /);
    expect(result!.reproduce!.command).toMatch(/ --only errors\.unknown-call --seed 5$/);
    expect(result!.reproduce!.curl).toContain(`curl -sS -i -X `);
    expect(result!.reproduce!.curl).toContain(`${baseUrl}/calls/conformance-no-such-call`);
  });

  it('says what was sent: the Content-Type and the size of the body', async () => {
    const context = new CheckContext(new Contract(), { baseUrl: await resetting(), accessKey, seed: 1 });
    const body = { audioFileUri: 'https://example.test/a.wav', padding: 'x'.repeat(1024 * 1024) };
    const error = await context.send({ operationId: 'playAudio', params: { callId: 'abc' }, body }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkError);
    const size = Buffer.byteLength(JSON.stringify(body));
    expect((error as NetworkError).message).toMatch(new RegExp(`^network error on playAudio POST /calls/abc/PlayAudio \\(application/json, ${size} bytes sent\\): (ECONNRESET|EPIPE|UND_ERR_SOCKET)`));
    expect((error as NetworkError).request).toMatchObject({ operationId: 'playAudio', method: 'POST', url: expect.stringContaining('/calls/abc/PlayAudio') });
  });

  it('names a refused connection', async () => {
    const baseUrl = await tcpServer(() => {});
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const context = new CheckContext(new Contract(), { baseUrl, accessKey, seed: 1 });
    const error = (await context.send({ operationId: 'hangupCall', params: { callId: 'abc' } }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(NetworkError);
    expect(error.message).toMatch(/^network error on hangupCall POST \/calls\/abc\/Hangup \(no body\): ECONNREFUSED .*ECONNREFUSED/);
  });

  it('names a request the server never answers, once the timeout passes', async () => {
    const context = new CheckContext(new Contract(), { baseUrl: await tcpServer(() => {}), accessKey, seed: 1, requestTimeoutMs: 200 });
    const error = (await context.send({ operationId: 'hangupCall', params: { callId: 'abc' } }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(NetworkError);
    expect(error.message).toMatch(/^network error on hangupCall POST \/calls\/abc\/Hangup \(no body\): TimeoutError no complete answer within 200 ms$/);
  });

  it('names an answer cut short, with its status', async () => {
    const baseUrl = await tcpServer((socket) =>
      socket.once('data', () => {
        socket.write('HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"code":');
        setTimeout(() => socket.destroy(), 20);
      }),
    );
    const context = new CheckContext(new Contract(), { baseUrl, accessKey, seed: 1 });
    const error = (await context.send({ operationId: 'hangupCall', params: { callId: 'abc' } }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(NetworkError);
    expect(error.message).toMatch(/^network error on hangupCall POST \/calls\/abc\/Hangup \(no body\) while reading its 404 answer: .*(UND_ERR_SOCKET|ECONNRESET|terminated|other side closed)/);
  });
});

describe('an unexpected error in a check', () => {
  it('is its message and where it was thrown, not the whole stack', async () => {
    const broken: Check = {
      id: 'custom.throws',
      title: 'throws',
      run: async () => {
        throw new RangeError('out of range');
      },
    };
    const [result] = await runChecks({ baseUrl: 'http://127.0.0.1:9', accessKey, seed: 3, checks: [broken] });
    expect(result!.status).toBe('failed');
    expect(result!.message).toMatch(/^the check could not run: RangeError: out of range \(at .*failures\.test\.ts:\d+:\d+\)?\)$/);
    expect(result!.message!.split('\n')).toHaveLength(1);
    expect(result!.reproduce).toEqual({ command: expect.stringMatching(/ --only custom\.throws --seed 3$/) });
  });
});

describe('a failed check against a broken server', () => {
  let receiver: CallbackReceiver;
  beforeAll(async () => {
    receiver = await startCallbackReceiver();
  });
  afterAll(() => receiver?.close());

  async function failing(broken: (typeof brokenServers)[number], then?: (result: CheckResult, url: string) => Promise<void>): Promise<CheckResult> {
    const target = await serveTarget(broken);
    try {
      const [result] = await runChecks({
        baseUrl: target.url,
        accessKey,
        callbackUrl: `${receiver.url}/callbacks`,
        receiver,
        callbackSecret,
        controlUrl: target.controlUrl,
        seed: 424242,
        only: [broken.caughtBy],
      });
      expect(result!.status).toBe('failed');
      await then?.(result!, target.url);
      return result!;
    } finally {
      await target.close();
    }
  }

  it.each(brokenServers.map((b) => [b.name, b] as const))('%s: comes with the command that re-runs it, and the request it failed on', async (_name, broken) => {
    const result = await failing(broken);
    expect(result.reproduce!.command).toMatch(new RegExp(`^call-automation-conformance --base-url http://127\\.0\\.0\\.1:\\d+ .* --only ${broken.caughtBy.replace('.', '\\.')} --seed 424242$`));
    expect(result.reproduce!.command).toContain('accesskey=<access key>');
    expect(result.reproduce!.command).not.toContain(accessKey);
    if (broken.inCallback) expect(result.reproduce!.curl).toBeUndefined();
    else if (broken.caughtBy === 'auth.no-credentials') {
      // The request it failed on was sent without credentials on purpose.
      expect(result.reproduce!.curl).toMatch(/^curl -sS -i -X POST http:\/\/127\.0\.0\.1:\d+\/calls/);
      expect(result.reproduce!.curl).not.toMatch(/authorization|x-ms-date/);
    } else {
      expect(result.reproduce!.curl).toMatch(/^# signed with x-ms-date .* GMT: valid for the 15-minute signature window/);
      expect(result.reproduce!.curl).toMatch(/-H 'authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=[^']+'/);
    }
  }, 30_000);

  it.skipIf(!hasCurl)('whose curl line, run, gets the same broken answer again', async () => {
    const broken = brokenServers.find((b) => b.name === 'plain-text error')!;
    await failing(broken, async (result) => {
      const { stdout } = await run('sh', ['-c', result.reproduce!.curl!]);
      expect(stdout).toMatch(/^HTTP\/1\.1 404 /);
      expect(stdout).toMatch(/^content-type: text\/plain/im);
      expect(stdout).toMatch(/\r\n\r\nNot Found$/);
    });
  }, 30_000);
});
