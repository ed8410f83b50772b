// The URI guard on a runtime with no resolver at all (workerd without nodejs_compat, a browser):
// node:dns is taken away before each guard is made, so the guard's resolver is the "no resolver"
// one. Names can never be vetted there, so they are refused unless the guard is told otherwise.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError, createCallbackDelivery, createUriGuard, type UriGuard } from '../src/index.ts';
import { createPinnedFetch } from '../src/pinned-fetch.ts';
import { phoneCall, serveMemory } from './fixture.ts';

const secret = `whsec_${Buffer.from('server-test-callback-secret-0001').toString('base64')}`;
const unvetted = 'http://metadata.internal.test/cb';

const getBuiltinModule = process.getBuiltinModule.bind(process);
beforeEach(() => {
  vi.spyOn(process, 'getBuiltinModule').mockImplementation(((id: string) => (id === 'node:dns' || id === 'dns' ? undefined : getBuiltinModule(id))) as typeof process.getBuiltinModule);
});
afterEach(() => vi.restoreAllMocks());

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

describe('the URI guard with no resolver on the runtime', () => {
  it('refuses a host name with 400 UriNotAllowed, saying to pass resolve or allowUnvettedNames', async () => {
    const guard = createUriGuard();
    const error = await refusal(guard.check(unvetted, 'callbackUri'));
    expect(error.status).toBe(400);
    expect(error.body.code).toBe('UriNotAllowed');
    expect(error.body.target).toBe('/callbackUri');
    expect(error.message).toMatch(/^callbackUri names the host metadata\.internal\.test, which cannot be vetted: this runtime has no resolver\./);
    expect(error.message).toContain('`resolve`');
    expect(error.message).toContain('`allowUnvettedNames: true`');
    // Asked to be fresh, as a delivery asks, it refuses alike.
    await expect(guard.check('https://public.example/cb', 'callbackUri', { fresh: true })).rejects.toMatchObject({ body: { code: 'UriNotAllowed' } });
  });

  it('still judges literal addresses and the form, which need no resolver', async () => {
    const guard = createUriGuard();
    await expect(guard.check('http://93.184.216.34:8080/cb', 'callbackUri')).resolves.toEqual(['93.184.216.34']);
    await expect(guard.check('http://10.0.0.7/cb', 'callbackUri')).rejects.toMatchObject({ body: { code: 'UriNotAllowed' }, message: expect.stringContaining('private') });
    await expect(guard.check('http://localhost/cb', 'callbackUri')).rejects.toMatchObject({ message: expect.stringContaining('loopback') });
    // The form-only check, for URIs the service never contacts, resolves nothing and lets names pass.
    await expect(guard.check('https://media.contoso.example/prompt.wav', 'audioFileUri', { resolve: false })).resolves.toEqual([]);
  });

  it('lets names pass unvetted only with allowUnvettedNames, never remembering them as vetted', async () => {
    const guard = createUriGuard({ allowUnvettedNames: true });
    await expect(guard.check(unvetted, 'callbackUri')).resolves.toEqual([]);
    await expect(guard.check(unvetted, 'callbackUri')).resolves.toEqual([]);
    // Literal addresses are judged as ever.
    await expect(guard.check('http://169.254.169.254/latest', 'callbackUri')).rejects.toMatchObject({ message: expect.stringContaining('link-local') });
  });

  it('changes nothing where a resolver is passed', async () => {
    const guard = createUriGuard({ resolve: async () => ['93.184.216.34'] });
    await expect(guard.check(unvetted, 'callbackUri')).resolves.toEqual(['93.184.216.34']);
    // A name that does not resolve still passes with nothing vetted (it may be new, or DNS down).
    const failing = createUriGuard({ resolve: async () => Promise.reject(new Error('ENOTFOUND')) });
    await expect(failing.check(unvetted, 'callbackUri')).resolves.toEqual([]);
  });

  it('makes the service answer a createCall naming such a host 400 UriNotAllowed, its handler never run', async () => {
    const guard = createUriGuard();
    const { client, server, state } = await serveMemory({ checkUri: async (uri, field) => void (await guard.check(uri, field)) });
    try {
      const { error, response } = await client.createCall({ ...phoneCall, callbackUri: unvetted });
      expect(response.status).toBe(400);
      expect(error).toMatchObject({ code: 'UriNotAllowed', target: '/callbackUri', message: expect.stringContaining('allowUnvettedNames') });
      expect(state.createdCount()).toBe(0);
    } finally {
      await server.close();
    }
  });
});

describe('delivery with no resolver on the runtime', () => {
  let guard: UriGuard;
  let fetched: ReturnType<typeof vi.fn>;
  beforeEach(() => {
    guard = createUriGuard();
    fetched = vi.fn(async () => new Response(null, { status: 204 }));
    vi.spyOn(globalThis, 'fetch').mockImplementation(fetched as unknown as typeof fetch);
  });

  it("refuses the attempt in the runtime-neutral pinned fetch (workers' variant), and fetches nothing", async () => {
    const pinned = createPinnedFetch(guard, 'callbackUri');
    const error = await refusal(pinned(unvetted, { method: 'POST', body: '{}' }));
    expect(error.body.code).toBe('UriNotAllowed');
    expect(fetched).not.toHaveBeenCalled();
  });

  it('dead-letters the event as refused rather than send it', async () => {
    const d = createCallbackDelivery({ secret, guard, fetch: createPinnedFetch(guard, 'callbackUri') as typeof fetch, retryDelaysMs: [20], jitter: 0, attemptTimeoutMs: 300, lifetimeMs: 2_000, log: () => {} });
    try {
      d.register('leg-1', unvetted);
      d.emit('leg-1', 'CallLegStateChanged', { callLegId: 'leg-1', callState: 'established' });
      await d.drain();
      expect(await d.deadLetters()).toEqual([expect.objectContaining({ reason: 'refused', lastError: expect.stringContaining('no resolver') })]);
      expect(fetched).not.toHaveBeenCalled();
    } finally {
      await d.close(100);
    }
  });
});
