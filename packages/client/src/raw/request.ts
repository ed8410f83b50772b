import { operationRoutes, type OperationRouteEntry } from '@call-automation/contract';

/**
 * A Request that remembers the body text it was built with.
 * openapi-fetch builds each request from the body it has just serialised (and passes it the
 * other init fields); keeping that string lets signing and retries use it without reading the
 * request's stream again, which would triple the cost of a call.
 */
export class CallRequest extends Request {
  readonly bodyText: string | undefined;
  /** Whether the request was built with a body of any kind. */
  readonly hasBody: boolean;
  /** The mark of a request built by this class (`instanceof` answers true for any Request). */
  readonly #captured = true;

  /**
   * openapi-fetch takes from a middleware's onRequest only an instance of the Request class it
   * builds with: any Request counts as one, so that a middleware may return `new Request(…)` to
   * the raw client as it may to the named methods.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof Request;
  }

  /** Whether a request was built by this class, and so knows its body text. */
  static captures(request: Request): request is CallRequest {
    return #captured in request;
  }

  constructor(input: RequestInfo | URL, init?: RequestInit) {
    super(input, init);
    const inherited = typeof input === 'object' && CallRequest.captures(input as Request) ? (input as CallRequest) : undefined;
    const body = init?.body;
    this.bodyText = typeof body === 'string' ? body : body === undefined ? inherited?.bodyText : undefined;
    this.hasBody = body != null || (body === undefined && (inherited ? inherited.hasBody : input instanceof Request && input.body !== null));
  }
}

/** The body text a request was built with, when it is known without reading the request. */
export function capturedBody(request: Request): string | undefined {
  if (CallRequest.captures(request)) {
    if (request.bodyText !== undefined) return request.bodyText;
    // Built without a body at all: nothing to read. (`request.body` would build a stream.)
    if (!request.hasBody) return '';
  }
  return request.body === null ? '' : undefined;
}

/** The body of a request: the text it was built with when known, else the bytes of a clone. */
export async function bodyOf(request: Request): Promise<string | Uint8Array<ArrayBuffer>> {
  return capturedBody(request) ?? new Uint8Array(await request.clone().arrayBuffer());
}

/** Finds the operation of the spec that a request is, by its method and URL. */
export type OperationFinder = (method: string, url: string) => OperationRouteEntry | undefined;

/**
 * The operation a request to `endpoint` is, matched by method and path template: a path
 * parameter is one segment, as the client and openapi-fetch encode it. The host is not compared,
 * so that a request a middleware sends through a proxy is still known.
 */
export function operationFinder(endpoint: string): OperationFinder {
  const pathOf = (url: string) => {
    const start = url.indexOf('/', url.indexOf('//') + 2);
    return start === -1 ? '/' : url.slice(start).split(/[?#]/, 1)[0]!;
  };
  const base = endpoint.includes('/', endpoint.indexOf('//') + 2) ? pathOf(endpoint) : '';
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const routes = (Object.values(operationRoutes) as OperationRouteEntry[]).map((entry) => ({
    entry,
    pattern: new RegExp(`^${escape(base)}${entry.path.split(/\{[^}]+\}/).map(escape).join('[^/]+')}$`),
  }));
  return (method, url) => {
    const path = pathOf(url);
    method = method.toUpperCase();
    return routes.find((route) => route.entry.method === method && route.pattern.test(path))?.entry;
  };
}
