// CORS for browser apps on other origins (the service's `cors` option), on the Node adapter;
// cors-through-hono.test.ts runs the same tests on the Hono adapter.
import { afterEach, describe, expect, it } from 'vitest';
import { createCallAutomationService } from '../src/index.ts';
import { memoryHandlers, phoneCall, serveMemory, accessKey, type Served } from './fixture.ts';

const app = 'http://127.0.0.1:5173';
const stranger = 'https://evil.example';
/** What Chromium asks before the client's createCall from another origin. */
const preflightHeaders = (origin: string) => ({
  origin,
  'access-control-request-method': 'POST',
  'access-control-request-headers': 'authorization,content-type,repeatability-first-sent,repeatability-request-id,x-ms-content-sha256,x-ms-date',
});

const served: Served[] = [];
afterEach(async () => {
  await Promise.all(served.splice(0).map((entry) => entry.server.close()));
});
async function serve(options: Parameters<typeof serveMemory>[0] = {}) {
  const entry = await serveMemory(options);
  served.push(entry);
  return entry;
}

const listed = (value: string | null) => (value ?? '').split(',').map((name) => name.trim().toLowerCase()).filter(Boolean);

describe('without the cors option', () => {
  it('answers no CORS headers, and a preflight 405 as any OPTIONS', async () => {
    const { url, client } = await serve();
    const preflight = await fetch(`${url}/calls`, { method: 'OPTIONS', headers: preflightHeaders(app) });
    expect(preflight.status).toBe(405);
    expect(preflight.headers.get('allow')).toBe('POST');
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const created = await client.createCall(phoneCall, { headers: { origin: app } });
    expect(created.response.status).toBe(200);
    expect([...created.response.headers.keys()].filter((name) => name.startsWith('access-control-'))).toEqual([]);
  });
});

