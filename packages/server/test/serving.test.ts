import { createCallAutomationClient } from '@call-automation/client';
import { Hono } from 'hono';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createCallAutomationApp, createCallAutomationService } from '../src/index.ts';
import { serveApp, type RunningServer } from '../src/node.ts';
import { accessKey, memoryHandlers, phoneCall } from './fixture.ts';

const running: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

type Adapter = 'node' | 'hono';

/** The memory service, served with the Node adapter or the Hono one (wrapped as `wrap` says). */
async function serve(adapter: Adapter, options: { wrap?: (app: Hono) => Hono; fallback?: Hono; onError?: (error: unknown) => void } = {}) {
  const service = createCallAutomationService({ handlers: memoryHandlers().handlers, auth: { accessKeys: [accessKey] }, onError: options.onError });
  const server =
    adapter === 'node'
      ? await serveApp(service, { fallback: options.fallback?.fetch })
      : await serveApp((options.wrap ?? ((app) => app))(createCallAutomationApp(service)));
  running.push(server);
  const client = createCallAutomationClient(`endpoint=${server.url}/;accesskey=${accessKey}`, { retry: false });
  return { server, client };
}

describe('the Node adapter', () => {
  it('answers the API, hands the paths it does not have to the fallback, and answers 405 itself', async () => {
    const { server, client } = await serve('node', { fallback: new Hono().get('/health', (c) => c.text('ok')) });
    const created = await client.createCall(phoneCall);
    expect(created.response.status).toBe(200);
    expect(await (await fetch(`${server.url}/health`)).text()).toBe('ok');
    const wrongMethod = await fetch(`${server.url}/calls`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    expect(await wrongMethod.json()).toMatchObject({ code: 'MethodNotAllowed' });
  });

  it('answers 404 in the error body for a path the API does not have, without a fallback', async () => {
    const { server } = await serve('node');
    const response = await fetch(`${server.url}/nowhere`);
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ code: 'NotFound' });
  });
});

describe.each(['node', 'hono'] as const)('the %s adapter', (adapter) => {
  it('routes escaped paths and ids as the other adapter does', async () => {
    const { server, client } = await serve(adapter);
    const escaped = await client.hangupCall('%41bc');
    expect(escaped.response.status).toBe(400);
    expect(escaped.error).toMatchObject({ code: 'ValidationFailed' });
    for (const [path, allow] of [['/calls', 'POST'], ['/%63alls', 'POST'], ['/calls/abc/participants/def', 'DELETE']]) {
      const response = await fetch(`${server.url}${path}`, { method: 'PUT' });
      expect(response.status, path).toBe(405);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(response.headers.get('allow')).toBe(allow);
    }
  });

  it('shrugs off a client that leaves half-way through its body', async () => {
    const errors: unknown[] = [];
    const { server, client } = await serve(adapter, { onError: (error) => void errors.push(error) });
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
});

describe('the Hono adapter', () => {
  it('keeps the 405 answers when the app is mounted in another', async () => {
    const { server } = await serve('hono', { wrap: (app) => new Hono().route('/', app) });
    for (const [path, allow] of [['/calls', 'POST'], ['/%63alls', 'POST'], ['/calls/abc/participants/def', 'DELETE']]) {
      const response = await fetch(`${server.url}${path}`, { method: 'PUT' });
      expect(response.status, path).toBe(405);
      expect(response.headers.get('allow')).toBe(allow);
      expect(await response.json()).toMatchObject({ code: 'MethodNotAllowed' });
    }
  });

  it('lets middleware of an app it is mounted in see every request and answer', async () => {
    const seen: string[] = [];
    const { client } = await serve('hono', {
      wrap: (app) => {
        const outer = new Hono();
        outer.use('*', async (c, next) => {
          seen.push(`${c.req.method} ${new URL(c.req.url).pathname}`);
          await next();
          c.res.headers.set('x-seen-by', 'middleware');
        });
        return outer.route('/', app);
      },
    });
    const created = await client.createCall(phoneCall);
    expect(created.response.status).toBe(200);
    expect(created.response.headers.get('x-seen-by')).toBe('middleware');
    expect(seen).toEqual(['POST /calls']);
  });
});

describe('serveApp', () => {
  it.each([
    ['headers', { headersTimeoutMs: 1000 }, 'POST /calls HTTP/1.1\r\nHost: x\r\n'],
    ['request', { requestTimeoutMs: 1000, headersTimeoutMs: 500 }, 'POST /calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"targets":'],
  ])('closes a connection slower than its %s timeout soon after it passes', async (_what, options, partial) => {
    const server = await serveApp(createCallAutomationService({ handlers: memoryHandlers().handlers, auth: { accessKeys: [accessKey] } }), options);
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
