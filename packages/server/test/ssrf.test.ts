import { describe, expect, it } from 'vitest';
import { ApiError, createUriGuard, refusedRange } from '../src/index.ts';

// Names resolve from this table only: no test looks anything up or connects anywhere.
const dns: Record<string, string[]> = {
  'public.example': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
  'mixed.example': ['93.184.216.34', '10.1.2.3'],
  'localhost': ['127.0.0.1', '::1'],
  'rebind.example': ['169.254.169.254'],
};
const resolve = async (host: string) => {
  const found = dns[host];
  if (!found) throw new Error('ENOTFOUND');
  return found;
};

describe('the URI guard', () => {
  const guard = createUriGuard({ resolve });
  const loopbackAllowed = createUriGuard({ resolve, allowLoopback: true });

  it.each([
    ['https://public.example/callbacks'],
    ['http://93.184.216.34:8080/x'],
    ['https://[2606:2800:220:1:248:1893:25c8:1946]/x'],
  ])('allows %s', async (uri) => {
    await expect(guard.check(uri, 'callbackUri')).resolves.toBeDefined();
  });

  it.each([
    ['http://127.0.0.1/cb', 'loopback'],
    ['http://localhost:8080/cb', 'loopback'],
    ['http://[::1]/cb', 'loopback'],
    ['http://2130706433/cb', 'loopback'],
    ['http://0x7f.1/cb', 'loopback'],
    ['http://017700000001/cb', 'loopback'],
    ['http://10.0.0.7/cb', 'private'],
    ['http://172.16.5.4/cb', 'private'],
    ['http://192.168.1.1/cb', 'private'],
    ['http://169.254.169.254/latest/meta-data', 'link-local'],
    ['http://rebind.example/cb', 'link-local'],
    ['http://100.64.0.1/cb', 'carrier-grade NAT'],
    ['http://[fd00::1]/cb', 'unique-local'],
    ['http://[fe80::1]/cb', 'link-local'],
    ['http://[::ffff:10.0.0.1]/cb', 'IPv4-mapped'],
    ['http://[::ffff:127.0.0.1]/cb', 'IPv4-mapped'],
    ['http://[::ffff:93.184.216.34]/cb', 'IPv4-mapped'],
    ['http://0.0.0.0/cb', 'unspecified'],
    ['http://[::]/cb', 'unspecified'],
    ['http://mixed.example/cb', 'private'],
    ['ftp://public.example/cb', 'not http or https'],
    ['file:///etc/passwd', 'not http or https'],
    ['gopher://public.example/', 'not http or https'],
    ['https://user:pass@public.example/cb', 'credentials'],
  ])('refuses %s (%s) with 400 UriNotAllowed', async (uri, why) => {
    const error = await guard.check(uri, 'callbackUri').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).body).toMatchObject({ code: 'UriNotAllowed', target: '/callbackUri' });
    expect((error as ApiError).message).toContain(why);
  });

  it('allows loopback only when told to, and still refuses private addresses', async () => {
    await expect(loopbackAllowed.check('http://127.0.0.1:9/cb')).resolves.toEqual(['127.0.0.1']);
    await expect(loopbackAllowed.check('http://localhost/cb')).resolves.toEqual(['127.0.0.1', '::1']);
    await expect(loopbackAllowed.check('http://10.0.0.7/cb')).rejects.toThrow('private');
  });
});

describe('the guard remembers what it allowed', () => {
  it('resolves an allowed host once within cacheMs, and every time when asked to be fresh', async () => {
    let lookups = 0;
    const guard = createUriGuard({
      resolve: async () => {
        lookups++;
        return ['93.184.216.34'];
      },
    });
    await guard.check('https://callbacks.example/cb');
    await guard.check('https://callbacks.example/cb');
    expect(lookups).toBe(1);
    await guard.check('https://callbacks.example/cb', 'callbackUri', { fresh: true });
    expect(lookups).toBe(2);
  });

  it('never remembers a refusal, and re-resolves a fresh check that now points inside', async () => {
    let answer = ['93.184.216.34'];
    const guard = createUriGuard({ resolve: async () => answer });
    await guard.check('https://rebinding.example/cb');
    answer = ['10.0.0.9'];
    await expect(guard.check('https://rebinding.example/cb', 'callbackUri', { fresh: true })).rejects.toThrow('private');
  });
});

