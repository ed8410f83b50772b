import type { RequestAuth } from '@call-automation/client/raw';
import type { CallbackReceiver } from './harness/receiver.ts';
import { valueAt } from '@call-automation/contract';
import { Contract, describeErrors, type JsonObject, type Operation } from './contract.ts';
import type { SentRequest } from './reproduce.ts';
import { createDistinctSigner } from './signing.ts';

/** A check's verdict when it cannot run against this target, with why. */
export class CheckSkipped extends Error {
  override name = 'CheckSkipped';
}

/** A check's verdict when the target breaks the contract; `request` is the one whose answer broke it, when one did. */
export class CheckFailed extends Error {
  override name = 'CheckFailed';
  readonly request?: SentRequest;
  constructor(message: string, request?: SentRequest) {
    super(message);
    this.request = request;
  }
}

/** A request that got no answer (or only part of one): the connection failed, was reset, or timed out. */
export class NetworkError extends CheckFailed {
  override name = 'NetworkError';
}

/** Fails the check; `about` is the exchange whose answer broke the contract, for its reproduction. */
export function fail(message: string, about?: Exchange): never {
  throw new CheckFailed(message, about?.request);
}

export interface Exchange {
  method: string;
  path: string;
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
  /** The request as it went out, headers as signed and body as bytes. */
  request: SentRequest;
}

/**
 * What failed under a failed fetch, following `.cause`: "EPIPE write EPIPE". fetch's own
 * "fetch failed" says nothing, so it is left out when it has a cause.
 */
export function describeCause(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  if (current instanceof TypeError && current.message === 'fetch failed' && current.cause !== undefined) current = current.cause;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    if (!(current instanceof Error)) {
      parts.push(String(current));
      break;
    }
    const code = (current as { code?: unknown }).code;
    let message = current.message;
    // Node's "connect ECONNREFUSED" over several addresses is an AggregateError with no message of its own.
    if (!message && current instanceof AggregateError) message = current.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e))).join('; ');
    if (current.name === 'TimeoutError' || current.name === 'AbortError') parts.push(`${current.name} ${message}`);
    else parts.push([typeof code === 'string' || typeof code === 'number' ? String(code) : current.name, message].filter(Boolean).join(' '));
    current = current.cause;
  }
  return parts.join(', caused by ') || 'an unknown error';
}

export interface SendOptions {
  /** The operation the request is for: its answer is checked against what the spec documents for it. */
  operationId?: string;
  method?: string;
  /** The path, when it is not the operation's with `params` filled in. */
  path?: string;
  params?: Record<string, string>;
  /** An object is sent as JSON; a string or bytes as they are. */
  body?: unknown;
  /** Content-Type of a body; null sends none. Default application/json. */
  contentType?: string | null;
  headers?: Record<string, string>;
  /** How the request is authenticated: signed with the access key (default), not at all, or by a function of your own. */
  auth?: 'sign' | 'none' | ((request: Request) => Request | Promise<Request>);
}

export interface TargetOptions {
  baseUrl: string;
  accessKey: string;
  /** A URL that the target can deliver callbacks to, served by `receiver`. */
  callbackUrl?: string;
  receiver?: CallbackReceiver;
  callbackSecret?: string;
  /** The simulator's control surface (or one like it): makes participants act. */
  controlUrl?: string;
  seed: number;
  /**
   * The target refuses a signature it has already accepted (401 ReplayedRequest), which a server
   * may opt in to; by default servers accept one within its 15-minute window, as Azure's SDKs
   * re-send the same signature on every retry. Only then does auth.replay run.
   */
  expectReplayRefusal?: boolean;
  /** How long a request may wait for its whole answer before it counts as failed. Default 30 s. */
  requestTimeoutMs?: number;
}

/** What a check works with: the contract, the target, and a way to talk to it that checks every answer. */
export class CheckContext {
  readonly contract: Contract;
  readonly target: TargetOptions;
  /** What went against the contract in the answers so far (a check fails if any). */
  readonly problems: string[] = [];
  readonly exchanges: Exchange[] = [];
  /** What the check left out and why (an operation it could not send), listed with its result. */
  readonly notes: string[] = [];
  /** Requests sent, answered or not (a request that met a network error has no exchange). */
  requestsSent = 0;
  /** The request whose answer first broke the contract, for the reproduction of a failure. */
  blamed?: SentRequest;
  private readonly signer: RequestAuth;
  private state: number;

