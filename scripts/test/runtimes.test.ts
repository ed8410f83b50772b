// The published packages on the runtimes their users run, each started for real: Bun and Deno run
// a program that imports the installed client and server (packed as for publication, so from
// dist, resolved by the packages' own manifests), serves the stub with the runtime's server
// (Bun.serve, Deno.serve) and signs calls against it with the client, then places a call on the
// simulator this test runs on Node; the stub's signed callbacks reach a receiver on loopback.
// workerd (through Miniflare) runs the stub bundled as a Worker, answering calls signed by the
// client on Node, and the client inside the Worker signing calls to the simulator over loopback;
// the stub's callbacks are delivered from any of its requests, and its delivery can be made at the
// Worker's top level. Every process
// binds 127.0.0.1 on a free port and is ended by its pid.
import { copyFile, readdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createCallAutomationClient } from '@call-automation/client';
import { verifyCallbackSignature } from '@call-automation/client/events';
import { runSimulator, type RunningSimulator } from '@call-automation/simulator';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './packing.ts';
import { installPublished, type InstalledProject } from './runtimes/installed.ts';
import { executable, killRunning, runToEnd } from './runtimes/processes.ts';

const fixtures = join(import.meta.dirname, 'runtimes');
/** The stub's key, as scripts/test/runtimes/stub.mjs has it. */
const stubKey = Buffer.from('a local access key of 32 bytes..').toString('base64');
const simulatorKey = Buffer.from('the simulator key, 32 bytes long').toString('base64');
/** The simulator's callback secret; the stub's is scripts/test/runtimes/stub.mjs's. */
const callbackSecret = `whsec_${Buffer.from('the simulator callback secret...').toString('base64')}`;
const stubCallbackSecret = `whsec_${Buffer.from('the callback secret, 32 bytes...').toString('base64')}`;

/** What the Bun and Deno program prints. */
interface Report {
  runtime: string;
  packageVersion: string;
  stub: Record<'created' | 'hangup' | 'again' | 'wrongKey' | 'unsigned', { status: number; error: string | null; callLegId?: string | null }>;
  simulator?: { status: number; error: string | null; callLegId: string | null };
  /** What the stub's callback delivery could not do. */
  deliveryLog: string[];
}

