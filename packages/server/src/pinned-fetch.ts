import type { UriGuard } from './ssrf.ts';

/** A fetch that contacts only what a guard allows. `close` lets go of its connections. */
export interface PinnedFetch {
  (input: string, init?: RequestInit): Promise<Response>;
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
