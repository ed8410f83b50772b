// What a caller sees when the service cannot be reached: an error that names the operation, the
// method and the URL, and what failed (the system error's code), over real loopback sockets: a
// port nobody listens on, and a server that never answers.
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallAutomationClient } from '../src/index.ts';
import { createRawClient } from '../src/raw/index.ts';
import { networkError, phoneCall, stubFetch } from './stub-fetch.ts';

const accessKey = 'Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=';
const fast = { baseDelayMs: 1, maxDelayMs: 2 };

/** A loopback port that was free a moment ago, with nothing listening on it now: connecting is refused. */
async function refusedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('a network error', () => {
  let refused: string;
  let silent: Server;
  let silentUrl: string;

  beforeAll(async () => {
    refused = `http://127.0.0.1:${await refusedPort()}`;
    // Takes the connection and never answers.
    silent = createHttpServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    silent.closeAllConnections();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('names the operation, the method, the URL and the code when the connection is refused', async () => {
    const client = createCallAutomationClient(`endpoint=${refused}/;accesskey=${accessKey}`, { retry: false });
    const error = await client.createCall(phoneCall).then(
      () => undefined,
      (e: unknown) => e as Error & { cause: { message: string; cause: { code: string } } },
    );
    expect(error).toBeInstanceOf(TypeError);
    expect(error!.message).toBe(`createCall POST ${refused}/calls failed: ECONNREFUSED`);
    // fetch's own error is kept under it, with the system error under that.
    expect(error!.cause.message).toBe('fetch failed');
    expect(error!.cause.cause.code).toBe('ECONNREFUSED');
    await expect(client.hangupCall('leg 1')).rejects.toThrow(`hangupCall POST ${refused}/calls/leg%201/Hangup failed: ECONNREFUSED`);
  });

  it('is the last one after the retries, named the same', async () => {
    const client = createCallAutomationClient(`endpoint=${refused}/;accesskey=${accessKey}`, { retry: { ...fast, maxRetries: 2 } });
    await expect(client.playAudio('leg-1', { audioFileUri: 'https://m.contoso.com/a.wav' })).rejects.toThrow(
      `playAudio POST ${refused}/calls/leg-1/PlayAudio failed: ECONNREFUSED`,
    );
  });

  it('names the request when an attempt runs out of time, and stays a TimeoutError', async () => {
    const client = createCallAutomationClient(`endpoint=${silentUrl}/;accesskey=${accessKey}`, { retry: false, timeoutMs: 100 });
    const error = await client.hangupCall('leg-1').then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.name).toBe('TimeoutError');
    expect(error?.message).toBe(`hangupCall POST ${silentUrl}/calls/leg-1/Hangup failed: The operation was aborted due to timeout`);
    expect((error?.cause as Error).name).toBe('TimeoutError');
  });

  it('is named the same through the raw client', async () => {
    const raw = createRawClient(`endpoint=${refused}/;accesskey=${accessKey}`, { retry: false });
    await expect(raw.POST('/calls/{callId}/Hangup', { params: { path: { callId: 'leg-1' } } })).rejects.toThrow(
      `hangupCall POST ${refused}/calls/leg-1/Hangup failed: ECONNREFUSED`,
    );
  });

  it("says what failed where there is no system error's code: a name that does not resolve, a browser's fetch", async () => {
    const unresolved = stubFetch(() => {
      throw networkError('ENOTFOUND');
    });
    const client = createCallAutomationClient(`endpoint=https://nowhere.invalid/;accesskey=${accessKey}`, { fetch: unresolved.fetch, retry: false });
    await expect(client.createCall(phoneCall)).rejects.toThrow('createCall POST https://nowhere.invalid/calls failed: ENOTFOUND');
    const browser = stubFetch(() => {
      throw new TypeError('Failed to fetch');
    });
    const inBrowser = createCallAutomationClient(`endpoint=https://calls.contoso.com/;accesskey=${accessKey}`, { fetch: browser.fetch, retry: false });
    await expect(inBrowser.hangupCall('leg-1')).rejects.toThrow('hangupCall POST https://calls.contoso.com/calls/leg-1/Hangup failed: Failed to fetch');
  });

  it("leaves the caller's own abort as it is", async () => {
    const client = createCallAutomationClient(`endpoint=${silentUrl}/;accesskey=${accessKey}`, { retry: false });
    const controller = new AbortController();
    const pending = client.hangupCall('leg-1', { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('the caller gave up')), 50);
    await expect(pending).rejects.toThrow(/^the caller gave up$/);
  });
});