describe('addresses that carry an IPv4 address inside IPv6', () => {
  // Each can reach the IPv4 address it carries through a translator or relay, so none is judged
  // by its IPv6 range (which ipaddr.js calls unicast for ::/96).
  it.each([
    ['::a00:1', 'IPv4-compatible', '10.0.0.1'],
    ['::7f00:1', 'IPv4-compatible', '127.0.0.1'],
    ['::5db8:d822', 'IPv4-compatible', '93.184.216.34'],
    ['64:ff9b::a00:1', 'NAT64', '10.0.0.1'],
    ['64:ff9b::7f00:1', 'NAT64', '127.0.0.1'],
    ['64:ff9b:1::a00:1', 'NAT64', undefined],
    ['2002:a00:1::1', '6to4', '10.0.0.1'],
    ['2002:7f00:1::', '6to4', '127.0.0.1'],
    // Teredo carries its client's address with every bit flipped: f5ff:fffe is 10.0.0.1.
    ['2001:0:4136:e378:8000:63bf:f5ff:fffe', 'Teredo', '10.0.0.1'],
    ['::ffff:0:a00:1', 'IPv4-translated', '10.0.0.1'],
  ])('refuses %s as %s', async (address, form, carried) => {
    const why = refusedRange(address, true);
    expect(why).toContain(form);
    if (carried) expect(why).toContain(`carrying ${carried}`);
    await expect(createUriGuard({ resolve }).check(`http://[${address}]/cb`, 'callbackUri')).rejects.toMatchObject({ status: 400, code: 'UriNotAllowed', message: expect.stringContaining(form) });
  });

  it('keeps ::1 loopback (allowed only with allowLoopback), :: unspecified, and refuses IPv4-mapped addresses whatever they carry', () => {
    expect(refusedRange('::1')).toBe('a loopback address');
    expect(refusedRange('::1', true)).toBeUndefined();
    expect(refusedRange('::')).toBe('the unspecified address');
    expect(refusedRange('::', true)).toBe('the unspecified address');
    expect(refusedRange('::ffff:127.0.0.1', true)).toBe('an IPv4-mapped address (carrying 127.0.0.1)');
    expect(refusedRange('::ffff:10.0.0.1', true)).toBe('an IPv4-mapped address (carrying 10.0.0.1)');
    expect(refusedRange('::ffff:93.184.216.34')).toBe('an IPv4-mapped address (carrying 93.184.216.34)');
  });

  it('judges the public address the tests rely on as unicast, and TEST-NET-3 as reserved', () => {
    expect(refusedRange('93.184.216.34')).toBeUndefined();
    expect(refusedRange('203.0.113.10')).toBe('a reserved address');
  });
});

describe('a host name that does not resolve when the request arrives', () => {
  const enotfound = async (host: string) => {
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  };

  it('is not refused for that alone: there is nothing to vet yet, and delivery resolves it again', async () => {
    const guard = createUriGuard({ resolve: enotfound });
    await expect(guard.check('https://new-name.example/cb', 'callbackUri')).resolves.toEqual([]);
    await expect(createUriGuard({ resolve: async () => [] }).check('https://empty.example/cb')).resolves.toEqual([]);
  });

  it('is resolved again by the next request rather than remembered as allowed', async () => {
    let answer: string[] | undefined;
    const guard = createUriGuard({
      resolve: async (host) => {
        if (!answer) return enotfound(host);
        return answer;
      },
    });
    await guard.check('https://soon.example/cb', 'callbackUri');
    answer = ['10.0.0.7'];
    await expect(guard.check('https://soon.example/cb', 'callbackUri')).rejects.toThrow('private');
  });

  it('still refuses, with 400 UriNotAllowed, a name that resolves to a private address', async () => {
    const guard = createUriGuard({ resolve: async () => ['10.0.0.7'] });
    await expect(guard.check('https://internal.example/cb', 'callbackUri')).rejects.toMatchObject({
      status: 400,
      body: { code: 'UriNotAllowed', target: '/callbackUri', message: 'callbackUri resolves to 10.0.0.7, a private address.' },
    });
  });
});

describe('the form-only check', () => {
  const offline = async (): Promise<string[]> => {
    throw new Error('the form-only check must not resolve');
  };
  const guard = createUriGuard({ resolve: offline });

  it('allows realistic host names without resolving them', async () => {
    await expect(guard.check('https://media.contoso.com/x.wav', 'audioFileUri', { resolve: false })).resolves.toEqual([]);
    await expect(guard.check('https://93.184.216.34/x.wav', 'audioFileUri', { resolve: false })).resolves.toEqual(['93.184.216.34']);
    await expect(createUriGuard({ resolve: offline, allowLoopback: true }).check('http://localhost:8080/x.wav', 'audioFileUri', { resolve: false })).resolves.toEqual([]);
  });

  it.each([
    ['http://127.0.0.1/x.wav', 'loopback'],
    ['http://[::1]/x.wav', 'loopback'],
    ['http://2130706433/x.wav', 'loopback'],
    ['http://10.0.0.7/x.wav', 'private'],
    ['http://[::a00:1]/x.wav', 'IPv4-compatible'],
    ['http://localhost:8080/x.wav', 'loopback'],
    ['http://media.localhost/x.wav', 'loopback'],
    ['file:///etc/passwd', 'not http or https'],
    ['https://user:pass@media.contoso.com/x.wav', 'credentials'],
    ['not a uri', 'not an absolute URI'],
  ])('still refuses %s (%s)', async (uri, why) => {
    await expect(guard.check(uri, 'audioFileUri', { resolve: false })).rejects.toMatchObject({ status: 400, code: 'UriNotAllowed', message: expect.stringContaining(why) });
  });
});
