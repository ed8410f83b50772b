// The published packages through a registry, as a user gets them: packed as for publication,
// published to a local Verdaccio, installed with npm into a project outside the workspace (the
// @call-automation scope from Verdaccio, everything else from the usual registry), then used by
// plain Node, by a strict TypeScript consumer and through the conformance suite's installed CLI;
// and the server README's service, compiled as the README gives it against the installed packages,
// passes the installed CLI's full suite, as scripts/test/readme-conformance.test.ts has it pass in
// the workspace.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { allChecks } from '@call-automation/conformance';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packPublished, publishedPackages, repoRoot, type Packed } from './packing.ts';
import { freePort, readmeCredentials, readmeRedisCode, readmeServiceCode, readmeSkips, startReadmeService, stop } from './readme-service.ts';
import { startRedis, stopAll } from '../../packages/server/test/redis-server.ts';

const execFileAsync = promisify(execFile);

/** The environment of the npm a user runs: none of the npm_* settings pnpm passes to its scripts. */
const userEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key))) as NodeJS.ProcessEnv;

const npm = (args: string[], cwd: string) => execFileAsync('npm', args, { cwd, env: userEnv, maxBuffer: 16 * 1024 * 1024 });

/** The workspace's TypeScript (the same ~5.9 a user would install), run in the installed project. */
const tsc = (args: string[], cwd: string) =>
  execFileAsync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), ...args], { cwd }).catch((error: { stdout: string }) => ({ stdout: error.stdout, failed: true }));

/** The options of a strict NodeNext project, as the consumer's and the README service's tsconfig have them. */
const strictNodeNext = { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, types: ['node'] };

const verdaccioConfig = (storage: string) => `storage: ${JSON.stringify(storage)}
auth:
  htpasswd:
    file: ${JSON.stringify(join(storage, 'htpasswd'))}
    max_users: -1
uplinks: {}
packages:
  '@call-automation/*':
    access: $all
    publish: $anonymous
  '**':
    access: $all
server:
  keepAliveTimeout: 5
log: { type: stdout, format: json, level: warn }
`;

/** The user's program: a server stub with handlers, served on a free port, and the client against it. */
const program = `import { randomUUID } from 'node:crypto';
import { ApiError, createCallAutomationService } from '@call-automation/server';
import { serveApp } from '@call-automation/server/node';
import { createCallAutomationClient, packageVersion } from '@call-automation/client';
import { parseCallbackEvent } from '@call-automation/client/events';

const accessKey = Buffer.from('a local access key of 32 bytes..').toString('base64');
const calls = new Set();
const known = (callId) => {
  if (!calls.has(callId)) throw new ApiError(404, 'CallNotFound', \`No call with id \${callId}.\`, { target: 'callId' });
};
const seen = [];
const service = createCallAutomationService({
  auth: { accessKeys: [accessKey] },
  handlers: {
    createCall: ({ body }) => {
      const callLegId = randomUUID();
      calls.add(callLegId);
      seen.push(\`createCall \${body.targets[0].phoneNumber?.value ?? 'another target'}\`);
      return { status: 200, body: { callLegId } };
    },
    hangupCall: ({ params }) => {
      known(params.callId);
      calls.delete(params.callId);
      seen.push('hangupCall');
      return { status: 202 };
    },
    playAudio: ({ params }) => (known(params.callId), { status: 202, body: { id: randomUUID(), status: 'running' } }),
    cancelMediaProcessing: ({ params }) => (known(params.callId), { status: 202, body: { id: randomUUID(), status: 'completed' } }),
    inviteParticipants: ({ params }) => (known(params.callId), { status: 202 }),
    removeParticipant: ({ params }) => (known(params.callId), { status: 404, body: { code: 'ParticipantNotFound', message: 'No such participant.' } }),
  },
});
const server = await serveApp(service, { host: '127.0.0.1', port: 0 });
const connectionString = \`endpoint=\${server.url}/;accesskey=\${accessKey}\`;

const client = createCallAutomationClient(connectionString);
const created = await client.createCall({
  targets: [{ phoneNumber: { value: '+14251001000' } }],
  callbackUri: 'https://app.example.com/callbacks',
  requestedModalities: ['audio'],
  requestedCallEvents: ['participantsUpdated'],
});
if (created.error) throw new Error(\`createCall: \${created.error.code}\`);
const hungUp = await client.hangupCall(created.data.callLegId);
const again = await client.hangupCall(created.data.callLegId);
const unsigned = await fetch(\`\${server.url}/calls\`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
const event = parseCallbackEvent(JSON.stringify({
  specversion: '1.0',
  id: 'evt_1',
  source: \`calls/\${created.data.callLegId}\`,
  type: 'Microsoft.Communication.CallLegStateChanged',
  time: new Date().toISOString(),
  datacontenttype: 'application/json',
  data: { callLegId: created.data.callLegId, callState: 'terminated' },
}));
console.log(JSON.stringify({
  url: server.url,
  connectionString,
  packageVersion,
  callLegId: created.data.callLegId,
  createdStatus: created.response.status,
  hangup: { error: hungUp.error ?? null, status: hungUp.response.status },
  again: { code: again.error?.code, status: again.response.status },
  unsigned: unsigned.status,
  event: { type: event.type, callState: event.data.callState },
  seen,
}));
process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
`;

