import { createCallAutomationClient } from '@call-automation/client';
import { Hono } from 'hono';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createCallAutomationApp } from '../src/index.ts';
import { serveApp, type RunningServer } from '../src/node.ts';
import { accessKey, memoryHandlers, phoneCall } from './fixture.ts';

const running: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

type App = ReturnType<typeof createCallAutomationApp>;

/** The app served (or the app `wrap` makes of it), with a count of the requests that went through Hono's fetch. */
async function serve(wrap: (app: App) => App = (app) => app, onError?: (error: unknown) => void) {
  const app = wrap(createCallAutomationApp({ handlers: memoryHandlers().handlers, auth: { accessKeys: [accessKey] }, onError }));
  let throughHono = 0;
  const fetch = app.fetch;
  app.fetch = (request, ...rest) => {
    throughHono++;
    return fetch(request, ...rest);
  };
  const server = await serveApp(app);
  running.push(server);
  const client = createCallAutomationClient(`endpoint=${server.url}/;accesskey=${accessKey}`, { retry: false });
  return { server, client, throughHono: () => throughHono };
}

describe('serveApp', () => {
  it('answers the API straight from node:http, and the rest through Hono', async () => {
    const { server, client, throughHono } = await serve();
    const created = await client.createCall(phoneCall);
    expect(created.response.status).toBe(200);
    expect((await client.hangupCall(created.data!.callLegId)).response.status).toBe(202);
    expect(throughHono()).toBe(0);
    // Unknown paths, methods a path lacks and escaped ids go through Hono, with the same error bodies.
    expect((await fetch(`${server.url}/nowhere`)).status).toBe(404);
    const wrongMethod = await fetch(`${server.url}/calls`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    const escaped = await client.hangupCall('%41bc');
    expect(escaped.response.status).toBe(400);
    expect(escaped.error).toMatchObject({ code: 'ValidationFailed' });
    expect(throughHono()).toBe(3);
  });

  it('sends through Hono the targets and hosts that Hono would normalise or refuse, so that both paths sign and route alike', async () => {
    const { server, throughHono } = await serve();
    const { port } = new URL(server.url);
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.end(request));
        let text = '';
        socket.on('data', (chunk) => (text += chunk));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
    // No Host (HTTP/1.0) and a Host that is not one: refused as @hono/node-server refuses them.
    expect(await raw('POST /calls HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}')).toMatch(/^HTTP\/1\.1 400 /);
    expect(await raw(`POST /calls HTTP/1.1\r\nHost: a@b\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`)).toMatch(/^HTTP\/1\.1 400 /);
    // A query Hono re-encodes: authenticated over the form Hono signs.
    const quoted = await raw(`POST /calls?a="b" HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
    expect(quoted).toMatch(/^HTTP\/1\.1 401 /);
    expect(throughHono()).toBe(1);
  });

  it('keeps the 405 answers when the app is mounted in another, for escaped paths too', async () => {
    const { server } = await serve((app) => new Hono().route('/', app));
    for (const [path, allow] of [['/calls', 'POST'], ['/%63alls', 'POST'], ['/calls/abc/participants/def', 'DELETE']]) {
      const response = await fetch(`${server.url}${path}`, { method: 'PUT' });
      expect(response.status, path).toBe(405);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(response.headers.get('allow')).toBe(allow);
      expect(await response.json()).toMatchObject({ code: 'MethodNotAllowed' });
    }
  });

  it('sends the API through Hono when the app is mounted in one with middleware', async () => {
    const seen: string[] = [];
    const { client, throughHono } = await serve((app) => {
      const outer = new Hono();
      outer.use('*', async (c, next) => {
        seen.push(`${c.req.method} ${new URL(c.req.url).pathname}`);
        await next();
        c.res.headers.set('x-seen-by', 'middleware');
      });
      return outer.route('/', app);
    });
    const created = await client.createCall(phoneCall);
    expect(created.response.status).toBe(200);
    expect(created.response.headers.get('x-seen-by')).toBe('middleware');
    expect(seen).toEqual(['POST /calls']);
    expect(throughHono()).toBe(1);
  });

  it('sends a request through Hono when a handler added to the app matches it too', async () => {
    const seen: string[] = [];
    const { client, throughHono } = await serve((app) =>
      app.post('/calls', (c) => {
        seen.push('added');
        return c.text('added');
      }),
    );
    // Hono runs the stub's handler first, which answers: the one added after it never runs, on either path.
    expect((await client.createCall(phoneCall)).response.status).toBe(200);
    expect(seen).toEqual([]);
    expect(throughHono()).toBe(1);
  });

  it('keeps the direct path for the API when the app has other routes of its own', async () => {
    const { server, client, throughHono } = await serve((app) => app.get('/health', (c) => c.text('ok')));
    expect(await (await fetch(`${server.url}/health`)).text()).toBe('ok');
    expect((await client.createCall(phoneCall)).response.status).toBe(200);
    expect(throughHono()).toBe(1);
  });

  it.each([
    ['answered directly', (app: App) => app],
    ['through Hono', (app: App) => new Hono().route('/', app)],
  ])('shrugs off a client that leaves half-way through its body (%s)', async (_path, wrap) => {
    const errors: unknown[] = [];
    const { server, client } = await serve(wrap, (error) => void errors.push(error));
    const { port } = new URL(server.url);
    await new Promise<void>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write('POST /calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"targets":');
        setTimeout(() => socket.destroy(), 50);
      });
      socket.on('close', () => resolve());
    });
    expect((await client.createCall(phoneCall)).response.status).toBe(200);
    expect(errors).toEqual([]);
  });

  it.each([
    ['headers', { headersTimeoutMs: 1000 }, 'POST /calls HTTP/1.1\r\nHost: x\r\n'],
    ['request', { requestTimeoutMs: 1000, headersTimeoutMs: 500 }, 'POST /calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"targets":'],
  ])('closes a connection slower than its %s timeout soon after it passes', async (_what, options, partial) => {
    const server = await serveApp(createCallAutomationApp({ handlers: memoryHandlers().handlers, auth: { accessKeys: [accessKey] } }), options);
    running.push(server);
    const started = performance.now();
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      const socket = connect(Number(new URL(server.url).port), '127.0.0.1', () => socket.write(partial));
      socket.on('data', (data: Buffer) => (text += data.toString()));
      socket.on('error', () => {});
      socket.on('close', () => resolve(text));
    });
    const elapsed = performance.now() - started;
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    // Node checks its connections every 30 s unless told otherwise: this took up to 31 s.
    expect(elapsed).toBeGreaterThan(900);
    expect(elapsed).toBeLessThan(2_500);
  });
});
