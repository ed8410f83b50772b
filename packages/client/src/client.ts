import createClient, { type Client, type Middleware } from 'openapi-fetch';
import { normalizeEndpoint, parseConnectionString } from './connection-string.ts';
import type { components, paths } from './generated/openapi.gen.ts';
import { createBearerAuth, createHmacAuth, type RequestAuth, type TokenCredential } from './hmac.ts';
import { attemptSignal, CallRequest, type CallSettings } from './request.ts';
import { toCommunicationError, type CallResult, type DataOf, type OperationId } from './result.ts';
import { createRetryMiddleware, type RetryOptions } from './retry.ts';

type Schemas = components['schemas'];

/** An access key (base64), as a string or as Azure's `{ key }` credential, or a token credential. */
export type Credential = string | { key: string } | TokenCredential;

export interface ClientOptions {
  /** Retry settings for every call, or false for none. Default: 3 retries, 500 ms base, 8 s ceiling. */
  retry?: RetryOptions | false;
  /** Each attempt's time limit in milliseconds. Default: none. */
  timeoutMs?: number;
  /** The fetch to use; default the global one. */
  fetch?: typeof fetch;
  /** Put before this package's name in User-Agent, e.g. "my-app/1.2". */
  userAgent?: string;
  /** openapi-fetch middleware of your own. Their onRequest runs before signing; their onResponse sees the answer after retries. */
  middleware?: Middleware[];
}

export interface CallOptions {
  /** Aborting it stops the call and any retries at once. */
  signal?: AbortSignal;
  /** Extra headers for this call (they override the client's, including the repeatability headers). */
  headers?: Record<string, string>;
  /** Retry settings for this call, or false for none. */
  retry?: RetryOptions | false;
  /** This call's per-attempt time limit. */
  timeoutMs?: number;
}

export interface CallAutomationClient {
  /** The service's base URL. */
  readonly endpoint: string;
  /** The typed openapi-fetch client underneath, with the same authentication and retries. */
  readonly raw: Client<paths>;
  /** Places a call; answers its callLegId. Sends repeatability headers, so that retries never call twice. */
  createCall(body: Schemas['CreateCallRequest'], options?: CallOptions): Promise<CallResult<'createCall'>>;
  /** Ends a call for everyone. */
  hangupCall(callId: string, options?: CallOptions): Promise<CallResult<'hangupCall'>>;
  /** Plays an audio file into the call; a PlayAudioResult event reports how it ended. */
  playAudio(callId: string, body: Schemas['PlayAudioRequest'], options?: CallOptions): Promise<CallResult<'playAudio'>>;
  /** Stops the media operations running in the call. */
  cancelMediaProcessing(callId: string, body: Schemas['CancelMediaProcessingRequest'], options?: CallOptions): Promise<CallResult<'cancelMediaProcessing'>>;
  /** Invites participants into the call; an InviteParticipantResult event reports the outcome. */
  inviteParticipants(callId: string, body: Schemas['InviteParticipantsRequest'], options?: CallOptions): Promise<CallResult<'inviteParticipants'>>;
  /** Removes a participant from the call. */
  removeParticipant(callId: string, participantId: string, options?: CallOptions): Promise<CallResult<'removeParticipant'>>;
}

export const packageVersion = '0.1.0';

function authFor(credential: Credential): RequestAuth {
  if (typeof credential === 'string') return createHmacAuth(credential);
  if ('getToken' in credential && typeof credential.getToken === 'function') return createBearerAuth(credential);
  if ('key' in credential && typeof credential.key === 'string') return createHmacAuth(credential.key);
  throw new TypeError('credential must be an access key, { key } or { getToken() }');
}

/**
 * A client of the Call Automation API, from a connection string
 * (`endpoint=https://….communication.azure.com/;accesskey=…`) or an endpoint and a credential.
 */
export function createCallAutomationClient(connectionString: string, options?: ClientOptions): CallAutomationClient;
export function createCallAutomationClient(config: { endpoint: string; credential: Credential }, options?: ClientOptions): CallAutomationClient;
export function createCallAutomationClient(
  target: string | { endpoint: string; credential: Credential },
  options: ClientOptions = {},
): CallAutomationClient {
  const { endpoint, credential } =
    typeof target === 'string'
      ? (({ endpoint: e, accessKey }) => ({ endpoint: e, credential: accessKey as Credential }))(parseConnectionString(target))
      : { endpoint: normalizeEndpoint(target.endpoint), credential: target.credential };
  const auth = authFor(credential);
  const raw = createClient<paths>({
    baseUrl: endpoint,
    fetch: options.fetch ?? ((request: Request) => globalThis.fetch(request)),
    Request: CallRequest,
    headers: { 'User-Agent': `${options.userAgent ? `${options.userAgent} ` : ''}call-automation-client/${packageVersion}` },
  });
  // onRequest runs in this order (the user's, then signing, then retries) and onResponse in the
  // reverse, so the user's middleware sees the final answer after any retries.
  raw.use(...(options.middleware ?? []), auth.middleware, createRetryMiddleware(auth.sign, options.retry || undefined));

  /** The fetch options of a named method's call: its headers, signal and settings. */
  function init(call: CallOptions | undefined, headers?: Record<string, string>) {
    const settings: CallSettings = {
      retry: call?.retry ?? (options.retry === false ? false : undefined),
      signal: call?.signal,
      timeoutMs: call?.timeoutMs ?? options.timeoutMs,
    };
    // `call` reaches the CallRequest through openapi-fetch's init, which passes unknown fields on.
    return { headers: { ...headers, ...call?.headers }, signal: attemptSignal(settings), call: settings } as { headers: Record<string, string>; signal?: AbortSignal };
  }

  async function settle<Op extends OperationId>(
    operation: Op,
    pending: Promise<{ data?: unknown; error?: unknown; response: Response }>,
  ): Promise<CallResult<Op>> {
    const { data, error, response } = await pending;
    const result = response.ok ? { data: data as DataOf<Op>, response, operation } : { error: toCommunicationError(error, response), response, operation };
    return result as CallResult<Op>;
  }

  const path = (callId: string) => ({ path: { callId } });

  return {
    endpoint,
    raw,
    createCall: (body, call) =>
      settle(
        'createCall',
        raw.POST('/calls', {
          body,
          ...init(call, {
            'Repeatability-Request-ID': crypto.randomUUID(),
            'Repeatability-First-Sent': new Date().toUTCString(),
          }),
        }),
      ),
    hangupCall: (callId, call) => settle('hangupCall', raw.POST('/calls/{callId}/Hangup', { params: path(callId), ...init(call) })),
    playAudio: (callId, body, call) => settle('playAudio', raw.POST('/calls/{callId}/PlayAudio', { params: path(callId), body, ...init(call) })),
    cancelMediaProcessing: (callId, body, call) =>
      settle('cancelMediaProcessing', raw.POST('/calls/{callId}/CancelMediaProcessing', { params: path(callId), body, ...init(call) })),
    inviteParticipants: (callId, body, call) =>
      settle('inviteParticipants', raw.POST('/calls/{callId}/participants', { params: path(callId), body, ...init(call) })),
    removeParticipant: (callId, participantId, call) =>
      settle(
        'removeParticipant',
        raw.DELETE('/calls/{callId}/participants/{participantId}', { params: { path: { callId, participantId } }, ...init(call) }),
      ),
  };
}
