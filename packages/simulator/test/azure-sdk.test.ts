// Azure's own SDK pipeline against the simulator: the request policy Azure's Call Automation
// client uses signs a request once, before its retry policy, so every retry re-sends the first
// attempt's x-ms-date and signature. A loopback TCP proxy in between loses answers on purpose.
import { once } from 'node:events';
import { createServer, Socket, type Server } from 'node:net';
import { createCommunicationAccessKeyCredentialPolicy } from '@azure/communication-common';
import { AzureKeyCredential } from '@azure/core-auth';
import { createDefaultHttpClient, createHttpHeaders, createPipelineFromOptions, createPipelineRequest, type HttpClient, type Pipeline } from '@azure/core-rest-pipeline';
import { serveApp, type RunningServer } from '@call-automation/server/node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSimulatorService } from '../src/index.ts';

const accessKey = Buffer.from('azure-sdk-interop-access-key-001').toString('base64');
const secret = `whsec_${Buffer.from('azure-sdk-interop-callback-secret').toString('base64')}`;

/**
 * A TCP proxy to `upstream` that can lose answers: while `losing` is above 0, the next answer the
 * upstream sends is swallowed and the client's connection closed, as a network that fails after
 * the service acted would. It records the Authorization header of every request it forwards.
 */
async function startLossyProxy(upstreamPort: number) {
  const state = { losing: 0, authorizations: [] as string[] };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    let lose = false;
    client.on('data', (data: Buffer) => {
      const authorization = /\r\nauthorization: ([^\r]+)\r\n/i.exec(data.toString('latin1'))?.[1];
      if (authorization) {
        state.authorizations.push(authorization);
        // The request this connection carries now is the one whose answer is lost.
        if (state.losing > 0) {
          state.losing--;
          lose = true;
        }
      }
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      if (lose) client.destroy();
      else client.write(data);
    });
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', closeBoth).on('error', closeBoth);
    upstream.on('close', closeBoth).on('error', closeBoth);
    upstream.connect(upstreamPort, '127.0.0.1');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let service: ReturnType<typeof createSimulatorService>;
let api: RunningServer;
let proxy: Awaited<ReturnType<typeof startLossyProxy>>;
let pipeline: Pipeline;
let httpClient: HttpClient;

beforeAll(async () => {
  service = createSimulatorService({ accessKeys: [accessKey], callbackSecret: secret, allowLoopback: true, answerDelayMs: 10_000, log: () => {} });
  api = await serveApp(service.api);
  proxy = await startLossyProxy(Number(new URL(api.url).port));
  // As Azure's Call Automation client builds it: the pipeline's default policies (retry among
  // them), and the access-key policy added after them, outside the retry policy.
  pipeline = createPipelineFromOptions({ retryOptions: { maxRetries: 3, retryDelayInMs: 20, maxRetryDelayInMs: 100 } });
  pipeline.addPolicy(createCommunicationAccessKeyCredentialPolicy(new AzureKeyCredential(accessKey)));
  httpClient = createDefaultHttpClient();
});

afterAll(async () => {
  await proxy?.close();
  await api?.close();
  await service?.close(0);
});

beforeEach(() => {
  proxy.state.authorizations.length = 0;
  proxy.state.losing = 0;
});

function send(method: string, path: string, body?: object, headers: Record<string, string> = {}) {
  const request = createPipelineRequest({
    url: `${proxy.url}${path}`,
    method: method as 'POST',
    allowInsecureConnection: true,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: createHttpHeaders({ ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }),
  });
  return pipeline.sendRequest(httpClient, request);
}

const call = {
  targets: [{ phoneNumber: { value: '+14251001000' } }],
  callbackUri: 'http://127.0.0.1:9/callbacks',
  requestedModalities: ['audio'],
  requestedCallEvents: [],
};

describe("Azure's SDK pipeline", () => {
  it('gets the callLegId of a repeatable createCall whose first answer was lost, and one call exists', async () => {
    const before = (await service.simulator.listCalls()).length;
    proxy.state.losing = 1;
    const response = await send('POST', '/calls', call, { 'Repeatability-Request-ID': crypto.randomUUID(), 'Repeatability-First-Sent': new Date().toUTCString() });
    expect(response.status).toBe(200);
    expect(response.headers.get('repeatability-result')).toBe('accepted');
    const { callLegId } = JSON.parse(response.bodyAsText!) as { callLegId: string };
    // The retry re-sent the first attempt's signature, and the service honoured it.
    expect(proxy.state.authorizations).toHaveLength(2);
    expect(proxy.state.authorizations[1]).toBe(proxy.state.authorizations[0]);
    const calls = await service.simulator.listCalls();
    expect(calls).toHaveLength(before + 1);
    expect(calls.map((c) => c.callLegId)).toContain(callLegId);
  });

  it('gets the 202 of a PlayAudio whose first answer was lost', async () => {
    const created = await send('POST', '/calls', call);
    const { callLegId } = JSON.parse(created.bodyAsText!) as { callLegId: string };
    proxy.state.authorizations.length = 0;
    proxy.state.losing = 1;
    const response = await send('POST', `/calls/${callLegId}/PlayAudio`, { audioFileUri: 'https://media.contoso.com/prompt.wav', operationContext: 'lost-answer' });
    expect(response.status).toBe(202);
    expect(JSON.parse(response.bodyAsText!)).toMatchObject({ operationContext: 'lost-answer' });
    expect(proxy.state.authorizations).toHaveLength(2);
    expect(proxy.state.authorizations[1]).toBe(proxy.state.authorizations[0]);
  });

  it('gets 202 for two identical PlayAudio requests signed alike within one second', async () => {
    const created = await send('POST', '/calls', call);
    const { callLegId } = JSON.parse(created.bodyAsText!) as { callLegId: string };
    proxy.state.authorizations.length = 0;
    const body = { audioFileUri: 'https://media.contoso.com/prompt.wav', operationContext: 'twice' };
    let responses: Array<{ status: number }>;
    // x-ms-date has one-second resolution: send until both requests fall in the same second.
    do {
      proxy.state.authorizations.length = 0;
      responses = [await send('POST', `/calls/${callLegId}/PlayAudio`, body), await send('POST', `/calls/${callLegId}/PlayAudio`, body)];
    } while (proxy.state.authorizations[0] !== proxy.state.authorizations[1]);
    expect(responses.map((r) => r.status)).toEqual([202, 202]);
  });
});
