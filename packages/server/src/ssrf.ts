import ipaddr from 'ipaddr.js';
import { ApiError } from './errors.ts';
import { FifoMap } from './fifo-map.ts';

/** Answers every address (A and AAAA) a host name resolves to. */
export type Resolver = (hostname: string) => Promise<string[]>;

export interface UriGuardOptions {
  /** Let URIs reach loopback addresses (127.0.0.0/8, ::1): for local development and tests only. */
  allowLoopback?: boolean;
  /**
   * How host names are resolved; by default the system's resolver (node:dns), every address. A
   * runtime without node:dns (workerd without nodejs_compat, a browser) has no resolver: pass one
   * (a DNS-over-HTTPS lookup, say), or host names are refused (see `allowUnvettedNames`).
   */
  resolve?: Resolver;
  /**
   * With no resolver on this runtime (no `resolve`, no node:dns), let URIs that name a host pass
   * unvetted rather than refuse them: the check judges only their form and literal addresses, and
   * deliveries fetch them as they are. Only for a platform whose outbound requests cannot reach
   * private networks whatever a name resolves to (Cloudflare Workers' fetch reaches the public
   * internet only). Without a resolver and without this, every host name is refused. Where there
   * is a resolver it changes nothing.
   */
  allowUnvettedNames?: boolean;
  /**
   * How long an allowed URI is remembered, so that an app's one callbackUri is not parsed and
   * resolved on every request. Default 30 s; 0 turns it off. Checks asked to be fresh always
   * resolve again.
   */
  cacheMs?: number;
}

interface DnsModule {
  promises: { lookup(hostname: string, options: { all: true; verbatim: true }): Promise<Array<{ address: string }>> };
}

/** The system's resolver (node:dns), or undefined on a runtime that has none. */
function systemResolver(): Resolver | undefined {
  const dns = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:dns') as DnsModule | undefined;
  if (!dns) return undefined;
  return async (hostname) => (await dns.promises.lookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address);
}

const noResolver: Resolver = async () => {
  throw new Error('No resolver: pass `resolve` to createUriGuard on this runtime.');
};

/** An address the guard vetted, as a connection needs it. */
export interface VettedAddress {
  address: string;
  family: 4 | 6;
}

