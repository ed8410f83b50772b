/**
 * `pnpm bench` (client): the cost of one call against a stubbed fetch, in one run, for raw fetch
 * with the HMAC inline, plain openapi-fetch, this client (signing on, retries configured; also
 * with one user middleware, and its raw openapi-fetch client), and Azure's CallAutomationClient;
 * then the main entry's browser bundle against its budget.
 */
import { createHash, createHmac } from 'node:crypto';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { CallAutomationClient } from '@azure/communication-call-automation';
import { createHttpHeaders, type HttpClient } from '@azure/core-rest-pipeline';
import { build } from 'esbuild';
import createClient from 'openapi-fetch';
import { createCallAutomationClient } from '../src/index.ts';
import { createRawClient } from '../src/raw/index.ts';
import type { paths } from '@call-automation/contract';

const endpoint = 'https://contoso.communication.azure.com';
const accessKey = 'Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=';
const body = {
  targets: [{ communicationUser: { id: '8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776_00000005-4f83-d4b7-a7ac-473a0d00d0c1' } }],
  callbackUri: 'https://app.contoso.com/api/callbacks',
  requestedModalities: ['audio' as const],
  requestedCallEvents: ['participantsUpdated' as const],
};
const answer = '{"callLegId":"4f1c2b7e-8c1d-4a7e-9c55-1e2f3a4b5c6d"}';
const stubFetch = async (_input: RequestInfo | URL, _init?: RequestInit) =>
  new Response(answer, { status: 200, headers: { 'content-type': 'application/json', 'content-length': String(answer.length) } });

