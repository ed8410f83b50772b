import { createHmacAuth } from '@call-automation/client/raw';
import { describe, expect, it } from 'vitest';
import { constantTimeEqual, createAuthenticator, createMemoryReplayStore, type ReplayStore } from '../src/index.ts';

async function signedInput(key: string, body: string, webCrypto = false) {
  const request = await createHmacAuth(key, { webCrypto }).sign(new Request('http://127.0.0.1:4780/calls/abc/PlayAudio?x=1', { method: 'POST', body }));
  return {
    method: 'POST',
    pathAndQuery: '/calls/abc/PlayAudio?x=1',
    host: '127.0.0.1:4780',
    headers: { get: (name: string) => request.headers.get(name) },
    body: new TextEncoder().encode(body),
  };
}

describe('the authenticator', () => {
  // Keys shorter than, as long as, and longer than SHA-256's 64-byte block (which is hashed first).
  it.each([16, 32, 64, 65, 100])('verifies signatures made with a %i-byte key, by either crypto of the client', async (length) => {
    const key = Buffer.from(Array.from({ length }, (_, i) => (i * 31 + 7) % 256)).toString('base64');
    const authenticate = createAuthenticator({ accessKeys: [key] });
    await expect(Promise.resolve(authenticate(await signedInput(key, '{"audioFileUri":"https://m/a.wav","operationContext":"é☎"}')))).resolves.toEqual({ kind: 'hmac', keyIndex: 0 });
    await expect(Promise.resolve(authenticate(await signedInput(key, '', true)))).resolves.toEqual({ kind: 'hmac', keyIndex: 0 });
  });

  it('verifies the same with Web Crypto, as on runtimes without node:crypto', async () => {
    const [old, current] = [Buffer.from('old-key-old-key!').toString('base64'), Buffer.from('new-key-new-key!').toString('base64')];
    const authenticate = createAuthenticator({ accessKeys: [current, old], webCrypto: true });
    await expect(Promise.resolve(authenticate(await signedInput(old, '{"x":"é"}')))).resolves.toEqual({ kind: 'hmac', keyIndex: 1 });
    const tampered = await signedInput(old, '{"x":"é"}');
    tampered.body = new TextEncoder().encode('{"x":"e"}');
    await expect(Promise.resolve().then(() => authenticate(tampered))).rejects.toMatchObject({ status: 401, code: 'ContentHashMismatch' });
    const wrong = await signedInput(Buffer.from('another-key-0000').toString('base64'), '{}');
    await expect(Promise.resolve().then(() => authenticate(wrong))).rejects.toMatchObject({ status: 401, code: 'InvalidSignature' });
  });

  it('names the key that verified, for rotation', async () => {
    const [old, current] = [Buffer.from('old-key-old-key!').toString('base64'), Buffer.from('new-key-new-key!').toString('base64')];
    const authenticate = createAuthenticator({ accessKeys: [current, old] });
    await expect(Promise.resolve(authenticate(await signedInput(old, '{}')))).resolves.toEqual({ kind: 'hmac', keyIndex: 1 });
  });

  it('compares in constant time, lengths first', () => {
    expect(constantTimeEqual('abc=', 'abc=')).toBe(true);
    expect(constantTimeEqual('abc=', 'abd=')).toBe(false);
    expect(constantTimeEqual('abc', 'abc=')).toBe(false);
    expect(constantTimeEqual('', '')).toBe(true);
  });

  it('asks the replay store it is given, by either crypto, and answers 503 with Retry-After when the store fails', async () => {
    const key = Buffer.from('replay-store-key').toString('base64');
    const asked: Array<[string, number]> = [];
    const memory = createMemoryReplayStore();
    const recording: ReplayStore = { remember: (signature, expires) => (asked.push([signature, expires]), memory.remember(signature, expires)) };
    for (const webCrypto of [false, true]) {
      const authenticate = createAuthenticator({ accessKeys: [key], refuseReplays: { store: recording }, webCrypto });
      const input = await signedInput(key, `{"webCrypto":${webCrypto}}`);
      await expect(Promise.resolve(authenticate(input))).resolves.toEqual({ kind: 'hmac', keyIndex: 0 });
      await expect(Promise.resolve().then(() => authenticate(input))).rejects.toMatchObject({ status: 401, code: 'ReplayedRequest' });
      // Held until x-ms-date leaves the 15-minute window.
      expect(asked.at(-1)![1]).toBe(Date.parse(input.headers.get('x-ms-date')!) + 15 * 60_000);
    }
    const failure = new Error('Redis is away');
    for (const store of [{ remember: () => Promise.reject(failure) }, { remember: () => { throw failure; } }] satisfies ReplayStore[]) {
      const authenticate = createAuthenticator({ accessKeys: [key], refuseReplays: { store } });
      await expect(Promise.resolve().then(async () => authenticate(await signedInput(key, '{}')))).rejects.toMatchObject({
        status: 503,
        code: 'ServiceUnavailable',
        options: { headers: { 'Retry-After': '1' }, cause: failure },
      });
    }
  });
});