export interface CheckOptions {
  /** Resolve again even if the URI was allowed within `cacheMs` (ignored with `resolve: false`). */
  fresh?: boolean;
  /**
   * `false` judges only the URI's form and a literal address, without DNS: for a URI the service
   * never contacts, or whose host is resolved and vetted when connecting (`createPinnedFetch`).
   * Default true.
   */
  resolve?: boolean;
}

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
  // An IPv4-mapped IPv6 address (::ffff:10.0.0.1) names an IPv4 host by another spelling: no
  // callback needs one, and the contract refuses them whatever they carry.
  const raw = ipaddr.parse(address);
  if (raw.kind() === 'ipv6' && (raw as ipaddr.IPv6).isIPv4MappedAddress()) return `an IPv4-mapped address (carrying ${(raw as ipaddr.IPv6).toIPv4Address().toString()})`;
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
 * forgery: only http(s), no credentials, and only hosts whose every address is public. The
 * WHATWG URL parser first turns odd IPv4 spellings (2130706433, 0x7f.1) into dotted form, so they
 * are judged as what they are; `localhost` and `*.localhost` are loopback by definition (RFC 6761)
 * and judged so without DNS.
 *
 * `check(uri, field)` throws ApiError(400, UriNotAllowed), or answers the addresses it vetted. A
 * host name that does not resolve is not refused for that alone (the name may be new, or the
 * resolver down; neither is the caller's fault): the check passes with nothing vetted, and the
 * delivery resolves and vets the name when it connects. A name that resolves to any refused
 * address is refused. `check(uri, field, { resolve: false })` judges the form and a literal
 * address only, for URIs the service never contacts.
 *
 * On a runtime with no resolver at all (no `resolve`, no node:dns), names can never be vetted:
 * a check that would resolve refuses every host name (a literal address is still judged as it
 * is), unless `allowUnvettedNames` lets them pass on a platform whose egress reaches no private
 * network.
 *
 * `resolveHost(hostname, field)` is the connect-time half: it resolves a name and answers its
 * addresses only if every one may be contacted, so that a connection made to what it answered
 * reaches nothing the guard did not see (no DNS rebinding between check and connect).
 */
export function createUriGuard(options: UriGuardOptions = {}) {
  const resolver = options.resolve ?? systemResolver();
  const resolve = resolver ?? noResolver;
  const refuse = (field: string, message: string) => new ApiError(400, 'UriNotAllowed', `${field} ${message}.`, { target: `/${field}` });
  const cacheMs = options.cacheMs ?? 30_000;
  const allowed = new FifoMap<string, { addresses: string[]; until: number }>();

  async function check(uri: string, field = 'uri', how: CheckOptions = {}): Promise<string[]> {
    if (how.resolve === false) return judge(uri, field, false);
    const remembered = how.fresh || cacheMs === 0 ? undefined : allowed.get(uri);
    if (remembered && remembered.until > Date.now()) return remembered.addresses;
    const addresses = await judge(uri, field, true);
    // A name that did not resolve vetted nothing: the next request asks again rather than passing on memory.
    if (cacheMs > 0 && addresses.length > 0) {
      if (allowed.size >= 1000 && !allowed.has(uri)) allowed.shift();
      allowed.delete(uri);
      allowed.set(uri, { addresses, until: Date.now() + cacheMs });
    }
    return addresses;
  }

  async function judge(uri: string, field: string, resolving: boolean): Promise<string[]> {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw refuse(field, 'is not an absolute URI');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw refuse(field, `uses ${url.protocol.slice(0, -1)}, not http or https`);
    if (url.username || url.password) throw refuse(field, 'carries credentials');
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (ipaddr.isValid(host)) {
      const why = refusedRange(host, options.allowLoopback);
      if (why) throw refuse(field, `is ${host}, ${why}`);
      return [host];
    }
    if (!options.allowLoopback && /(^|\.)localhost\.?$/i.test(host)) throw refuse(field, `names ${host}, a loopback address`);
    if (!resolving) return [];
    if (!resolver) {
      if (options.allowUnvettedNames) return [];
      throw refuse(
        field,
        `names the host ${host}, which cannot be vetted: this runtime has no resolver. Pass \`resolve\` to createUriGuard (a DNS-over-HTTPS lookup, for one), or \`allowUnvettedNames: true\` on a platform whose egress cannot reach private networks`,
      );
    }
    let addresses: string[];
    try {
      addresses = await resolve(host);
    } catch {
      return [];
    }
    for (const address of addresses) {
      const why = refusedRange(address, options.allowLoopback);
      if (why) throw refuse(field, `resolves to ${address}, ${why}`);
    }
    return addresses;
  }

  async function resolveHost(hostname: string, field = 'uri'): Promise<VettedAddress[]> {
    // A resolution failure passes through as it came: for the connection it is a network error.
    const addresses = await resolve(hostname);
    if (addresses.length === 0) throw Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND', hostname });
    for (const address of addresses) {
      // A socket takes only standard spellings; ipaddr.js would also read 0x7f.1 or 010.0.0.1.
      const standard = ipaddr.IPv4.isValidFourPartDecimal(address) || ipaddr.IPv6.isValid(address);
      const why = standard ? refusedRange(address, options.allowLoopback) : 'not an IP address';
      if (why) throw refuse(field, `resolves to ${address}, ${why} (${hostname}, when connecting)`);
    }
    return addresses.map((address) => ({ address, family: ipaddr.parse(address).kind() === 'ipv6' ? 6 : 4 }));
  }

  return { check, resolveHost };
}

export type UriGuard = ReturnType<typeof createUriGuard>;
