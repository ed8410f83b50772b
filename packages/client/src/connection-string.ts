/** A Communication Services resource's endpoint and access key, from its connection string. */
export interface ConnectionString {
  /** The resource's base URL, without a trailing slash. */
  endpoint: string;
  /** The access key, base64, as the connection string carries it. */
  accessKey: string;
}

const shape = 'endpoint=https://<resource>.communication.azure.com/;accesskey=<base64 key>';

/**
 * Parses `endpoint=…;accesskey=…` (keys matched case-insensitively, in any order). Throws a
 * `TypeError` that says what is wrong, and never repeats the key.
 */
export function parseConnectionString(connectionString: string): ConnectionString {
  const fields = new Map<string, string>();
  for (const part of connectionString.trim().split(';')) {
    const at = part.indexOf('=');
    if (at > 0) fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  const endpoint = fields.get('endpoint');
  const accessKey = fields.get('accesskey');
  if (!endpoint || !accessKey) {
    throw new TypeError(`The connection string has no ${endpoint ? 'accesskey' : 'endpoint'}; expected ${shape}.`);
  }
  return { endpoint: normalizeEndpoint(endpoint), accessKey };
}

/** Checks that an endpoint is an absolute http(s) URL and drops its trailing slash. */
export function normalizeEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new TypeError(`The endpoint "${endpoint}" is not an absolute URL; expected https://<resource>.communication.azure.com/.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError(`The endpoint "${endpoint}" must be an http or https URL.`);
  }
  return url.href.replace(/\/+$/, '');
}