interface Received {
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

let project: InstalledProject;
let simulator: RunningSimulator;
let receiver: Server;
let callbackUri: string;
const received: Received[] = [];

beforeAll(async () => {
  // The callbacks of the calls the runtimes place on the simulator come here.
  receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      received.push({ body, headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  callbackUri = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/callbacks`;
  const spec = join(repoRoot, 'spec', 'openapi.yaml');
  simulator = await runSimulator({
    host: '127.0.0.1',
    port: 0,
    controlPort: 0,
    accessKey: simulatorKey,
    callbackSecret,
    allowLoopback: true,
    answerDelayMs: 50,
    files: { docs: spec, specJson: spec, specYaml: spec },
    log: () => {},
  });
  project = await installPublished('call-automation-runtimes-');
  for (const name of await readdir(fixtures)) if (name.endsWith('.mjs')) await copyFile(join(fixtures, name), join(project.dir, name));
}, 240_000);

afterAll(async () => {
  killRunning();
  await simulator?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
  await project?.remove();
});

const simulatorConnection = () => `endpoint=${simulator.url}/;accesskey=${simulatorKey}`;

/** The calls the simulator holds, asked of its control surface. */
async function simulatorCalls(): Promise<Array<{ callLegId: string; state: string }>> {
  const response = await fetch(`${simulator.controlUrl}/calls`);
  expect(response.status).toBe(200);
  return (await response.json()) as Array<{ callLegId: string; state: string }>;
}

interface Event {
  type: string;
  data: { callLegId: string; callState?: string };
}

/**
 * Waits for `count` callbacks about `callLegId`, each signature verified with `secret` by the
 * client's events module; their types and call states.
 */
async function signedCallbacksFor(callLegId: string, secret: string, count = 1): Promise<string[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const events: string[] = [];
    for (const { body, headers } of received) {
      const event = JSON.parse(body) as Event;
      if (event.data?.callLegId !== callLegId) continue;
      verifyCallbackSignature(body, headers, secret);
      events.push(`${event.type.replace(/^Microsoft\.Communication\./, '')} ${event.data.callState ?? ''}`.trim());
    }
    if (events.length >= count) return events;
    if (Date.now() > deadline) throw new Error(`${events.length} of ${count} callbacks about ${callLegId} reached ${callbackUri} in 5 s.`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The runtime's program, run to its end; its one line of JSON. */
async function runProgram(file: string, args: string[]): Promise<Report> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: project.dir,
    NO_COLOR: '1',
    DO_NOT_TRACK: '1',
    DENO_NO_UPDATE_CHECK: '1',
    // Deno's caches (its analysis of the packages' modules), kept between runs.
    DENO_DIR: join(repoRoot, 'node_modules', '.cache', 'call-automation-deno'),
  };
  const run = await runToEnd(file, [...args, simulatorConnection(), callbackUri], { cwd: project.dir, env, timeoutMs: 20_000 });
  const line = run.stdout.trim().split('\n').at(-1) ?? '';
  if (run.code !== 0 || !line.startsWith('{')) {
    throw new Error(`${file} ${args.join(' ')} exited with ${run.code ?? run.signal}.\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  }
  return JSON.parse(line) as Report;
}

/**
 * What the program saw of the stub it served: the client's signed calls answered, unsigned and
 * wrongly signed ones refused; and the stub's signed callbacks of the call reached the receiver.
 */
async function expectStubAnswers(report: Report) {
  expect(report.packageVersion).toMatch(/^\d+\.\d+\.\d+/);
  expect(report.stub.created).toEqual({ status: 200, error: null, callLegId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  expect(report.stub.hangup).toEqual({ status: 202, error: null });
  expect(report.stub.again).toEqual({ status: 404, error: 'CallNotFound' });
  expect(report.stub.wrongKey).toEqual({ status: 401, error: 'InvalidSignature' });
  expect(report.stub.unsigned).toEqual({ status: 401, error: 'MissingAuthorization' });
  expect(report.deliveryLog).toEqual([]);
  expect(await signedCallbacksFor(report.stub.created.callLegId!, stubCallbackSecret, 2)).toEqual(['CallLegStateChanged establishing', 'CallLegStateChanged terminated']);
}

/** The call the program placed on the simulator exists there, and its signed callbacks reach the receiver. */
async function expectSimulatorCall(report: Report) {
  expect(report.simulator).toEqual({ status: 200, error: null, callLegId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  const callLegId = report.simulator!.callLegId!;
  expect((await simulatorCalls()).map((call) => call.callLegId)).toContain(callLegId);
  expect((await signedCallbacksFor(callLegId, callbackSecret))[0]).toMatch(/^CallLegStateChanged /);
}

describe('Bun', () => {
  it('serves the stub with Bun.serve, signs createCall and hangupCall against it with the client, and places a call on the simulator', async () => {
    const report = await runProgram(executable('bun'), ['--no-install', 'stub-and-client.mjs']);
    expect(report.runtime).toMatch(/^bun \d/);
    await expectStubAnswers(report);
    await expectSimulatorCall(report);
  });
});

describe('Deno', () => {
  it('serves the stub with Deno.serve, signs createCall and hangupCall against it with the client, and places a call on the simulator, with no permission but the network on 127.0.0.1', async () => {
    const report = await runProgram(executable('deno'), ['run', '--node-modules-dir=manual', '--no-lock', '--allow-net=127.0.0.1', 'stub-and-client.mjs']);
    expect(report.runtime).toMatch(/^deno \d/);
    await expectStubAnswers(report);
    await expectSimulatorCall(report);
  });
});

describe('workerd (Miniflare)', () => {
  let miniflare: Miniflare;
  let workerUrl: URL;

  beforeAll(async () => {
    // Bundled as wrangler bundles a Worker: the workerd, worker and browser conditions, no Node
    // built-ins, and no nodejs_compat flag.
    const bundle = await build({
      entryPoints: [join(project.dir, 'worker.mjs')],
      absWorkingDir: project.dir,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      conditions: ['workerd', 'worker'],
      write: false,
      logLevel: 'silent',
    });
    miniflare = new Miniflare({
      modules: true,
      script: bundle.outputFiles[0]!.text,
      compatibilityDate: '2026-01-01',
      host: '127.0.0.1',
      port: 0,
      // The Worker's own fetches may reach 127.0.0.1 only (the simulator, the callback receiver).
      outboundService: { network: { allow: ['127.0.0.1/32'] } },
    });
    workerUrl = await miniflare.ready;
  }, 60_000);

  afterAll(() => miniflare?.dispose());

  /** The client on Node, sending to the Worker through Miniflare's dispatchFetch. */
  const nodeClient = (key = stubKey) =>
    // The endpoint is the Worker's own address: the stub verifies the Host the client signed.
    createCallAutomationClient(`endpoint=${workerUrl.origin}/;accesskey=${key}`, {
      retry: false,
      // The client calls its fetch as fetch(url, init), url a string.
      fetch: (url, init) => miniflare.dispatchFetch(String(url), init as never) as unknown as Promise<Response>,
    });
  const createCallBody = () => ({
    targets: [{ phoneNumber: { value: '+14251001000' } }],
    callbackUri,
    requestedModalities: ['audio' as const],
    requestedCallEvents: ['participantsUpdated' as const],
  });

  it("answers createCall and hangupCall signed by the client on Node (dispatchFetch), refuses a wrong signature, and delivers the signed callbacks of the stub's first request", async () => {
    expect((await miniflare.dispatchFetch(new URL('/__reset', workerUrl), { method: 'POST' })).status).toBe(204);
    const created = await nodeClient().createCall(createCallBody());
    expect(created.error).toBeUndefined();
    expect(created.response.status).toBe(200);
    const callLegId = created.data!.callLegId;
    expect(callLegId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await signedCallbacksFor(callLegId, stubCallbackSecret)).toEqual(['CallLegStateChanged establishing']);
    expect((await nodeClient().hangupCall(callLegId)).response.status).toBe(202);
    expect((await nodeClient().hangupCall(callLegId)).error?.code).toBe('CallNotFound');
    const wrong = await nodeClient(Buffer.from('another key of 32 bytes, not it.').toString('base64')).hangupCall(callLegId);
    expect({ status: wrong.response.status, code: wrong.error?.code }).toEqual({ status: 401, code: 'InvalidSignature' });
  });

  it("delivers the callbacks of the stub's later requests too: each attempt's abort signal is made in the request that sends it", async () => {
    // The stub's first request, then a call made in a later one, and its hangup in a third.
    expect((await miniflare.dispatchFetch(new URL('/__reset', workerUrl), { method: 'POST' })).status).toBe(204);
    expect((await nodeClient().hangupCall('4f1c2b7e-8c1d-4a7e-9c55-1e2f3a4b5c6d')).error?.code).toBe('CallNotFound');
    const created = await nodeClient().createCall(createCallBody());
    expect(created.response.status).toBe(200);
    const callLegId = created.data!.callLegId;
    expect(await signedCallbacksFor(callLegId, stubCallbackSecret)).toEqual(['CallLegStateChanged establishing']);
    expect((await nodeClient().hangupCall(callLegId)).response.status).toBe(202);
    expect(await signedCallbacksFor(callLegId, stubCallbackSecret, 2)).toEqual(['CallLegStateChanged establishing', 'CallLegStateChanged terminated']);
    expect(await (await miniflare.dispatchFetch(new URL('/__delivery-log', workerUrl))).json()).toEqual([]);
  });

  it("makes the callback delivery at a Worker's top level: nothing random is drawn until it is used", async () => {
    const response = await miniflare.dispatchFetch(new URL('/__top-level', workerUrl));
    expect(await response.json()).toEqual({ created: true });
  });

  it('runs the client inside the Worker: it signs createCall and hangupCall with Web Crypto against the simulator on loopback', async () => {
    const ask = async (body: object) => {
      const response = await fetch(new URL('/__client', workerUrl), { method: 'POST', body: JSON.stringify({ connectionString: simulatorConnection(), ...body }) });
      expect(response.status).toBe(200);
      return (await response.json()) as { status: number; error: string | null; callLegId?: string };
    };
    const created = await ask({ callbackUri });
    expect(created).toEqual({ status: 200, error: null, callLegId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect((await simulatorCalls()).map((call) => call.callLegId)).toContain(created.callLegId);
    expect((await signedCallbacksFor(created.callLegId!, callbackSecret))[0]).toMatch(/^CallLegStateChanged /);
    expect(await ask({ hangup: created.callLegId })).toEqual({ status: 202, error: null });
    expect((await simulatorCalls()).map((call) => call.callLegId)).not.toContain(created.callLegId);
  });
});
