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

const ipv4Compatible = ipaddr.IPv6.parseCIDR('::/96');
const wellKnownNat64 = ipaddr.IPv6.parseCIDR('64:ff9b::/96');
const dotted = (bytes: number[]) => ipaddr.fromByteArray(bytes).toString();

/**
 * IPv6 forms that carry an IPv4 address, which a translator or relay on the path may deliver to:
 * they are refused whatever they carry, since what that IPv4 address reaches depends on a network
 * the guard cannot see. (IPv4-mapped addresses are not among them: a socket connects to exactly
 * the IPv4 address they carry, so `refusedRange` judges them as that address.)
 */
function embeddedIPv4(address: ipaddr.IPv6): string | undefined {
  const bytes = address.toByteArray();
  switch (address.range()) {
    case 'rfc6052':
      return address.match(wellKnownNat64) ? `a NAT64 address (64:ff9b::/96, carrying ${dotted(bytes.slice(12))})` : 'a NAT64 address (64:ff9b:1::/48)';
    case '6to4':
      return `a 6to4 address (2002::/16, carrying ${dotted(bytes.slice(2, 6))})`;
    case 'teredo':
      // Teredo stores its client's address with every bit inverted (RFC 4380).
      return `a Teredo address (2001::/32, carrying ${dotted(bytes.slice(12).map((byte) => byte ^ 0xff))})`;
    case 'rfc6145':
      return `an IPv4-translated address (::ffff:0:0:0/96, carrying ${dotted(bytes.slice(12))})`;
    case 'unicast':
      // ipaddr.js calls the deprecated IPv4-compatible block unicast; :: and ::1 have ranges of their own.
      return address.match(ipv4Compatible) ? `an IPv4-compatible address (::/96, carrying ${dotted(bytes.slice(12))})` : undefined;
    default:
      return undefined;
  }
}

/** Why an address may not be contacted, or undefined if it may. */
export function refusedRange(address: string, allowLoopback = false): string | undefined {
  if (!ipaddr.isValid(address)) return 'not an IP address';
  // An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is judged as the IPv4 address it carries.
  const parsed = ipaddr.process(address);
  if (parsed.kind() === 'ipv6') {
    const embedded = embeddedIPv4(parsed as ipaddr.IPv6);
    if (embedded) return embedded;
  }
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
