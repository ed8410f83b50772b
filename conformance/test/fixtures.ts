import { createHmacAuth } from '@call-automation/client/raw';
import { serveApp, type RunningServer } from '@call-automation/server/node';
import { createSimulator, createSimulatorService } from '@call-automation/simulator';
import { createCallAutomationApp, type AuthOptions, type CallbackEmitter } from '@call-automation/server';

export const accessKey = Buffer.from('conformance-test-access-key-0001').toString('base64');
export const callbackSecret = `whsec_${Buffer.from('conformance-test-callback-secret').toString('base64')}`;

type Fetch = (request: Request) => Promise<Response>;

/** A server that breaks the contract in one way, on top of the simulator. */
export interface BrokenServer {
  name: string;
  /** The check that must report the break. */
  caughtBy: string;
  /** What its message must say. */
  says: RegExp;
  /** The break is in a callback, not in an answer: there is no request to show with it. */
  inCallback?: true;
  wrap?: (fetch: Fetch) => Fetch;
  /** Alters the simulator's events on their way out. */
  events?: (emitter: CallbackEmitter) => CallbackEmitter;
  /** Alters the simulator's handlers. */
  handlers?: (handlers: ReturnType<typeof createSimulatorService>['simulator']['handlers']) => void;
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => Response.json(body, { status, headers });
const isCreate = (request: Request) => request.method === 'POST' && new URL(request.url).pathname === '/calls';

export const brokenServers: BrokenServer[] = [
  {
    name: 'wrong status',
    caughtBy: 'lifecycle.operations',
    says: /201 is not documented for createCall/,
    wrap: (fetch) => async (request) => {
      const response = await fetch(request);
      return isCreate(request) && response.status === 200 ? new Response(response.body, { status: 201, headers: response.headers }) : response;
    },
  },
  {
    name: 'missing field',
    caughtBy: 'lifecycle.operations',
    says: /does not match CreateCallResponse: \/ must have required property 'callLegId'/,
    wrap: (fetch) => async (request) => {
      const response = await fetch(request);
      if (!isCreate(request) || response.status !== 200) return response;
      const { callLegId } = (await response.json()) as { callLegId: string };
      return json(200, { id: callLegId });
    },
  },
  {
    name: 'plain-text error',
    caughtBy: 'errors.unknown-call',
    says: /not the API's error body/,
    wrap: (fetch) => async (request) => {
      const response = await fetch(request);
      return response.status === 404 ? new Response('Not Found', { status: 404, headers: { 'content-type': 'text/plain' } }) : response;
    },
  },
  {
    name: 'a 500 on malformed JSON',
    caughtBy: 'negative.create-call',
    says: /malformed JSON: 500, not 400/,
    wrap: (fetch) => async (request) => {
      const text = await request.clone().text();
      if (isCreate(request) && text.startsWith('{"conformance"')) return new Response('SyntaxError: Unexpected end of JSON input\n    at JSON.parse', { status: 500 });
      return fetch(request);
    },
  },
  {
    name: 'optional fields refused',
    caughtBy: 'positive.create-call',
    says: /createCall refused a valid body with 400/,
    wrap: (fetch) => async (request) => {
      if (!isCreate(request)) return fetch(request);
      const body = (await request.clone().json().catch(() => ({}))) as Record<string, unknown>;
      const optional = ['source', 'subject', 'alternateCallerId'].filter((name) => name in body);
      return optional.length ? json(400, { code: 'ValidationFailed', message: `Unknown field ${optional[0]}.` }) : fetch(request);
    },
  },
  {
    name: 'auth not enforced',
    caughtBy: 'auth.no-credentials',
    says: /was not refused with 401/,
    // Signs whatever comes in: a server that does not check who is calling.
    wrap: (fetch) => {
      const signer = createHmacAuth(accessKey);
      return async (request) => fetch(request.headers.has('authorization') ? request : await signer.sign(request));
    },
  },
  {
    name: 'repeats not honoured',
    caughtBy: 'repeatability.same-request',
    says: /the call was placed twice/,
    // Forgets the Repeatability-Request-ID, yet says it honoured it.
    wrap: (fetch) => async (request) => {
      const headers = new Headers(request.headers);
      headers.delete('repeatability-request-id');
      const response = await fetch(new Request(request, { headers }));
      const answered = new Headers(response.headers);
      if (request.headers.has('repeatability-request-id')) answered.set('repeatability-result', 'accepted');
      return new Response(response.body, { status: response.status, headers: answered });
    },
  },
  {
    name: 'first result for another request',
    caughtBy: 'repeatability.other-request',
    says: /was answered the first request's callLegId/,
    // Keeps answers by id alone, whatever the request.
    wrap: (fetch) => {
      const answers = new Map<string, { status: number; text: string; headers: Headers }>();
      return async (request) => {
        const id = request.headers.get('repeatability-request-id');
        const kept = id ? answers.get(id) : undefined;
        if (kept) return new Response(kept.text, { status: kept.status, headers: kept.headers });
        const response = await fetch(request);
        if (!id) return response;
        const text = await response.text();
        answers.set(id, { status: response.status, text, headers: response.headers });
        return new Response(text, { status: response.status, headers: response.headers });
      };
    },
  },
  {
    name: 'no window for Repeatability-First-Sent',
    caughtBy: 'repeatability.expired',
    says: /11 minutes old: .* answered 200, not 412/,
    wrap: (fetch) => async (request) => {
      const headers = new Headers(request.headers);
      headers.delete('repeatability-first-sent');
      return fetch(new Request(request, { headers }));
    },
  },
  {
    name: 'alive after hang-up',
    caughtBy: 'lifecycle.after-hangup',
    says: /hangupCall after hangupCall ended the call: .* answered 202, not 404/,
    handlers: (handlers) => {
      handlers.hangupCall = () => ({ status: 202 });
    },
  },
  {
    name: 'malformed callback',
    caughtBy: 'callbacks.call-states',
    says: /CallLegStateChanged event does not match its schema/,
    inCallback: true,
    events: (emitter) => ({
      register: (id, uri) => emitter.register(id, uri),
      emit: (id, name, data) => emitter.emit(id, name, name === 'CallLegStateChanged' ? ({ ...data, callState: 'ringing' } as never) : data),
    }),
  },
];

export interface Served {
  url: string;
  controlUrl: string;
  close(): Promise<void>;
}

/** Serves the simulator on loopback, broken as `broken` says (or as it is). */
export async function serveTarget(broken?: BrokenServer, options: { signedHost?: string } = {}): Promise<Served> {
  const service = createSimulatorService({ accessKeys: [accessKey], callbackSecret, allowLoopback: true, answerDelayMs: 20, playDurationMs: 50, ...options });
  broken?.handlers?.(service.simulator.handlers);
  if (broken?.events) {
    // The handlers reach the emitter through the app's context; the delivery's emit is swapped in place.
    const altered = broken.events({ register: service.delivery.register.bind(service.delivery), emit: service.delivery.emit.bind(service.delivery) });
    service.delivery.emit = altered.emit;
  }
  const app = createCallAutomationApp(service.api);
  const base: Fetch = async (request) => app.fetch(request);
  const api: RunningServer = await serveApp({ fetch: broken?.wrap ? broken.wrap(base) : base });
  const control = await serveApp(service.control);
  return {
    url: api.url,
    controlUrl: control.url,
    async close() {
      await Promise.all([api.close(), control.close()]);
      await service.close(500);
    },
  };
}

/**
 * The server stub's authentication option for replays: refuse a signature it has already
 * accepted (401 ReplayedRequest), or accept it within its window (the default). The one place
 * the fixtures depend on the option's name.
 */
function replayAuth(refuse: boolean): Partial<AuthOptions> {
  return { refuseReplays: refuse };
}

/** The simulator's handlers behind the server stub, refusing replayed signatures or not. */
export async function serveReplayTarget(refuseReplays: boolean): Promise<{ url: string; close(): Promise<void> }> {
  const simulator = createSimulator({ answerDelayMs: 20, playDurationMs: 50 });
  const app = createCallAutomationApp({ handlers: simulator.handlers, auth: { accessKeys: [accessKey], ...replayAuth(refuseReplays) } });
  const api = await serveApp(app);
  return {
    url: api.url,
    async close() {
      await api.close();
      await simulator.stop();
    },
  };
}
