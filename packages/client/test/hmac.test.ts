import { AzureKeyCredential } from '@azure/core-auth';
import { createCommunicationAccessKeyCredentialPolicy } from '@azure/communication-common';
import { createHttpHeaders, createPipelineRequest, type PipelineRequest } from '@azure/core-rest-pipeline';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EMPTY_CONTENT_HASH } from '../src/hmac.ts';
import { createHmacAuth } from '../src/raw/auth.ts';
import { CallRequest } from '../src/raw/request.ts';

const docsKey = 'Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=';

describe('HMAC signing', () => {
  it("reproduces the spec's worked example", async () => {
    const auth = createHmacAuth(docsKey, { now: () => Date.parse('Mon, 23 Nov 2026 12:00:00 GMT') });
    const request = await auth.sign(new CallRequest('https://contoso.communication.azure.com/calls/4f1c2b7e-8c1d-4a7e-9c55-1e2f3a4b5c6d/Hangup', { method: 'POST' }));
    expect(request.headers.get('x-ms-date')).toBe('Mon, 23 Nov 2026 12:00:00 GMT');
    expect(request.headers.get('x-ms-content-sha256')).toBe(EMPTY_CONTENT_HASH);
    expect(request.headers.get('Authorization')).toBe(
      'HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=xyRZGWm+KJYeUsecMD2XqP/MzevqkUGU0UeZiAmm0k8=',
    );
  });

  it.each([false, true])('hashes the body as UTF-8, the same whether it was captured or read back (Web Crypto: %s)', async (webCrypto) => {
    const auth = createHmacAuth(docsKey, { now: () => 0, webCrypto });
    const other = createHmacAuth(docsKey, { now: () => 0, webCrypto });
    const body = JSON.stringify({ subject: 'Ünïcødé ☎ 📞', operationContext: '日本語' });
    const captured = await auth.sign(new CallRequest('http://127.0.0.1:4780/calls', { method: 'POST', body }));
    const plain = await other.sign(new Request('http://127.0.0.1:4780/calls', { method: 'POST', body }));
    const expected = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(body))).toString('base64');
    expect(captured.headers.get('x-ms-content-sha256')).toBe(expected);
    expect(captured.headers.get('x-ms-date')).toBe('Thu, 01 Jan 1970 00:00:00 GMT');
    expect(plain.headers.get('Authorization')).toBe(captured.headers.get('Authorization'));
  });

  it('dates every request by the clock, as Azure does: identical requests in one second sign alike', async () => {
    let clock = Date.parse('Mon, 23 Nov 2026 12:00:00 GMT') + 400;
    const auth = createHmacAuth(docsKey, { now: () => clock });
    const sign = () => auth.sign(new CallRequest('https://contoso.communication.azure.com/calls/a/Hangup', { method: 'POST' })) as Request;
    const [first, second] = [sign(), sign()];
    expect(second.headers.get('authorization')).toBe(first.headers.get('authorization'));
    clock += 700;
    expect(sign().headers.get('x-ms-date')).toBe('Mon, 23 Nov 2026 12:00:01 GMT');
  });

  it('refuses an access key that is not base64', () => {
    expect(() => createHmacAuth('not base64 at all!')).toThrow(/not base64/);
  });
});

describe("HMAC signing matches Azure's policy (@azure/communication-common)", () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['Date'] }));
  afterEach(() => vi.useRealTimers());

  // A small deterministic generator, so that a failure names a case that can be replayed.
  function* cases(seed: number, count: number) {
    let state = seed;
    const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const pick = <T,>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
    const hosts = ['https://contoso.communication.azure.com', 'https://contoso.communication.azure.com:8443', 'http://127.0.0.1:4780', 'http://localhost', 'https://[::1]:9443'];
    const paths = ['/calls', '/calls/4f1c2b7e-8c1d-4a7e-9c55-1e2f3a4b5c6d/Hangup', '/calls/abc/PlayAudio', '/calls/x.y~z/participants/p-1', '/calls/abc/CancelMediaProcessing'];
    const queries = ['', '?api-version=2021-06-15-preview', '?a=1&b=two', '?x=%2Fslash'];
    const bodies = ['', '{}', '{"operationContext":"ctx"}', '{"subject":"Café ☕ – 通話 📞"}', JSON.stringify({ targets: [{ phoneNumber: { value: '+14251001000' } }], padding: 'x'.repeat(3000) })];
    for (let i = 0; i < count; i++) {
      yield {
        url: `${pick(hosts)}${pick(paths)}${pick(queries)}`,
        method: pick(['POST', 'DELETE', 'post']),
        body: pick(bodies),
        time: Date.UTC(2026, 10, 23, 12, 0, 0) + Math.floor(next() * 10 ** 9),
        // Keys shorter than, as long as and longer than SHA-256's 64-byte block (HMAC hashes those first).
        keyLength: pick([16, 32, 64, 65, 100]),
      };
    }
  }

  it.each([
    ['node:crypto', false],
    ['Web Crypto', true],
  ])('with %s, for 300 generated requests (seed 20261123)', async (_name, webCrypto) => {
    let checked = 0;
    const lengths = new Set<number>();
    // One signer per key, used for all its requests in time order, as an application would.
    const signers = new Map<number, ReturnType<typeof createHmacAuth>>();
    let clock = 0;
    for (const c of [...cases(20261123, 300)].sort((a, b) => a.time - b.time)) {
      const key = btoa(String.fromCharCode(...Array.from({ length: c.keyLength }, (_, i) => (i * 37 + 11) % 256)));
      const policy = createCommunicationAccessKeyCredentialPolicy(new AzureKeyCredential(key));
      lengths.add(c.keyLength);
      clock = c.time;
      if (!signers.has(c.keyLength)) signers.set(c.keyLength, createHmacAuth(key, { now: () => clock, webCrypto }));
      vi.setSystemTime(c.time);
      let azure: PipelineRequest | undefined;
      const request = createPipelineRequest({ url: c.url, method: c.method.toUpperCase() as 'POST', headers: createHttpHeaders(), body: c.body || undefined });
      await policy.sendRequest(request, async (signed) => {
        azure = signed;
        return { request: signed, status: 200, headers: createHttpHeaders() };
      });
      const signed = signers.get(c.keyLength)!.sign(new CallRequest(c.url, { method: c.method, body: c.body || undefined }));
      // node:crypto signs at once; Web Crypto answers a promise.
      expect(signed instanceof Promise).toBe(webCrypto);
      const ours = await signed;
      for (const name of ['x-ms-date', 'x-ms-content-sha256', 'authorization']) {
        expect(ours.headers.get(name), `${name} for ${c.method} ${c.url} body ${c.body.slice(0, 40)} key ${c.keyLength} bytes`).toBe(azure!.headers.get(name));
      }
      checked++;
    }
    expect(checked).toBe(300);
    expect([...lengths].sort((a, b) => a - b)).toEqual([16, 32, 64, 65, 100]);
  });
});