  /**
   * `signer` is shared by the checks of a run, so that no two identical requests of the run carry
   * the same signature: servers accept a re-sent signature by default, but one that opts in to
   * refusing replays (what auth.replay holds it to) would refuse a check's request that repeats
   * another's within the same second of x-ms-date.
   */
  constructor(contract: Contract, target: TargetOptions, signer: RequestAuth = createDistinctSigner(target.accessKey)) {
    this.contract = contract;
    this.target = target;
    this.signer = signer;
    this.state = target.seed >>> 0 || 1;
  }

  /** A seeded random number in [0, 1): the same seed makes the same requests. */
  random(): number {
    this.state ^= this.state << 13;
    this.state ^= this.state >>> 17;
    this.state ^= this.state << 5;
    return (this.state >>> 0) / 2 ** 32;
  }

  sign(request: Request): Promise<Request> {
    return Promise.resolve(this.signer.sign(request));
  }

  /** Sends a request and checks the answer against the spec (status, Content-Type, body, headers). */
  async send(options: SendOptions): Promise<Exchange> {
    const operation = options.operationId ? this.contract.operation(options.operationId) : undefined;
    const method = options.method ?? operation?.method ?? 'POST';
    const path =
      options.path ??
      operation!.path.replace(/\{([^}]+)\}/g, (_m, name: string) => encodeURIComponent(options.params?.[name] ?? fail(`no ${name} for ${operation!.operationId}`)));
    const headers = new Headers(options.headers);
    let body: BodyInit | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === 'string' || options.body instanceof Uint8Array ? (options.body as BodyInit) : JSON.stringify(options.body);
      if (options.contentType !== null) headers.set('content-type', options.contentType ?? 'application/json');
    }
    let request = new Request(`${this.target.baseUrl}${path}`, { method, headers, body });
    if (options.contentType === null) request.headers.delete('content-type');
    const auth = options.auth ?? 'sign';
    if (auth === 'sign') request = await this.sign(request);
    else if (typeof auth === 'function') request = await auth(request);
    // The body is read back from the request as authenticated (an auth function may replace it),
    // so that what is recorded, and reproduced, is what went out.
    const bytes = request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
    const sent: SentRequest = { operationId: operation?.operationId, method: request.method, url: request.url, headers: [...request.headers], body: bytes };
    this.requestsSent++;
    let status: number | undefined;
    let response: Response;
    let text: string;
    try {
      response = await fetch(new Request(sent.url, { method: sent.method, headers: sent.headers, body: bytes }), {
        redirect: 'manual',
        signal: AbortSignal.timeout(this.target.requestTimeoutMs ?? 30_000),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      throw new NetworkError(networkFailure(sent, path, status, error, this.target.requestTimeoutMs ?? 30_000), sent);
    }
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const exchange: Exchange = { method, path, status: response.status, headers: response.headers, text, json, request: sent };
    this.exchanges.push(exchange);
    this.checkAnswer(exchange, operation?.operationId);
    return exchange;
  }

  /** Records in `problems` whatever in an answer the spec does not allow. */
  checkAnswer(exchange: Exchange, operationId: string | undefined): void {
    const before = this.problems.length;
    this.checkStatusAndBody(exchange, operationId);
    if (this.problems.length > before) this.blamed ??= exchange.request;
  }

  private checkStatusAndBody(exchange: Exchange, operationId: string | undefined): void {
    const where = `${exchange.method} ${exchange.path} → ${exchange.status}`;
    if (exchange.status >= 500) this.problems.push(`${where}: a server error (${exchange.text.slice(0, 200)})`);
    const documented = operationId ? this.contract.operation(operationId).statuses : [404, 405];
    if (!documented.includes(exchange.status)) {
      this.problems.push(`${where}: ${exchange.status} is not documented ${operationId ? `for ${operationId}` : 'for an unknown path or method'} (documented: ${documented.join(', ')})`);
      return;
    }
    const response = operationId ? this.contract.response(operationId, exchange.status) : undefined;
    const content = (response?.content ?? (operationId ? undefined : { 'application/json': { schema: { $ref: '#/components/schemas/CommunicationError' } } })) as JsonObject | undefined;
    if (!content) {
      if (exchange.text !== '') this.problems.push(`${where}: a body, where the spec documents none (${exchange.text.slice(0, 100)})`);
    } else {
      const type = exchange.headers.get('content-type')?.split(';')[0]?.trim();
      if (!type || !(type in content)) {
        this.problems.push(`${where}: Content-Type ${type ?? '(none)'} is not documented (documented: ${Object.keys(content).join(', ')})`);
      } else if (exchange.json === undefined) {
        this.problems.push(`${where}: the body is not JSON (${exchange.text.slice(0, 100)})`);
      } else {
        const schema = (content[type] as JsonObject).schema as JsonObject;
        const pointer = typeof schema.$ref === 'string' ? schema.$ref : undefined;
        if (pointer) {
          const validate = this.contract.validator(pointer);
          if (!validate(exchange.json)) this.problems.push(`${where}: the body does not match ${pointer.split('/').pop()}: ${describeErrors(validate.errors)}`);
        }
      }
    }
    for (const [name, header] of Object.entries((response?.headers ?? {}) as JsonObject)) {
      const resolved = this.contract.resolve(header) as JsonObject;
      if (resolved.required && !exchange.headers.has(name)) this.problems.push(`${where}: the required header ${name} is missing`);
    }
    if (!operationId && exchange.status === 405 && !exchange.headers.has('allow')) this.problems.push(`${where}: 405 without Allow`);
  }

  /** Path parameters for an operation: `ids` where given, made-up ids that name nothing for the rest. */
  paramsFor(operation: Operation, ids: Record<string, string> = {}): Record<string, string> {
    return Object.fromEntries(operation.pathParams.map((name) => [name, ids[name] ?? unknownId(name)]));
  }

  /**
   * A body with every URI the target would contact pointed at the callback URL (the table's
   * `callbackUri` field at it, its other `contactedUris` under it), so that a run never makes a
   * target reach anywhere else. Without a callback URL the body is left as it is. `tag` tells
   * apart the URIs of several bodies.
   */
  pointUris(body: unknown, operation: Operation, tag = ''): unknown {
    const callbackUrl = this.target.callbackUrl;
    if (!callbackUrl || body === null || typeof body !== 'object') return body;
    for (const pointer of operation.contactedUris) {
      if (pointer !== operation.callbackUri) setPresent(body, pointer, `${callbackUrl.replace(/\/$/, '')}/contacted${pointer}${tag}`);
    }
    // The callback field is where the target reports on the call: it is set even when absent.
    if (operation.callbackUri) setPresent(body, operation.callbackUri, callbackUrl, true);
    return body;
  }

  /** A valid body for an operation: the spec's first example, its URIs pointed at the callback URL; undefined when it takes none. */
  validBody(operation: Operation): unknown {
    if (!operation.hasBody) return undefined;
    return this.pointUris(structuredClone(operation.exampleBody ?? {}), operation);
  }

  /**
   * Creates a call with the operation that creates one (the first in the table with a
   * `createdId`), from its example body, and answers the created id; needs a callback URL the
   * target accepts.
   */
  async createCall(overrides: JsonObject = {}): Promise<string> {
    if (!this.target.callbackUrl) throw new CheckSkipped('needs --callback-url, a URL the target can deliver callbacks to');
    const creator = this.contract.creator();
    const body = this.validBody(creator) as JsonObject | undefined;
    if (body) subscribeToEveryEvent(this.contract, creator, body);
    const exchange = await this.send({ operationId: creator.operationId, params: this.paramsFor(creator), body: body && { ...body, ...overrides } });
    if (exchange.status !== creator.successStatus) fail(`${creator.operationId} answered ${exchange.status}, not ${creator.successStatus}: ${exchange.text.slice(0, 200)}`, exchange);
    return this.createdId(creator, exchange);
  }

  /** The id a creating operation's answer carries at its `createdId`. */
  createdId(creator: Operation, exchange: Exchange): string {
    const id = valueAt(exchange.json, creator.createdId!);
    if (typeof id !== 'string' || id === '') fail(`${creator.operationId} answered ${exchange.status} without the id at ${creator.createdId}: ${exchange.text.slice(0, 200)}`, exchange);
    return id;
  }

  /** Ends a call with the operation that ends one (`endsCall`), and answers that exchange. */
  endCall(id: string, creator: Operation = this.contract.creator()): Promise<Exchange> {
    const ender = this.contract.ender(creator);
    return this.send({ operationId: ender.operationId, params: this.paramsFor(ender, { [creator.linkedParam!]: id }), body: this.validBody(ender) });
  }

  /** Asserts an error answer: the status, and the API's error body. */
  expectError(exchange: Exchange, statuses: number | number[], what: string): void {
    const wanted = Array.isArray(statuses) ? statuses : [statuses];
    if (!wanted.includes(exchange.status)) fail(`${what}: ${exchange.method} ${exchange.path} answered ${exchange.status}, not ${wanted.join(' or ')} (${exchange.text.slice(0, 160)})`, exchange);
    const body = exchange.json as { code?: unknown; message?: unknown } | undefined;
    if (typeof body?.code !== 'string' || typeof body?.message !== 'string') fail(`${what}: the ${exchange.status} answer is not the API's error body: ${exchange.text.slice(0, 160)}`, exchange);
  }
}