/**
 * The user's program on Redis: two instances of the stub in one process (each its own connection
 * and port) with the Redis stores, their handlers keeping calls in Redis too, a receiver on
 * loopback that verifies each callback; the client makes a call on one and hangs it up on the other.
 */
const redisProgram = `import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { Redis } from 'ioredis';
import { ApiError, createCallAutomationService, createCallbackDelivery, createUriGuard } from '@call-automation/server';
import { serveApp } from '@call-automation/server/node';
import {
  batchWrites, createRedisCallbackQueue, createRedisCallbackRegistry, createRedisDeadLetterStore,
  createRedisGoneUriStore, createRedisIdempotencyStore,
} from '@call-automation/server/redis';
import { createCallAutomationClient } from '@call-automation/client';
import { parseCallbackEvent, verifyCallbackSignature } from '@call-automation/client/events';

const accessKey = Buffer.from('a local access key of 32 bytes..').toString('base64');
const secret = \`whsec_\${Buffer.from('a local callback secret, 32 bytes').toString('base64')}\`;
const received = [];
const receiver = createServer((request, response) => {
  let body = '';
  request.on('data', (chunk) => (body += chunk));
  request.on('end', () => {
    verifyCallbackSignature(body, request.headers, secret);
    const event = parseCallbackEvent(body);
    received.push({ id: request.headers['webhook-id'], callState: event.data.callState });
    response.writeHead(204).end();
  });
});
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const callbackUri = \`http://127.0.0.1:\${receiver.address().port}/cb\`;

async function instance() {
  const redis = batchWrites(new Redis(process.env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true }));
  await redis.connect();
  const known = async (callId) => {
    if (!(await redis.exists(\`app:call:\${callId}\`))) throw new ApiError(404, 'CallNotFound', \`No call with id \${callId}.\`, { target: 'callId' });
  };
  const guard = createUriGuard({ allowLoopback: true });
  const callbacks = createCallbackDelivery({
    secret,
    guard,
    queue: createRedisCallbackQueue(redis),
    registry: createRedisCallbackRegistry(redis),
    deadLetters: createRedisDeadLetterStore(redis),
    gone: createRedisGoneUriStore(redis),
  });
  const service = createCallAutomationService({
    auth: { accessKeys: [accessKey] },
    idempotency: createRedisIdempotencyStore(redis),
    callbacks,
    checkUri: async (uri, field) => void (await guard.check(uri, field)),
    handlers: {
      createCall: async ({ body }, { events }) => {
        const callLegId = randomUUID();
        await redis.set(\`app:call:\${callLegId}\`, '1');
        events.register(callLegId, body.callbackUri);
        for (const callState of ['establishing', 'established']) events.emit(callLegId, 'CallLegStateChanged', { callLegId, callState });
        return { status: 200, body: { callLegId } };
      },
      hangupCall: async ({ params: { callId } }, { events }) => {
        await known(callId);
        await redis.del(\`app:call:\${callId}\`);
        for (const callState of ['terminating', 'terminated']) events.emit(callId, 'CallLegStateChanged', { callLegId: callId, callState });
        events.unregister?.(callId);
        return { status: 202 };
      },
      playAudio: async ({ params }) => (await known(params.callId), { status: 202, body: { id: randomUUID(), status: 'running' } }),
      cancelMediaProcessing: async ({ params }) => (await known(params.callId), { status: 202, body: { id: randomUUID(), status: 'completed' } }),
      inviteParticipants: async ({ params }) => (await known(params.callId), { status: 202 }),
      removeParticipant: async ({ params }) => (await known(params.callId), { status: 404, body: { code: 'ParticipantNotFound', message: 'No such participant.' } }),
    },
  });
  const server = await serveApp(service, { host: '127.0.0.1', port: 0 });
  return { server, callbacks, redis, client: createCallAutomationClient(\`endpoint=\${server.url}/;accesskey=\${accessKey}\`) };
}

const [a, b] = [await instance(), await instance()];
const request = { targets: [{ phoneNumber: { value: '+14251001000' } }], callbackUri, requestedModalities: ['audio'], requestedCallEvents: [] };
// One createCall sent to each instance, as a retry through a load balancer would be.
const repeatability = { 'repeatability-request-id': randomUUID(), 'repeatability-first-sent': new Date().toUTCString() };
const created = await a.client.createCall(request, { headers: repeatability });
const repeated = await b.client.createCall(request, { headers: repeatability });
const hungUp = await b.client.hangupCall(created.data.callLegId);
const again = await a.client.hangupCall(created.data.callLegId);
for (const deadline = Date.now() + 20_000; received.length < 4 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 50));
const deadLetters = [...(await a.callbacks.deadLetters()), ...(await b.callbacks.deadLetters())];
console.log(JSON.stringify({
  created: { status: created.response.status, callLegId: created.data.callLegId },
  repeated: { status: repeated.response.status, callLegId: repeated.data?.callLegId, result: repeated.response.headers.get('repeatability-result') },
  hangup: hungUp.response.status,
  again: { status: again.response.status, code: again.error?.code },
  received,
  deadLetters: deadLetters.length,
}));
for (const { server, callbacks, redis } of [a, b]) {
  await server.close();
  await callbacks.close(1_000);
  await redis.quit();
}
receiver.close();
`;

