import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The harness lives with the conformance suite (which depends on this package, so it is imported by path).
import { startPrism, type RunningPrism } from '../../../conformance/src/harness/index.ts';
import { createCallAutomationClient, type CallAutomationClient, type OperationOptions, type OperationResult, type OperationId } from '../src/index.ts';
import { createRawClient } from '../src/raw/index.ts';
import { parseCallbackEvent } from '../src/events/index.ts';

const specDir = join(import.meta.dirname, '..', '..', '..', 'spec', 'dist');
const spec = JSON.parse(readFileSync(join(specDir, 'openapi.json'), 'utf8'));

type Json = Record<string, unknown>;
const resolve = (node: Json): Json => (typeof node.$ref === 'string' ? resolve(node.$ref.slice(2).split('/').reduce((o: Json, k) => o[k] as Json, spec)) : node);

/** The operations' documented statuses and the example the mock answers for each. */
const cases: Array<{ operationId: OperationId; status: number; example: unknown }> = [];
for (const item of Object.values(spec.paths as Record<string, Json>)) {
  for (const method of ['post', 'delete']) {
    const operation = item[method] as Json | undefined;
    if (!operation) continue;
    for (const [status, response] of Object.entries(operation.responses as Json)) {
      const content = (resolve(response as Json).content ?? {}) as Record<string, { examples: Record<string, { value: unknown }> }>;
      const examples = Object.values(content['application/json']?.examples ?? {});
      cases.push({ operationId: operation.operationId as OperationId, status: Number(status), example: examples[0]?.value });
    }
  }
}

const call = {
  targets: [{ communicationUser: { id: '8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776_00000005-4f83-d4b7-a7ac-473a0d00d0c1' } }],
  callbackUri: 'https://app.contoso.com/api/callbacks',
  requestedModalities: ['audio' as const],
  requestedCallEvents: ['participantsUpdated' as const],
};
const leg = '4f1c2b7e-8c1d-4a7e-9c55-1e2f3a4b5c6d';

function invoke(client: CallAutomationClient, operationId: OperationId, options?: OperationOptions, callbackUri = call.callbackUri): Promise<OperationResult<OperationId>> {
  switch (operationId) {
    case 'createCall':
      return client.createCall({ ...call, callbackUri }, options);
    case 'hangupCall':
      return client.hangupCall(leg, options);
    case 'playAudio':
      return client.playAudio(leg, { audioFileUri: 'https://media.contoso.com/a.wav', loop: false, operationContext: 'ctx' }, options);
    case 'cancelMediaProcessing':
      return client.cancelMediaProcessing(leg, { operationContext: 'ctx' }, options);
    case 'inviteParticipants':
      return client.inviteParticipants(leg, { participants: [{ phoneNumber: { value: '+14251001000' } }], operationContext: 'ctx' }, options);
    case 'removeParticipant':
      return client.removeParticipant(leg, '7d2e9a40-5b6c-4f3d-9e8a-0b1c2d3e4f50', options);
  }
}

describe("the client against Prism's mock of the spec", () => {
  let prism: RunningPrism;
  let connectionString: string;
  /** A client without middleware, as most apps make it. */
  let client: CallAutomationClient;
  /** A client whose own middleware runs around every call. */
  let withMiddleware: CallAutomationClient;
  let preferCode: number | undefined;
  const violations: string[] = [];

  /** Asks the mock for one documented status (Prism answers that response's example), and notes what Prism finds against the spec. */
  async function invokeFor(status: number, operationId: OperationId) {
    const result = await invoke(client, operationId, { headers: { Prefer: `code=${status}` } });
    const found = result.response.headers.get('sl-violations');
    if (found) violations.push(`${operationId}: ${found}`);
    return result;
  }

  beforeAll(async () => {
    prism = await startPrism({ mode: 'mock', spec: join(specDir, 'openapi.yaml') });
    connectionString = `endpoint=${prism.url}/;accesskey=Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=`;
    client = createCallAutomationClient(connectionString, { retry: false });
    withMiddleware = createCallAutomationClient(connectionString, {
      retry: false,
      middleware: [
        {
          // Asks the mock for one documented status; Prism answers that response's example.
          onRequest: ({ request }) => {
            if (preferCode) request.headers.set('Prefer', `code=${preferCode}`);
            return request;
          },
          // Prism lists in sl-violations whatever in the request breaks the spec.
          onResponse: ({ request, response }) => {
            const found = response.headers.get('sl-violations');
            if (found) violations.push(`${request.method} ${request.url}: ${found}`);
          },
        },
      ],
    });
  });

  afterAll(() => prism?.stop());

  it('covers every documented status of all six operations', () => {
    expect(new Set(cases.map((c) => c.operationId)).size).toBe(6);
    // createCall: 200, 400, 401, 405, 409, 412, 413, 422, 429, 500, 503; the others: 202, 400, 401, 404, 405, 413, 429, 500, 503.
    expect(cases.length).toBe(11 + 5 * 9);
  });

  it.each(cases.map((c) => [c.operationId, c.status, c] as const))('%s answers %i with the typed example', async (_op, status, c) => {
    const result = await invokeFor(status, c.operationId);
    expect(result.response.status).toBe(status);
    if (status < 300) {
      expect(result.error).toBeUndefined();
      expect(result.data).toEqual(c.example);
    } else {
      expect(result.data).toBeUndefined();
      expect(result.error).toEqual(c.example);
    }
  });

  it("answers the same through the user's middleware, which sees every request and answer", async () => {
    for (const c of cases) {
      preferCode = c.status;
      const result = await invoke(withMiddleware, c.operationId);
      expect(result.response.status, `${c.operationId} ${c.status}`).toBe(c.status);
      expect(result.data ?? result.error).toEqual(c.example);
    }
    preferCode = undefined;
  });

  it('sends nothing that Prism finds against the spec', () => {
    expect(violations).toEqual([]);
  });

  it('would have seen a violation: Prism reports a body that breaks the spec', async () => {
    const bad = { ...call, callbackUrl: 'https://x' } as unknown as typeof call;
    const result = await client.createCall(bad);
    expect(result.response.headers.get('sl-violations')).toContain("found 'callbackUrl'");
    const { response } = await createRawClient(connectionString).POST('/calls', { body: bad });
    expect(response.headers.get('sl-violations')).toContain("found 'callbackUrl'");
  });

  it("delivers createCall's callbacks, which parse as the API's events", async () => {
    preferCode = undefined;
    const received: string[] = [];
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk)).on('end', () => {
        received.push(body);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const { port } = server.address() as AddressInfo;
      const result = await invoke(client, 'createCall', undefined, `http://127.0.0.1:${port}/callbacks`);
      expect(result.response.status).toBe(200);
      const deadline = Date.now() + 10_000;
      while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(received.length).toBeGreaterThan(0);
      for (const body of received) expect(parseCallbackEvent(body).source).toMatch(/^calls\//);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });
});
