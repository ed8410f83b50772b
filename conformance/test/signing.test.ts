import { describe, expect, it } from 'vitest';
import { createDistinctSigner } from '../src/signing.ts';
import { accessKey } from './fixtures.ts';

describe('the suite signer', () => {
  const clock = Date.UTC(2026, 0, 5, 10, 0, 0, 250);
  const signed = async (signer: ReturnType<typeof createDistinctSigner>, body?: string, path = '/calls/x/Hangup') => {
    const request = await signer.sign(new Request(`http://127.0.0.1:4780${path}`, { method: 'POST', body, headers: body ? { 'content-type': 'application/json' } : {} }));
    return { date: request.headers.get('x-ms-date'), authorization: request.headers.get('authorization') };
  };

  it('dates a repeat of a request within the same second a second on, so that its signature differs', async () => {
    const signer = createDistinctSigner(accessKey, () => clock);
    const first = await signed(signer, '{"a":1}');
    const second = await signed(signer, '{"a":1}');
    const third = await signed(signer, '{"a":1}');
    expect(first.date).toBe('Mon, 05 Jan 2026 10:00:00 GMT');
    expect(second.date).toBe('Mon, 05 Jan 2026 10:00:01 GMT');
    expect(third.date).toBe('Mon, 05 Jan 2026 10:00:02 GMT');
    expect(new Set([first.authorization, second.authorization, third.authorization]).size).toBe(3);
  });

  it('dates other requests by the clock, and a repeat in a later second by the clock too', async () => {
    let now = clock;
    const signer = createDistinctSigner(accessKey, () => now);
    await signed(signer, '{"a":1}');
    expect((await signed(signer, '{"a":2}')).date).toBe('Mon, 05 Jan 2026 10:00:00 GMT');
    expect((await signed(signer, undefined, '/calls/y/Hangup')).date).toBe('Mon, 05 Jan 2026 10:00:00 GMT');
    now += 5000;
    expect((await signed(signer, '{"a":1}')).date).toBe('Mon, 05 Jan 2026 10:00:05 GMT');
  });

  it('refuses an access key that is not base64 at once', () => {
    expect(() => createDistinctSigner('not base64!')).toThrow(/not base64/);
  });
});
