import { createHash } from 'node:crypto';
import { createHmacSigner, type Signer } from '@call-automation/client';
import { requestAuth, type RequestAuth } from '@call-automation/client/raw';

/**
 * Signs requests with the access key so that no two identical ones (method, URL and body) carry
 * the same x-ms-date, hence the same signature: a repeat within the same second is dated a second
 * on. Clients date by the clock, and servers accept a re-sent signature by default; but a server
 * may opt in to refusing replays (what --expect-replay-refusal holds it to), and there a check
 * that repeats another's request within a second would be refused for it. A date a few seconds
 * ahead is well within the 15-minute window.
 */
export function createDistinctSigner(accessKey: string, now: () => number = Date.now): RequestAuth {
  // The client's signer dates by its clock: one per second dated, the last few kept.
  const signers = new Map<number, Signer>();
  function signerAt(second: number): Signer {
    let signer = signers.get(second);
    if (!signer) {
      if (signers.size >= 8) signers.delete(signers.keys().next().value!);
      signer = createHmacSigner(accessKey, { now: () => second * 1000 });
      signers.set(second, signer);
    }
    return signer;
  }
  // A key that is not base64 fails here, not at the first request.
  signerAt(Math.floor(now() / 1000));
  /** For each request signed lately, the second it was dated. */
  const dated = new Map<string, number>();
  let prunedAt = -Infinity;
  return requestAuth((method, url, body) => {
    const current = Math.floor(now() / 1000);
    if (current > prunedAt) {
      // Dates before this second can no longer collide with a new one.
      for (const [key, second] of dated) if (second < current) dated.delete(key);
      prunedAt = current;
    }
    const key = `${method.toUpperCase()} ${url} ${createHash('sha256').update(body).digest('base64')}`;
    const previous = dated.get(key);
    const second = previous !== undefined && previous >= current ? previous + 1 : current;
    dated.set(key, second);
    return signerAt(second)(method, url, body);
  });
}
