/** What a stubbed fetch saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: Headers;
  body: string;
  signal: AbortSignal;
}

/**
 * A fetch that answers from `answer` and records each request it is given. `answer` may throw
 * to stand for a network error.
 */
export function stubFetch(answer: (request: Request, attempt: number) => Response | Promise<Response>) {
  const seen: SeenRequest[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : new Request(input, init);
    seen.push({ method: request.method, url: request.url, headers: new Headers(request.headers), body: await request.clone().text(), signal: request.signal });
    return answer(request, seen.length);
  };
  return { fetch: fetch as typeof globalThis.fetch, seen };
}

export const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

export const connectionString = 'endpoint=https://contoso.communication.azure.com/;accesskey=Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=';

export const phoneCall = {
  targets: [{ phoneNumber: { value: '+14251001000' } }],
  callbackUri: 'https://app.contoso.com/api/callbacks',
  requestedModalities: ['audio' as const],
  requestedCallEvents: ['participantsUpdated' as const],
};

/** A network error as undici raises it, with the code of its cause. */
export function networkError(code: string): TypeError {
  return Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(code), { code }) });
}