/** "network error on playAudio POST /calls/abc/PlayAudio (application/json, 1048576 bytes sent): EPIPE write EPIPE". */
function networkFailure(sent: SentRequest, path: string, status: number | undefined, error: unknown, timeoutMs: number): string {
  const type = sent.headers.find(([name]) => name === 'content-type')?.[1];
  const what = sent.body ? `${type ?? 'no Content-Type'}, ${sent.body.length} bytes sent` : 'no body';
  const when = status === undefined ? '' : ` while reading its ${status} answer`;
  const cause = error instanceof Error && error.name === 'TimeoutError' ? `TimeoutError no complete answer within ${timeoutMs} ms` : describeCause(error);
  return `network error on ${sent.operationId ? `${sent.operationId} ` : ''}${sent.method} ${path} (${what})${when}: ${cause}`;
}

/** A made-up id for a path parameter, naming nothing: `conformance-no-such-call` for callId. */
export function unknownId(param: string): string {
  return `conformance-no-such-${param.replace(/Id$/, '') || param}`;
}

/** Sets the field at a JSON pointer when its object is there, and the field too (or `always`). */
function setPresent(document: object, pointer: string, value: string, always = false): void {
  const at = pointer.lastIndexOf('/');
  const parent = valueAt(document, pointer.slice(0, at));
  const key = pointer.slice(at + 1).replace(/~1/g, '/').replace(/~0/g, '~');
  if (parent === null || typeof parent !== 'object' || Array.isArray(parent)) return;
  if (always || Object.hasOwn(parent, key)) (parent as Record<string, unknown>)[key] = value;
}

/**
 * The body field, in the creating operation's schema, listing the optional events a call sends:
 * the callback checks need every one of them (DTMF, participants), and the operation table has
 * no fact that names it.
 */
const subscriptionsField = 'requestedCallEvents';

/** Subscribes a creating body to every optional event its schema offers. */
function subscribeToEveryEvent(contract: Contract, creator: Operation, body: JsonObject): void {
  if (!creator.body) return;
  const schema = contract.schemaAt(`#/components/schemas/${creator.body}`);
  const field = contract.resolve((schema.properties as JsonObject | undefined)?.[subscriptionsField]) as JsonObject | undefined;
  const items = field?.items ? (contract.resolve(field.items) as JsonObject) : undefined;
  if (Array.isArray(items?.enum)) body[subscriptionsField] = items.enum.slice(0, typeof field?.maxItems === 'number' ? field.maxItems : undefined);
}
