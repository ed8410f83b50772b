import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, LookupFunction } from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { createCallbackDelivery, createPinnedFetch, createUriGuard, type CallbackDeliveryOptions, type Resolver } from '../src/index.ts';
import { createPinnedLookup, createPinnedPost } from '../src/pinned-fetch.node.ts';

// Every name here resolves through a stubbed resolver; the system resolver is never asked, and
// the only listener is on 127.0.0.1.
const secret = `whsec_${Buffer.from('server-test-pinning-secret-00001').toString('base64')}`;
const established = { callLegId: 'leg-1', callState: 'established' as const };
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** A loopback listener that counts connections as well as requests: a refused delivery opens none. */
async function listener() {
  const requests: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
  let connections = 0;
  const server = createServer((req, res) => {
    requests.push({ url: req.url ?? '/', headers: req.headers });
    req.resume().on('end', () => res.writeHead(204).end());
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    get connections() {
      return connections;
    },
  };
}

function table(entries: Record<string, string[]>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const resolve = async (host: string) => {
    calls.push(host);
    const found = entries[host];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found;
  };
  return Object.assign(resolve, { calls });
}

function delivery(options: Omit<CallbackDeliveryOptions, 'secret'>) {
  const d = createCallbackDelivery({ secret, retryDelaysMs: [20], jitter: 0, attemptTimeoutMs: 1_000, lifetimeMs: 200, ...options });
  closers.push(async () => void (await d.close(100)));
  return d;
}

/** Calls a lookup the way net.connect does, and answers what it called back with. */
function callLookup(lookup: LookupFunction, hostname: string, options: { all?: boolean; family?: number }) {
  return new Promise<{ error: NodeJS.ErrnoException | null; address: unknown; family: unknown }>((resolve) =>
    lookup(hostname, options, (error, address, family) => resolve({ error, address, family })),
  );
}

describe('the connect-time lookup', () => {
  const guard = createUriGuard({ allowLoopback: true, resolve: table({ 'callbacks.test': ['127.0.0.1', '::1'], 'inside.test': ['93.184.216.34', '10.0.0.7'] }) });
  const lookup = createPinnedLookup(guard, 'callbackUri');

  it('answers every vetted address when asked for all (autoSelectFamily)', async () => {
    const answer = await callLookup(lookup, 'callbacks.test', { all: true });
    expect(answer.error).toBeNull();
    expect(answer.address).toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
  });

  it('answers one address and its family otherwise, honouring a requested family', async () => {
    expect(await callLookup(lookup, 'callbacks.test', {})).toEqual({ error: null, address: '127.0.0.1', family: 4 });
    expect(await callLookup(lookup, 'callbacks.test', { family: 6 })).toEqual({ error: null, address: '::1', family: 6 });
    expect(await callLookup(lookup, 'callbacks.test', { family: 6, all: true })).toMatchObject({ error: null, address: [{ address: '::1', family: 6 }] });
  });

  it('fails the connection, naming the address and why, if any address is refused (in either shape)', async () => {
    for (const options of [{}, { all: true }]) {
      const { error } = await callLookup(lookup, 'inside.test', options);
      expect(error?.message).toBe('callbackUri resolves to 10.0.0.7, a private address (inside.test, when connecting).');
      expect(error).toMatchObject({ status: 400, code: 'UriNotAllowed' });
    }
  });

  it('passes a resolution failure on as the network error it is', async () => {
    const { error } = await callLookup(lookup, 'unknown.test', { all: true });
    expect(error).toMatchObject({ code: 'ENOTFOUND' });
  });

  it.each([true, false])('is what undici connects through, with autoSelectFamily %s', async (autoSelectFamily) => {
    const target = await listener();
    const shapes: Array<boolean | undefined> = [];
    const recording: LookupFunction = (hostname, options, callback) => {
      shapes.push(options.all);
      lookup(hostname, options, callback);
    };
    const agent = new Agent({ connect: { lookup: recording, autoSelectFamily } });
    try {
      const response = await undiciFetch(`http://callbacks.test:${target.port}/shape`, { dispatcher: agent });
      expect(response.status).toBe(204);
    } finally {
      await agent.close();
    }
    expect(shapes).toEqual([autoSelectFamily ? true : undefined]);
    expect(target.requests.map((r) => r.url)).toEqual(['/shape']);
  });
});

describe('callback delivery with a guard', () => {
  it('connects through the guard’s resolution: a name only the stubbed resolver knows reaches the listener', async () => {
    const target = await listener();
    const resolve = table({ 'callbacks.test': ['127.0.0.1'] });
    const d = delivery({ guard: createUriGuard({ allowLoopback: true, resolve }) });
    d.register('leg-1', `http://callbacks.test:${target.port}/cb`);
    d.emit('leg-1', 'CallLegStateChanged', established);
    await d.drain();
    expect(await d.deadLetters()).toEqual([]);
    expect(target.requests).toHaveLength(1);
    expect(target.requests[0]!.headers.host).toBe(`callbacks.test:${target.port}`);
    expect(resolve.calls).toEqual(['callbacks.test']);
  });

  it('never reaches an address the name rebinds to after the request-time check', async () => {
    const target = await listener();
    const calls: string[] = [];
    // Public for the request-time check, loopback from then on: the classic rebinding answer.
    const resolve: Resolver = async (host) => {
      calls.push(host);
      return calls.length === 1 ? ['93.184.216.34'] : ['127.0.0.1'];
    };
    const guard = createUriGuard({ resolve });
    const callbackUri = `http://rebind.test:${target.port}/cb`;
    await expect(guard.check(callbackUri, 'callbackUri')).resolves.toEqual(['93.184.216.34']);
    const d = delivery({ guard });
    d.register('leg-1', callbackUri);
    d.emit('leg-1', 'CallLegStateChanged', established);
    await d.drain();
    expect(target.connections).toBe(0);
    expect(target.requests).toHaveLength(0);
    // Refused when connecting, not retried: the name points inside, which is no transient fault.
    expect(await d.deadLetters()).toEqual([
      expect.objectContaining({ reason: 'refused', attempts: 1, lastError: expect.stringContaining('127.0.0.1, a loopback address (rebind.test, when connecting)') }),
    ]);
    // The request-time check, then the connection's own resolution: nothing else resolved it.
    expect(calls).toEqual(['rebind.test', 'rebind.test']);
  });

  it('retries a name that does not resolve when delivering, as a network error', async () => {
    const d = delivery({ guard: createUriGuard({ resolve: table({}) }) });
    d.register('leg-1', 'https://not-yet.test/cb');
    d.emit('leg-1', 'CallLegStateChanged', established);
    await d.drain();
    const [letter] = await d.deadLetters();
    expect(letter).toMatchObject({ reason: 'expired', lastError: expect.stringContaining('ENOTFOUND') });
    expect(letter!.attempts).toBeGreaterThanOrEqual(2);
  });

  it('still refuses a literal address by the URI’s form before connecting', async () => {
    const target = await listener();
    const d = delivery({ guard: createUriGuard({ resolve: table({}) }) });
    d.register('leg-1', `http://127.0.0.1:${target.port}/cb`);
    d.emit('leg-1', 'CallLegStateChanged', established);
    await d.drain();
    expect(target.connections).toBe(0);
    expect(await d.deadLetters()).toEqual([expect.objectContaining({ reason: 'refused', attempts: 1, lastError: 'callbackUri is 127.0.0.1, a loopback address.' })]);
  });

  it('sends through a fetch it is given instead, after resolving and checking the URI', async () => {
    const sent: string[] = [];
    const resolve = table({ 'callbacks.test': ['93.184.216.34'], 'inside.test': ['10.0.0.7'] });
    const d = delivery({
      guard: createUriGuard({ resolve }),
      fetch: async (input) => {
        sent.push(String(input));
        return new Response(null, { status: 204 });
      },
    });
    d.register('leg-1', 'https://callbacks.test/cb');
    d.register('leg-2', 'https://inside.test/cb');
    d.emit('leg-1', 'CallLegStateChanged', established);
    d.emit('leg-2', 'CallLegStateChanged', { ...established, callLegId: 'leg-2' });
    await d.drain();
    expect(sent).toEqual(['https://callbacks.test/cb']);
    expect(await d.deadLetters()).toEqual([expect.objectContaining({ callbackUri: 'https://inside.test/cb', reason: 'refused', lastError: expect.stringContaining('private') })]);
  });
});

describe('createPinnedFetch', () => {
  it('checks the URI’s form, connects only through vetted addresses, and closes its connections', async () => {
    const target = await listener();
    const pinned = createPinnedFetch(createUriGuard({ allowLoopback: true, resolve: table({ 'callbacks.test': ['127.0.0.1'], 'inside.test': ['10.0.0.7'] }) }), 'callbackUri');
    try {
      const response = await pinned(`http://callbacks.test:${target.port}/direct`, { method: 'POST', body: 'x' });
      expect(response.status).toBe(204);
      await expect(pinned('file:///etc/passwd', {})).rejects.toMatchObject({ code: 'UriNotAllowed' });
      await expect(pinned(`http://inside.test:${target.port}/`, {})).rejects.toMatchObject({ cause: { code: 'UriNotAllowed' } });
    } finally {
      await pinned.close();
    }
    expect(target.requests.map((r) => r.url)).toEqual(['/direct']);
  });
});

describe('createPinnedPost (the delivery’s attempts on Node)', () => {
  it('posts through vetted addresses only, refuses the others, and stops at its signal', async () => {
    const target = await listener();
    const post = createPinnedPost(createUriGuard({ allowLoopback: true, resolve: table({ 'callbacks.test': ['127.0.0.1'], 'inside.test': ['10.0.0.7'] }) }), 'callbackUri');
    const request = { body: '{}', headers: { 'content-type': 'application/cloudevents+json' }, signal: new AbortController().signal };
    try {
      expect(await post(`http://callbacks.test:${target.port}/direct?x=1`, request)).toEqual({ status: 204, retryAfter: null });
      await expect(post('file:///etc/passwd', request)).rejects.toMatchObject({ code: 'UriNotAllowed' });
      await expect(post(`http://inside.test:${target.port}/`, request)).rejects.toMatchObject({ code: 'UriNotAllowed', message: expect.stringContaining('10.0.0.7, a private address') });
      const aborted = new AbortController();
      aborted.abort(new Error('stopping'));
      await expect(post(`http://callbacks.test:${target.port}/late`, { ...request, signal: aborted.signal })).rejects.toThrow('stopping');
    } finally {
      await post.close();
    }
    expect(target.requests.map((r) => r.url)).toEqual(['/direct?x=1']);
  });

  it('answers a redirect and a Retry-After as they come', async () => {
    const server = createServer((req, res) => {
      req.resume().on('end', () => res.writeHead(req.url === '/busy' ? 429 : 307, req.url === '/busy' ? { 'Retry-After': '7' } : { Location: '/elsewhere' }).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const post = createPinnedPost(createUriGuard({ allowLoopback: true, resolve: table({ 'callbacks.test': ['127.0.0.1'] }) }), 'callbackUri');
    const request = { body: '{}', headers: {}, signal: new AbortController().signal };
    try {
      expect(await post(`http://callbacks.test:${port}/moved`, request)).toEqual({ status: 307, retryAfter: null });
      expect(await post(`http://callbacks.test:${port}/busy`, request)).toEqual({ status: 429, retryAfter: '7' });
    } finally {
      await post.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
