import type { UriGuard } from './ssrf.ts';

/** A fetch that contacts only what a guard allows. `close` lets go of its connections. */
export interface PinnedFetch {
  (input: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

/** One POST of a callback: its bytes, headers and the signal that aborts it. */
export interface PostRequest {
  body: string;
  headers: Record<string, string>;
  signal: AbortSignal;
}

/** What a callback delivery needs of an answer: its status and Retry-After (null when none). */
export interface PostAnswer {
  status: number;
  retryAfter: string | null;
}

/**
 * Posts a callback, redirects not followed, and reads the answer's status and Retry-After, its
 * body discarded. `close` lets go of its connections. Internal to the callback delivery.
 */
export interface PinnedPost {
  (uri: string, request: PostRequest): Promise<PostAnswer>;
  close(): Promise<void>;
}

/**
 * The runtime-neutral variant, for runtimes whose fetch offers no hook into how a connection
 * finds its address (workers, Deno, Bun). Without one it can only check, then fetch: it resolves
 * the URI's host afresh and checks every address just before fetching, and the fetch resolves
 * the host again on its own, so a name that changes its answer in between (DNS rebinding) is not
 * caught. On Node the package's `#pinned-fetch` import resolves to `pinned-fetch.node.ts`, which
 * connects only to an address it has just vetted.
 */
export function createPinnedFetch(guard: UriGuard, field = 'uri'): PinnedFetch {
  const checked = async (input: string, init?: RequestInit) => {
    await guard.check(input, field, { fresh: true });
    return globalThis.fetch(input, init);
  };
  return Object.assign(checked, { close: async () => {} });
}

/** A PinnedPost sending through a fetch: the one the delivery is given, or the runtime's. */
export function postThrough(send: (input: string, init: RequestInit) => Promise<Response>): (uri: string, request: PostRequest) => Promise<PostAnswer> {
  return async (uri, { body, headers, signal }) => {
    const response = await send(uri, { method: 'POST', body, redirect: 'manual', signal, headers });
    await response.body?.cancel().catch(() => {});
    return { status: response.status, retryAfter: response.headers.get('retry-after') };
  };
}

/**
 * The callback delivery's way of posting through the guard: here the pinned fetch above (the
 * host resolved and checked just before each fetch). On Node, `pinned-fetch.node.ts` posts with
 * undici's Dispatcher.request on an Agent that connects only to vetted addresses.
 */
export function createPinnedPost(guard: UriGuard, field = 'uri'): PinnedPost {
  const pinned = createPinnedFetch(guard, field);
  return Object.assign(postThrough(pinned), { close: () => pinned.close() });
}