/** A consumer's code, checked by a strict tsc against the installed packages' declarations. */
const consumer = `import { createCallAutomationClient, type CallAutomationClient, type OperationResult } from '@call-automation/client';
import { parseCallbackEvent, type EventOf } from '@call-automation/client/events';
import { createCallAutomationService, type CallAutomationHandlers, type HandlerReply } from '@call-automation/server';
import { serveApp } from '@call-automation/server/node';
import { runChecks, type CheckResult } from '@call-automation/conformance';
import { operationTable } from '@call-automation/contract';

const created: HandlerReply<'createCall'> = { status: 200, body: { callLegId: 'c1' } };
// @ts-expect-error 201 is no status of createCall
const wrongStatus: HandlerReply<'createCall'> = { status: 201, body: { callLegId: 'c1' } };
// @ts-expect-error a reply of createCall has a callLegId
const wrongBody: HandlerReply<'createCall'> = { status: 200, body: {} };

const handlers: CallAutomationHandlers = {
  createCall: ({ body }) => (body.callbackUri.length > 0 ? created : { status: 400, body: { code: 'BadRequest', message: 'no callbackUri' } }),
  hangupCall: () => ({ status: 202 }),
  playAudio: () => ({ status: 202, body: { id: 'p1', status: 'running' } }),
  cancelMediaProcessing: () => ({ status: 202, body: { id: 'c1', status: 'completed' } }),
  inviteParticipants: () => ({ status: 202 }),
  removeParticipant: () => ({ status: 202 }),
};

export async function main(): Promise<string> {
  const server = await serveApp(createCallAutomationService({ handlers, auth: { accessKeys: ['a2V5'] } }), { port: 0 });
  const client: CallAutomationClient = createCallAutomationClient(\`endpoint=\${server.url}/;accesskey=a2V5\`);
  const result: OperationResult<'createCall'> = await client.createCall({
    targets: [{ phoneNumber: { value: '+14251001000' } }],
    callbackUri: 'https://app.example.com/callbacks',
    requestedModalities: ['audio'],
    requestedCallEvents: ['participantsUpdated'],
  });
  // @ts-expect-error createCall needs its targets
  void client.createCall({ callbackUri: 'https://app.example.com/callbacks', requestedModalities: ['audio'], requestedCallEvents: [] });
  const callLegId: string = result.error ? result.error.code : result.data.callLegId;
  const hangup = await client.hangupCall(callLegId);
  const event = parseCallbackEvent('{}');
  if (event.type === 'Microsoft.Communication.CallLegStateChanged') {
    const changed: EventOf<'CallLegStateChanged'> = event;
    const state: string = changed.data.callState;
    void state;
  }
  const checks: CheckResult[] = await runChecks({ baseUrl: server.url, accessKey: 'a2V5', seed: 1, only: ['auth.*'] });
  await server.close();
  return \`\${callLegId} \${hangup.response.status} \${checks.length} \${Object.keys(operationTable).length}\`;
}
void wrongStatus;
void wrongBody;
`;

