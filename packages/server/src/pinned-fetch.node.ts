import type { LookupFunction } from 'node:net';
import { Agent, fetch, type RequestInit as UndiciRequestInit } from 'undici';
import type * as Neutral from './pinned-fetch.ts';
import type { UriGuard, VettedAddress } from './ssrf.ts';

export { postThrough } from './pinned-fetch.ts';

/**
 * A `lookup` for net.connect and tls.connect that resolves through the guard and fails the
 * connection if any address the name resolves to is refused: what the socket connects to is
 * what the guard has just seen. Node calls it with `all: true` when it tries several addresses
 * (autoSelectFamily, on by default since Node 20) and without otherwise; both are answered. An
 * IP-literal host never comes here: net connects to it directly, and the guard's form check
 * judges it.
 */
export function createPinnedLookup(guard: UriGuard, field = 'uri'): LookupFunction {
  return (hostname, options, callback) => {
    const wanted = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : undefined;
    const answer = (vetted: VettedAddress[]) => {
      const usable = wanted ? vetted.filter((entry) => entry.family === wanted) : vetted;
      if (usable.length === 0) return callback(Object.assign(new Error(`${hostname} has no IPv${wanted} address`), { code: 'ENOTFOUND', hostname }), '');
      if (options.all) return callback(null, usable);
      callback(null, usable[0]!.address, usable[0]!.family);
    };
    guard.resolveHost(hostname, field).then(answer, (error: NodeJS.ErrnoException) => callback(error, ''));
  };
}

/**
 * A fetch that connects only to addresses the guard vetted: it judges the URI's form (scheme,
 * credentials, a literal address) first, then sends through undici with a dispatcher whose
 * connections resolve the host through the guard (`createPinnedLookup`). A refused address fails
 * the fetch with a TypeError whose `cause` is the guard's ApiError (UriNotAllowed); a name that
 * does not resolve fails it as a network error. Kept-alive connections are reused only for the
 * address they were vetted for.
 */
export const createPinnedFetch: typeof Neutral.createPinnedFetch = (guard, field = 'uri') => {
  const dispatcher = new Agent({ connect: { lookup: createPinnedLookup(guard, field) } });
  const pinned = async (input: string, init?: RequestInit) => {
    await guard.check(input, field, { resolve: false });
    // undici's own fetch: the runtime's may bundle another undici, which need not honour this dispatcher.
    const response = await fetch(input, { ...(init as UndiciRequestInit), dispatcher });
    return response as unknown as Response;
  };
  return Object.assign(pinned, { close: () => dispatcher.close() });
};

/**
 * The callback delivery's posts on Node: the URI's form judged, then undici's Dispatcher.request
 * on an Agent whose connections resolve the host through the guard (`createPinnedLookup`), as
 * the pinned fetch's do, without the WHATWG Request, Response and streams around each. A refused
 * address fails the post with the guard's ApiError (UriNotAllowed).
 */
export const createPinnedPost: typeof Neutral.createPinnedPost = (guard, field = 'uri') => {
  const dispatcher = new Agent({ connect: { lookup: createPinnedLookup(guard, field) } });
  const post = async (uri: string, { body, headers, signal }: Neutral.PostRequest): Promise<Neutral.PostAnswer> => {
    await guard.check(uri, field, { resolve: false });
    const url = new URL(uri);
    // Redirects are not followed: Dispatcher.request answers a 3xx as it comes.
    const response = await dispatcher.request({ origin: url.origin, path: url.pathname + url.search, method: 'POST', body, headers, signal });
    await response.body.dump().catch(() => {});
    const retryAfter = response.headers['retry-after'];
    return { status: response.statusCode, retryAfter: retryAfter === undefined ? null : Array.isArray(retryAfter) ? retryAfter.join(', ') : retryAfter };
  };
  return Object.assign(post, { close: () => dispatcher.close() });
};