describe('with cors for one origin', () => {
  const cors = { origins: [app] };

  it('answers a preflight 204 with the origin, the path’s methods, the headers clients send, Max-Age and Vary', async () => {
    const { url } = await serve({ cors });
    const preflight = await fetch(`${url}/calls`, { method: 'OPTIONS', headers: preflightHeaders(app) });
    expect(preflight.status).toBe(204);
    expect(await preflight.text()).toBe('');
    expect(preflight.headers.get('content-length')).toBeNull();
    expect(preflight.headers.get('access-control-allow-origin')).toBe(app);
    expect(preflight.headers.get('access-control-allow-methods')).toBe('POST');
    expect(listed(preflight.headers.get('access-control-allow-headers'))).toEqual(
      expect.arrayContaining(['authorization', 'content-type', 'x-ms-date', 'x-ms-content-sha256', 'repeatability-request-id', 'repeatability-first-sent', 'x-ms-client-request-id']),
    );
    expect(preflight.headers.get('access-control-max-age')).toBe('600');
    expect(listed(preflight.headers.get('vary'))).toContain('origin');
    // Each path answers its own methods, as the router has them.
    const participant = await fetch(`${url}/calls/abc/participants/def`, { method: 'OPTIONS', headers: { ...preflightHeaders(app), 'access-control-request-method': 'DELETE' } });
    expect(participant.status).toBe(204);
    expect(participant.headers.get('access-control-allow-methods')).toBe('DELETE');
    const hangup = await fetch(`${url}/calls/abc/Hangup`, { method: 'OPTIONS', headers: preflightHeaders(app) });
    expect(hangup.headers.get('access-control-allow-methods')).toBe('POST');
  });

  it('names the allowed origin on every answer, errors too, and exposes the headers clients read', async () => {
    const { url, client } = await serve({ cors });
    const expectCors = (response: Response, what: string) => {
      expect(response.headers.get('access-control-allow-origin'), what).toBe(app);
      expect(listed(response.headers.get('access-control-expose-headers')), what).toEqual(expect.arrayContaining(['retry-after', 'repeatability-result', 'x-ms-request-id']));
      expect(listed(response.headers.get('vary')), what).toContain('origin');
    };
    const created = await client.createCall(phoneCall, { headers: { origin: app } });
    expect(created.response.status).toBe(200);
    expectCors(created.response, 'createCall');
    const missing = await client.hangupCall(crypto.randomUUID(), { headers: { origin: app } });
    expect(missing.response.status).toBe(404);
    expectCors(missing.response, 'an unknown call');
    const unsigned = await fetch(`${url}/calls`, { method: 'POST', headers: { origin: app, 'content-type': 'application/json' }, body: JSON.stringify(phoneCall) });
    expect(unsigned.status).toBe(401);
    expectCors(unsigned, 'an unsigned request');
    const wrongMethod = await fetch(`${url}/calls`, { headers: { origin: app } });
    expect(wrongMethod.status).toBe(405);
    expectCors(wrongMethod, 'a method the path lacks');
    // An OPTIONS that is no preflight (no Access-Control-Request-Method) is a method the path lacks.
    const plainOptions = await fetch(`${url}/calls`, { method: 'OPTIONS', headers: { origin: app } });
    expect(plainOptions.status).toBe(405);
    expectCors(plainOptions, 'a plain OPTIONS');
    const nowhere = await fetch(`${url}/nowhere`, { headers: { origin: app } });
    expect(nowhere.status).toBe(404);
    expectCors(nowhere, 'a path the API does not have');
  });

  it('refuses a preflight from another origin with 403, and names no origin on its answers', async () => {
    const { url, client } = await serve({ cors });
    const preflight = await fetch(`${url}/calls`, { method: 'OPTIONS', headers: preflightHeaders(stranger) });
    expect(preflight.status).toBe(403);
    expect(await preflight.json()).toMatchObject({ code: 'OriginNotAllowed', target: 'Origin' });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    // A request from elsewhere is answered (CORS binds browsers, not servers), without CORS headers.
    const created = await client.createCall(phoneCall, { headers: { origin: stranger } });
    expect(created.response.status).toBe(200);
    expect(created.response.headers.get('access-control-allow-origin')).toBeNull();
    // A request with no Origin (not from a browser page) is answered as without the option.
    const plain = await client.createCall(phoneCall);
    expect(plain.response.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('with cors for any origin', () => {
  it("answers each origin its own, with the Max-Age and extra headers it is given", async () => {
    const { url } = await serve({ cors: { origins: '*', maxAgeSeconds: 60, allowHeaders: ['traceparent'] } });
    for (const origin of [app, stranger]) {
      const preflight = await fetch(`${url}/calls/abc/PlayAudio`, { method: 'OPTIONS', headers: preflightHeaders(origin) });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(origin);
      expect(preflight.headers.get('access-control-max-age')).toBe('60');
      expect(listed(preflight.headers.get('access-control-allow-headers'))).toContain('traceparent');
    }
  });
});

describe('the cors option', () => {
  const make = (cors: unknown) => () => createCallAutomationService({ handlers: memoryHandlers().handlers, auth: { accessKeys: [accessKey] }, cors: cors as never });

  it('takes origins as browsers send them, and refuses what is not one', () => {
    expect(make({ origins: ['https://app.contoso.com', 'http://127.0.0.1:5173/', 'https://APP.example'] })).not.toThrow();
    for (const origin of ['app.contoso.com', 'https://app.contoso.com/callbacks', 'https://app.contoso.com?x=1', 'null', '*.contoso.com', 'file:///index.html']) {
      expect(make({ origins: [origin] }), origin).toThrow(/is not an origin/);
    }
    expect(make({ origins: 'https://app.contoso.com' })).toThrow(/list of origins/);
    expect(make({ origins: '*', maxAgeSeconds: -1 })).toThrow(/maxAgeSeconds/);
    expect(make({ origins: '*', allowHeaders: ['bad header'] })).toThrow(/allowHeaders/);
  });

  it('compares origins as browsers write them (scheme and host in lower case)', async () => {
    const { url } = await serve({ cors: { origins: ['https://APP.example'] } });
    const preflight = await fetch(`${url}/calls`, { method: 'OPTIONS', headers: preflightHeaders('https://app.example') });
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example');
  });
});
