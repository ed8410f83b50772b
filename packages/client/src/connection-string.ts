/** A Communication Services resource's endpoint and access key, from its connection string. */
export interface ConnectionString {
  /** The resource's base URL, without a trailing slash. */
  endpoint: string;
  /** The access key, base64, as the connection string carries it. */
  accessKey: string;
}

const expected = 'expected endpoint=https://<resource>.communication.azure.com/;accesskey=<base64 key>';

/**
 * Parses `endpoint=…;accesskey=…` (keys matched case-insensitively, in any order). Throws a
 * `TypeError` that says what is wrong, and never repeats the key: for none at all (undefined or
 * blank, as an unset environment variable gives it), where the README's example reads it from.
 */
export function parseConnectionString(connectionString: string): ConnectionString {
  const fields = new Map<string, string>();
  for (const part of String(connectionString).trim().split(';')) {
    const at = part.indexOf('=');
    if (at > 0) fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  const endpoint = fields.get('endpoint');
  const accessKey = fields.get('accesskey');
  if (!endpoint || !accessKey) {
    throw new TypeError(`${connectionString?.trim() ? `Connection string without ${endpoint ? 'accesskey' : 'endpoint'}` : 'No connection string (set CALL_AUTOMATION_CONNECTION_STRING)'}: ${expected}`);
  }
  return { endpoint: normalizeEndpoint(endpoint), accessKey };
}

/** Checks that an endpoint is an absolute http(s) URL and drops its trailing slash. */
export function normalizeEndpoint(endpoint: string): string {
  const url = URL.canParse(endpoint) ? new URL(endpoint) : undefined;
  if (!url || !/^https?:$/.test(url.protocol)) throw new TypeError(`Endpoint "${endpoint}" is not an absolute http(s) URL: ${expected}`);
  if (url.search || url.hash) throw new TypeError(`Endpoint "${endpoint}" has a query or a fragment: ${expected}`);
  return url.href.replace(/\/+$/, '');
}