describe('the packages from a registry', () => {
  let work: string;
  let verdaccio: ChildProcess | undefined;
  let app: ChildProcess | undefined;
  let readmeService: ChildProcess | undefined;
  let registry: string;
  let packed: Packed[];
  const started = Date.now();

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'call-automation-registry-'));
    const storage = join(work, 'storage');
    await mkdir(storage);
    await writeFile(join(work, 'verdaccio.yaml'), verdaccioConfig(storage));
    const port = await freePort();
    registry = `http://127.0.0.1:${port}/`;
    verdaccio = spawn(process.execPath, [join(repoRoot, 'node_modules', 'verdaccio', 'bin', 'verdaccio'), '--config', join(work, 'verdaccio.yaml'), '--listen', `127.0.0.1:${port}`], {
      cwd: work,
      env: userEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    verdaccio.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    verdaccio.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    [packed] = await Promise.all([
      packPublished(),
      (async () => {
        for (const deadline = Date.now() + 30_000; ; ) {
          if (verdaccio!.exitCode !== null) throw new Error(`Verdaccio exited: ${log}`);
          const ok = await fetch(`${registry}-/ping`).then((r) => r.ok, () => false);
          if (ok) return;
          if (Date.now() > deadline) throw new Error(`Verdaccio did not answer within 30 s: ${log}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })(),
    ]);
    const publishing = Date.now();
    for (const { tarball } of packed) {
      await npm(['publish', tarball, '--registry', registry, `--//127.0.0.1:${port}/:_authToken=x`, '--access', 'public', '--tag', 'latest'], work);
    }

    const installing = Date.now();
    const project = join(work, 'project');
    await mkdir(project);
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'call-automation-user', version: '1.0.0', private: true, type: 'module' }, null, 2));
    await npm(
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        `--@call-automation:registry=${registry}`,
        ...publishedPackages.map((p) => p.name),
        'hono@^4.13.19',
        // The optional peer of @call-automation/server/redis, which the README's setup on Redis uses.
        'ioredis@^6.0.0',
        '@types/node@^20.19.0',
      ],
      project,
    );
    console.log(`packed in ${((publishing - started) / 1000).toFixed(1)} s, published in ${((installing - publishing) / 1000).toFixed(1)} s, installed in ${((Date.now() - installing) / 1000).toFixed(1)} s`);
  }, 240_000);

  afterAll(async () => {
    await stop(app);
    await stop(readmeService);
    await stop(verdaccio);
    if (work) await rm(work, { recursive: true, force: true });
    console.log(`registry round trip: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  const project = () => join(work, 'project');

  it('installs the four packages from the registry, with the third-party ones, and without Prism, which the harness asks for when started', async () => {
    const lock = JSON.parse(await readFile(join(project(), 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; integrity?: string }> };
    // Each package installed is the tarball packed here and published to Verdaccio, byte for byte.
    for (const { name, tarball } of packed) {
      const integrity = `sha512-${createHash('sha512').update(await readFile(tarball)).digest('base64')}`;
      expect(lock.packages[`node_modules/${name}`]?.integrity).toBe(integrity);
    }
    // Their third-party dependencies came from the usual registry (Verdaccio has no uplink).
    const installed = Object.keys(lock.packages);
    expect(lock.packages['node_modules/ajv']?.version).toMatch(/^8\./);
    expect(installed).toEqual(expect.arrayContaining(['node_modules/openapi-fetch', 'node_modules/standardwebhooks', 'node_modules/@hono/node-server', 'node_modules/json-schema-faker']));
    expect(installed.filter((p) => p.includes('@stoplight/prism-cli'))).toEqual([]);
    expect(installed.filter((p) => /(^|\/)(tsx|vitest|typescript)$/.test(p))).toEqual([]);
    // Without Prism the harness loads, its receiver works, and startPrism says what to install.
    const script = `import { freePort, startPrism } from '@call-automation/conformance/harness';
      console.log(await freePort());
      await startPrism({ mode: 'mock', spec: 'openapi.json' }).catch((error) => console.log(error.message));`;
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], { cwd: project(), env: userEnv });
    const [port, message] = stdout.trim().split('\n');
    expect(Number(port)).toBeGreaterThan(0);
    expect(message).toContain('npm install -D @stoplight/prism-cli');
  });

  it('runs a plain Node program: a served stub, a signed createCall and hangupCall, a parsed event; then the installed conformance CLI against it', async () => {
    await writeFile(join(project(), 'app.mjs'), program);
    app = spawn(process.execPath, ['app.mjs'], { cwd: project(), env: userEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    app.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const line = await new Promise<string>((resolve, reject) => {
      const lines = createInterface({ input: app!.stdout! });
      lines.once('line', resolve);
      app!.once('exit', (code) => reject(new Error(`the program exited with ${code}: ${stderr}`)));
    });
    const result = JSON.parse(line) as {
      url: string;
      connectionString: string;
      packageVersion: string;
      callLegId: string;
      createdStatus: number;
      hangup: { error: unknown; status: number };
      again: { code: string; status: number };
      unsigned: number;
      event: { type: string; callState: string };
      seen: string[];
    };
    expect(result.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(result.createdStatus).toBe(200);
    expect(result.callLegId).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.hangup).toEqual({ error: null, status: 202 });
    expect(result.again).toEqual({ code: 'CallNotFound', status: 404 });
    expect(result.unsigned).toBe(401);
    expect(result.seen).toEqual(['createCall +14251001000', 'hangupCall']);
    expect(result.event).toEqual({ type: 'Microsoft.Communication.CallLegStateChanged', callState: 'terminated' });
    const { version } = JSON.parse(await readFile(join(project(), 'node_modules', '@call-automation', 'client', 'package.json'), 'utf8')) as { version: string };
    expect(result.packageVersion).toBe(version);

    const reports = join(work, 'conformance-report');
    const cli = await execFileAsync(
      'npx',
      ['--no-install', 'call-automation-conformance', '--base-url', result.url, '--connection-string', result.connectionString, '--only', 'auth.*', '--report-dir', reports],
      { cwd: project(), env: userEnv, maxBuffer: 16 * 1024 * 1024 },
    ).catch((error: { code: number; stdout: string; stderr: string }) => ({ ...error, failed: true }));
    expect(cli, `${cli.stdout}\n${cli.stderr}`).not.toHaveProperty('failed');
    const report = JSON.parse(await readFile(join(reports, 'conformance.json'), 'utf8')) as { results?: Array<{ id: string; status: string }> } | Array<{ id: string; status: string }>;
    const results = Array.isArray(report) ? report : report.results!;
    const ran = results.filter((r) => r.status !== 'skipped');
    expect(ran.length).toBeGreaterThanOrEqual(4);
    expect(ran.every((r) => r.id.startsWith('auth.') && r.status === 'passed')).toBe(true);
    await stop(app);
  }, 120_000);

  it('runs two instances of the installed stub on one redis-server: a createCall repeated on the other answered alike, hung up on the other, its events delivered once each, in order, signed', async () => {
    const redis = await startRedis();
    try {
      await writeFile(join(project(), 'redis-app.mjs'), redisProgram);
      const ran = await execFileAsync(process.execPath, ['redis-app.mjs'], { cwd: project(), env: { ...userEnv, REDIS_URL: `redis://127.0.0.1:${redis.port}` }, timeout: 60_000 });
      const result = JSON.parse(ran.stdout.trim().split('\n').at(-1)!) as {
        created: { status: number; callLegId: string };
        repeated: { status: number; callLegId?: string; result: string | null };
        hangup: number;
        again: { status: number; code?: string };
        received: Array<{ id: string; callState: string }>;
        deadLetters: number;
      };
      expect(result.created.status).toBe(200);
      expect(result.repeated).toEqual({ status: 200, callLegId: result.created.callLegId, result: 'accepted' });
      expect(result.hangup).toBe(202);
      expect(result.again).toEqual({ status: 404, code: 'CallNotFound' });
      expect(result.received.map((r) => r.callState)).toEqual(['establishing', 'established', 'terminating', 'terminated']);
      expect(new Set(result.received.map((r) => r.id)).size).toBe(4);
      expect(result.deadLetters).toBe(0);
    } finally {
      await stopAll();
    }
  }, 90_000);

  // This check and the next run side by side: each is mostly a tsc of its own, or waiting on the CLI.
  it.concurrent("type-checks a consumer's code with strict, NodeNext and the packages' declarations checked", async ({ expect }) => {
    await writeFile(join(project(), 'consumer.ts'), consumer);
    // The server README's setup on Redis too, as written: the ./redis entry point's declarations and ioredis's.
    await writeFile(join(project(), 'readme-redis.ts'), `export {};\n${await readmeRedisCode()}`);
    await writeFile(join(project(), 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...strictNodeNext, lib: ['ES2023', 'DOM'], noEmit: true }, files: ['consumer.ts', 'readme-redis.ts'] }));
    const checked = await tsc(['-p', 'tsconfig.json'], project());
    expect(checked.stdout).toBe('');
    expect(checked).not.toHaveProperty('failed');
    // A minute or so on a busy machine, beside the README's service.
  }, 120_000);

  it.concurrent("serves the server README's service as the README gives it, and the installed conformance CLI's full suite passes against it", async ({ expect }) => {
    // The README's block is TypeScript: compiled here, against the installed packages' types
    // (strict, a Node program's lib: no DOM; the declarations themselves are checked by the
    // consumer's check, so skipLibCheck as most projects have it), to the JavaScript node runs. Its
    // imports stay as written, resolved from the project's node_modules; readmeServiceCode swaps
    // only what readme-conformance.test.ts has swapped too: 127.0.0.1 and a free port for
    // 0.0.0.0:8080, and a URI guard that allows loopback, where the CLI's callback receiver listens.
    await writeFile(join(project(), 'readme-service.ts'), await readmeServiceCode());
    await writeFile(
      join(project(), 'tsconfig.readme-service.json'),
      JSON.stringify({ compilerOptions: { ...strictNodeNext, skipLibCheck: true, lib: ['ES2023'], outDir: 'readme-service' }, files: ['readme-service.ts'] }),
    );
    const compiled = await tsc(['-p', 'tsconfig.readme-service.json'], project());
    expect(compiled.stdout).toBe('');
    expect(compiled).not.toHaveProperty('failed');

    const service = await startReadmeService(process.execPath, [join('readme-service', 'readme-service.js')], { cwd: project(), env: userEnv });
    readmeService = service.child;
    expect(service.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // The installed bin, with everything the README's service was given: its access key, its
    // callback secret (every callback's signature verified), the seed readme-conformance uses.
    const reports = join(work, 'readme-conformance-report');
    const cli = await execFileAsync(
      'npx',
      [
        '--no-install',
        'call-automation-conformance',
        '--base-url',
        service.url,
        '--connection-string',
        `endpoint=${service.url}/;accesskey=${readmeCredentials.accessKey}`,
        '--callback-secret',
        readmeCredentials.callbackSecret,
        '--seed',
        '20261201',
        '--report-dir',
        reports,
      ],
      { cwd: project(), env: userEnv, maxBuffer: 16 * 1024 * 1024 },
    ).catch((error: { code: number; stdout: string; stderr: string }) => ({ ...error, failed: true }));
    await stop(readmeService);
    expect(cli, `${cli.stdout}\n${cli.stderr}`).not.toHaveProperty('failed');
    expect(cli.stdout).toContain(', signatures verified');
    const { results } = JSON.parse(await readFile(join(reports, 'conformance.json'), 'utf8')) as { results: Array<{ id: string; status: string; message?: string }> };
    // The full suite, the installed package's checks being the workspace's.
    expect(results.map((r) => r.id)).toEqual(allChecks.map((c) => c.id));
    expect(results.filter((r) => r.status === 'failed').map((r) => `${r.id}: ${r.message}`)).toEqual([]);
    // A skip is not a pass: exactly those readmeSkips names and explains (a replay refusal the
    // README does not ask for; DTMF, which needs a control surface), each saying what it needs.
    const skipped = results.filter((r) => r.status === 'skipped');
    expect(skipped.map((r) => r.id).sort()).toEqual(Object.keys(readmeSkips).sort());
    for (const result of skipped) expect(`${result.id}: ${result.message}`).toMatch(readmeSkips[result.id]!.needs);
    expect(results.filter((r) => r.status === 'passed')).toHaveLength(allChecks.length - skipped.length);
  }, 120_000);
});