const encoder = new TextEncoder();
const key = await crypto.subtle.importKey('raw', Buffer.from(accessKey, 'base64'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
const b64 = (bytes: ArrayBuffer) => Buffer.from(bytes).toString('base64');

/** What a careful hand-written call does: serialise, hash, sign with Web Crypto, fetch, parse. */
async function rawFetchWebCrypto() {
  const json = JSON.stringify(body);
  const date = new Date().toUTCString();
  const hash = b64(await crypto.subtle.digest('SHA-256', encoder.encode(json)));
  const signature = b64(await crypto.subtle.sign('HMAC', key, encoder.encode(`POST\n/calls\n${date};contoso.communication.azure.com;${hash}`)));
  const response = await stubFetch(`${endpoint}/calls`, {
    method: 'POST',
    body: json,
    headers: {
      'content-type': 'application/json',
      'x-ms-date': date,
      'x-ms-content-sha256': hash,
      authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${signature}`,
    },
  });
  return response.json();
}

/** The same with node:crypto, which only Node has. */
const rawKey = Buffer.from(accessKey, 'base64');
async function rawFetchNodeCrypto() {
  const json = JSON.stringify(body);
  const date = new Date().toUTCString();
  const hash = createHash('sha256').update(json).digest('base64');
  const signature = createHmac('sha256', rawKey).update(`POST\n/calls\n${date};contoso.communication.azure.com;${hash}`).digest('base64');
  const response = await stubFetch(`${endpoint}/calls`, {
    method: 'POST',
    body: json,
    headers: {
      'content-type': 'application/json',
      'x-ms-date': date,
      'x-ms-content-sha256': hash,
      authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${signature}`,
    },
  });
  return response.json();
}

const plain = createClient<paths>({ baseUrl: endpoint, fetch: (request: Request) => stubFetch(request) });
const ours = createCallAutomationClient(`endpoint=${endpoint}/;accesskey=${accessKey}`, { fetch: stubFetch, retry: { maxRetries: 3 } });
// The same with one middleware of the user's, which makes each call build a Request for it.
const withMiddleware = createCallAutomationClient(`endpoint=${endpoint}/;accesskey=${accessKey}`, {
  fetch: stubFetch,
  retry: { maxRetries: 3 },
  middleware: [{ onRequest: ({ request }) => (request.headers.set('x-trace-id', 't'), request) }],
});

// The raw openapi-fetch client, on the same request path.
const rawClient = createRawClient(`endpoint=${endpoint}/;accesskey=${accessKey}`, { fetch: stubFetch, retry: { maxRetries: 3 } });

// Azure's client answers the GA API's createCall; its transport is stubbed the same way.
const azureAnswer = JSON.stringify({ callConnectionId: '4f1c2b7e-8c1d-4a7e-9c55-1e2f3a4b5c6d', serverCallId: 'x', callConnectionState: 'connecting', callbackUri: body.callbackUri, targets: [] });
const httpClient: HttpClient = {
  sendRequest: async (request) => ({ request, status: 201, headers: createHttpHeaders({ 'content-type': 'application/json' }), bodyAsText: azureAnswer }),
};
const azure = new CallAutomationClient(`endpoint=${endpoint}/;accesskey=${accessKey}`, { httpClient, retryOptions: { maxRetries: 3 } });

const variants: Array<[string, () => Promise<unknown>]> = [
  ['raw fetch + inline HMAC (Web Crypto)', rawFetchWebCrypto],
  ['raw fetch + inline HMAC (node:crypto)', rawFetchNodeCrypto],
  ['openapi-fetch, no auth', () => plain.POST('/calls', { body })],
  ['@call-automation/client (HMAC, retries)', () => ours.createCall(body)],
  ['the same with a user middleware', () => withMiddleware.createCall(body)],
  ['@call-automation/client/raw (HMAC, retries)', () => rawClient.POST('/calls', { body })],
  ["Azure's CallAutomationClient.createCall", () => azure.createCall({ targetParticipant: { communicationUserId: body.targets[0]!.communicationUser.id } }, body.callbackUri)],
];

// Interleaved rounds: each round runs every variant for a batch of sequential calls, starting
// with a different one each time; the median round is reported, which this noisy, shared
// 2-core machine needs (a single long run per variant drifts with what else is running).
const rounds = Number(process.env.BENCH_ROUNDS ?? 9);
const calls = Number(process.env.BENCH_CALLS ?? 5000);
const perCall: Record<string, number[]> = {};
for (const [, run] of variants) for (let i = 0; i < 500; i++) await run(); // warm-up
for (let round = 0; round < rounds; round++) {
  for (let k = 0; k < variants.length; k++) {
    const [name, run] = variants[(k + round) % variants.length]!;
    const started = performance.now();
    for (let i = 0; i < calls; i++) await run();
    (perCall[name] ??= []).push(((performance.now() - started) * 1000) / calls);
  }
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const us = (name: string) => median(perCall[name]!);

console.log(`Per call against a stubbed fetch (Node ${process.version}), median of ${rounds} interleaved rounds of ${calls} calls:`);
console.table(variants.map(([name]) => ({ name, 'µs/call': us(name).toFixed(1), 'calls/s': Math.round(1e6 / us(name)) })));
const client = us('@call-automation/client (HMAC, retries)');
const raw = us('raw fetch + inline HMAC (node:crypto)');
const azureUs = us("Azure's CallAutomationClient.createCall");
console.log(`client / raw fetch + inline HMAC (node:crypto): ${(client / raw).toFixed(2)}×  (target ≤ 2×)`);
console.log(`client / raw fetch + inline HMAC (Web Crypto): ${(client / us('raw fetch + inline HMAC (Web Crypto)')).toFixed(2)}×`);
console.log(`client / openapi-fetch without auth: ${(client / us('openapi-fetch, no auth')).toFixed(2)}×`);
console.log(`Azure / client: ${(azureUs / client).toFixed(2)}×  (target ≥ 2×)`);
console.log(`raw client / named method: ${(us('@call-automation/client/raw (HMAC, retries)') / client).toFixed(2)}×`);
console.log(`a user middleware adds ${(us('the same with a user middleware') - client).toFixed(1)} µs a call (it needs a Request)`);

// The sources read the version from package.json; the published build carries it alone
// (dist/version.js): the bundle measured is the one users get.
const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string };
const bundled = await build({
  entryPoints: [join(import.meta.dirname, '..', 'src', 'index.ts')],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  write: false,
  plugins: [
    {
      name: 'version-as-built',
      setup(b) {
        b.onLoad({ filter: /[\\/]src[\\/]version\.ts$/ }, () => ({ contents: `export const packageVersion = ${JSON.stringify(version)};`, loader: 'ts' }));
      },
    },
  ],
});
const gzipped = gzipSync(bundled.outputFiles[0]!.contents, { level: 9 }).length;
console.log(`main entry for browsers, minified + gzip: ${(gzipped / 1024).toFixed(2)} kB (budget 4.50 kB: ${gzipped <= 4608 ? 'within' : 'OVER'})`);
