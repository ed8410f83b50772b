import ipaddr from 'ipaddr.js';
import { ApiError } from './errors.ts';

/** Answers every address (A and AAAA) a host name resolves to. */
export type Resolver = (hostname: string) => Promise<string[]>;

export interface UriGuardOptions {
  /** Let URIs reach loopback addresses (127.0.0.0/8, ::1): for local development and tests only. */
  allowLoopback?: boolean;
  /** How host names are resolved; by default the system's resolver (node:dns), every address. */
  resolve?: Resolver;
  /**
   * How long an allowed URI is remembered, so that an app's one callbackUri is not parsed and
   * resolved on every request. Default 30 s; 0 turns it off. Checks asked to be fresh (callback
   * delivery asks) always resolve again.
   */
  cacheMs?: number;
}

interface DnsModule {
  promises: { lookup(hostname: string, options: { all: true; verbatim: true }): Promise<Array<{ address: string }>> };
}

const systemResolver: Resolver = async (hostname) => {
  const dns = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:dns') as DnsModule | undefined;
  if (!dns) throw new Error('No resolver: pass `resolve` to createUriGuard on this runtime.');
  return (await dns.promises.lookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address);
};

/** Why an address may not be contacted, or undefined if it may. */
export function refusedRange(address: string, allowLoopback = false): string | undefined {
  if (!ipaddr.isValid(address)) return 'not an IP address';
  // An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is judged as the IPv4 address it carries.
  const parsed = ipaddr.process(address);
  const range = parsed.range();
  if (range === 'unicast') return undefined;
  if (range === 'loopback' && allowLoopback) return undefined;
  const names: Record<string, string> = {
    loopback: 'a loopback address',
    private: 'a private address',
    linkLocal: 'a link-local address',
    carrierGradeNat: 'a carrier-grade NAT address',
    uniqueLocal: 'a unique-local address',
    unspecified: 'the unspecified address',
    broadcast: 'a broadcast address',
    multicast: 'a multicast address',
    reserved: 'a reserved address',
  };
  return names[range] ?? `a ${range} address`;
}

/**
 * Guards the URIs the service contacts (callbackUri, audioFileUri) against server-side request
 * forgery: only http(s), and only hosts whose every address is public. The WHATWG URL parser
 * first turns odd IPv4 spellings (2130706433, 0x7f.1) into dotted form, so they are judged as
 * what they are. `check` throws ApiError(400, UriNotAllowed) and answers the addresses it allowed.
 */
export function createUriGuard(options: UriGuardOptions = {}) {
  const resolve = options.resolve ?? systemResolver;
  const refuse = (field: string, message: string) => new ApiError(400, 'UriNotAllowed', `${field} ${message}.`, { target: `/${field}` });
  const cacheMs = options.cacheMs ?? 30_000;
  const allowed = new Map<string, { addresses: string[]; until: number }>();

  async function check(uri: string, field = 'uri', how: { fresh?: boolean } = {}): Promise<string[]> {
    const remembered = how.fresh || cacheMs === 0 ? undefined : allowed.get(uri);
    if (remembered && remembered.until > Date.now()) return remembered.addresses;
    const addresses = await judge(uri, field);
    if (cacheMs > 0) {
      if (allowed.size >= 1000) allowed.delete(allowed.keys().next().value!);
      allowed.set(uri, { addresses, until: Date.now() + cacheMs });
    }
    return addresses;
  }

  async function judge(uri: string, field: string): Promise<string[]> {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw refuse(field, 'is not an absolute URI');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw refuse(field, `uses ${url.protocol.slice(0, -1)}, not http or https`);
    if (url.username || url.password) throw refuse(field, 'carries credentials');
    const host = url.hostname.replace(/^\[|\]$/g, '');
    let addresses: string[];
    if (ipaddr.isValid(host)) addresses = [host];
    else {
      try {
        addresses = await resolve(host);
      } catch {
        throw refuse(field, `names a host that does not resolve (${host})`);
      }
      if (addresses.length === 0) throw refuse(field, `names a host that does not resolve (${host})`);
    }
    for (const address of addresses) {
      const why = refusedRange(address, options.allowLoopback);
      if (why) throw refuse(field, `${address === host ? 'is' : 'resolves to'} ${address}, ${why}`);
    }
    return addresses;
  }

  return { check };
}

export type UriGuard = ReturnType<typeof createUriGuard>;
