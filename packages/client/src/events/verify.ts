import { Webhook, WebhookVerificationError } from 'standardwebhooks';

/** Request headers, as a Fetch `Headers` or a Node-style record. */
export type HeadersLike = Headers | Record<string, string | string[] | undefined>;

export type VerificationFailure = 'missing-headers' | 'stale' | 'future' | 'bad-signature' | 'bad-secret';

/** A delivery whose signature does not prove that it came from the service, now. */
export class CallbackVerificationError extends Error {
  override readonly name = 'CallbackVerificationError';
  constructor(
    readonly reason: VerificationFailure,
    message: string,
  ) {
    super(message);
  }
}

const reasons: Record<string, [VerificationFailure, string]> = {
  'Missing required headers': ['missing-headers', 'The delivery lacks webhook-id, webhook-timestamp or webhook-signature.'],
  'Message timestamp too old': ['stale', 'webhook-timestamp is more than 5 minutes old: a replay, or a clock that is off.'],
  'Message timestamp too new': ['future', 'webhook-timestamp is more than 5 minutes ahead: a clock that is off.'],
  'Invalid Signature Headers': ['missing-headers', 'webhook-timestamp is not a number of seconds.'],
  'No matching signature found': ['bad-signature', 'No signature in webhook-signature matches the body with this secret.'],
};

function header(headers: HeadersLike, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const value = headers[name] ?? Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
  return Array.isArray(value) ? value.join(' ') : value;
}

/**
 * Verifies a callback delivery's Standard Webhooks signature over the raw body, as received
 * (before any JSON parsing): the timestamp within 5 minutes of this clock, an HMAC-SHA256 that
 * matches in constant time. `secret` is the `whsec_…` secret, or several while one is rotated.
 * Throws a CallbackVerificationError saying why; answers the delivery's id and time.
 */
/** None given (undefined or empty, as an unset environment variable gives it), where the README's examples read it from. */
export const noSecret = 'No callback secret (set CALL_AUTOMATION_CALLBACK_SECRET): the whsec_ secret the service signs callbacks with.';

export function verifyCallbackSignature(rawBody: string, headers: HeadersLike, secret: string | readonly string[]): { id: string; timestamp: Date } {
  const wanted = {
    'webhook-id': header(headers, 'webhook-id') ?? '',
    'webhook-timestamp': header(headers, 'webhook-timestamp') ?? '',
    'webhook-signature': header(headers, 'webhook-signature') ?? '',
  };
  const secrets = (typeof secret === 'string' ? [secret] : (secret ?? [])).filter(Boolean);
  if (secrets.length === 0) throw new CallbackVerificationError('bad-secret', noSecret);
  let failure: CallbackVerificationError | undefined;
  for (const candidate of secrets) {
    let webhook: Webhook;
    try {
      webhook = new Webhook(candidate);
    } catch {
      throw new CallbackVerificationError('bad-secret', 'The callback secret is not a whsec_ secret with a base64 key.');
    }
    try {
      webhook.verify(rawBody, wanted, { jsonParse: false });
      return { id: wanted['webhook-id'], timestamp: new Date(Number(wanted['webhook-timestamp']) * 1000) };
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      const [reason, message] = reasons[error.message] ?? ['bad-signature', error.message];
      failure = new CallbackVerificationError(reason, message);
      if (reason !== 'bad-signature') break;
    }
  }
  throw failure!;
}
