// A spec change flows through everything with no hand edit: an operation and a webhook added to
// a scratch copy of the spec, then `pnpm generate`, give a client method, a handler that must be
// written, a route with its validators, a parsed and typed event, an operation the conformance
// suite knows, and a page of the docs; and `pnpm generate --check` notices a stale file.
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDocs } from '../lib/docs.ts';
import { findStale, generateAll, writeGenerated } from '../lib/generate.ts';
import { binDir, repoRoot } from '../lib/paths.ts';

const run = promisify(execFile);

/** The workspace packages the scratch copy holds, by name, with their folders. */
const packages: Record<string, string> = {
  '@call-automation/contract': 'packages/contract',
  '@call-automation/client': 'packages/client',
  '@call-automation/server': 'packages/server',
  '@call-automation/conformance': 'conformance',
};

const specFiles: Record<string, string> = {
  'paths/calls_{callId}_Mute.yaml': `parameters:
  - $ref: ../components/parameters/CallId.yaml
post:
  operationId: muteParticipants
  tags:
    - Participants
  summary: Mute everyone in a call
  description: |
    Mutes, or unmutes, every participant of the call at once. A MuteChanged event reports it
    when it has taken effect.
  requestBody:
    required: true
    content:
      application/json:
        schema:
          $ref: ../components/schemas/MuteRequest.yaml
  responses:
    '202':
      description: The change was accepted; MuteChanged reports it.
    '400':
      $ref: ../components/responses/BadRequest.yaml
    '401':
      $ref: ../components/responses/Unauthorized.yaml
    '404':
      $ref: ../components/responses/NotFound.yaml
    '405':
      $ref: ../components/responses/MethodNotAllowed.yaml
    '413':
      $ref: ../components/responses/PayloadTooLarge.yaml
    '429':
      $ref: ../components/responses/TooManyRequests.yaml
    '500':
      $ref: ../components/responses/InternalServerError.yaml
    '503':
      $ref: ../components/responses/ServiceUnavailable.yaml
`,
  'components/schemas/MuteRequest.yaml': `type: object
required:
  - mute
properties:
  mute:
    type: boolean
  operationContext:
    type: string
    maxLength: 128
additionalProperties: false
`,
  'components/schemas/MuteChangedEventData.yaml': `type: object
required:
  - callLegId
  - muted
properties:
  callLegId:
    $ref: ./CallLegId.yaml
  muted:
    type: boolean
`,
  'components/schemas/MuteChangedEvent.yaml': `title: MuteChangedEvent
allOf:
  - $ref: ./CloudEvent.yaml
  - type: object
    required:
      - type
      - data
    properties:
      type:
        type: string
        const: Microsoft.Communication.MuteChanged
      data:
        $ref: ./MuteChangedEventData.yaml
`,
  'webhooks/MuteChanged.yaml': `post:
  operationId: muteChangedEvent
  tags:
    - Callback events
  summary: The call was muted or unmuted
  description: Sent when a muteParticipants request has taken effect.
  security: []
  parameters:
    - $ref: ../components/parameters/WebhookId.yaml
    - $ref: ../components/parameters/WebhookTimestamp.yaml
    - $ref: ../components/parameters/WebhookSignature.yaml
  requestBody:
    required: true
    content:
      application/cloudevents+json:
        schema:
          $ref: ../components/schemas/MuteChangedEvent.yaml
  responses:
    '204':
      $ref: ../components/responses/CallbackReceived.yaml
`,
};

/** A program that uses what the new operation and event should have brought, type-checked strictly. */
const typedUse = `import { createCallAutomationClient } from '@call-automation/client';
import { parseCallbackEvent, type EventOf } from '@call-automation/client/events';
import type { CallAutomationHandlers, CallbackEmitter } from '@call-automation/server';

declare const handlers: CallAutomationHandlers;
declare const events: CallbackEmitter;

export async function use() {
  const client = createCallAutomationClient('endpoint=http://127.0.0.1:1/;accesskey=a2V5');
  const result = await client.muteParticipants('leg', { mute: true, operationContext: 'ctx' });
  if (result.error) result.error.code satisfies string;
  // @ts-expect-error mute is a boolean
  await client.muteParticipants('leg', { mute: 'yes' });
  const reply = await handlers.muteParticipants({ params: { callId: 'leg' }, body: { mute: false }, headers: {} }, undefined as never);
  reply.status satisfies 202 | 400 | 401 | 404 | 405 | 413 | 429 | 500 | 503;
  events.emit('leg', 'MuteChanged', { callLegId: 'leg', muted: true });
  // @ts-expect-error MuteChanged's data says whether the call is muted
  events.emit('leg', 'MuteChanged', { callLegId: 'leg' });
  const event = parseCallbackEvent('{}');
  if (event.type === 'Microsoft.Communication.MuteChanged') event.data.muted satisfies boolean;
  const typed: EventOf<'MuteChanged'>['data']['muted'] = true;
  return typed;
}

// @ts-expect-error a handler set without muteParticipants is incomplete
export const incomplete: CallAutomationHandlers = { ...({} as Omit<CallAutomationHandlers, 'muteParticipants'>) };
`;

/** The same, run: a service with the new handler, the client calling it, the event parsed and handled. */
const runtimeUse = `import { createCallAutomationClient } from '@call-automation/client';
import { createCallbackHandler, parseCallbackEvent } from '@call-automation/client/events';
import { Contract } from '@call-automation/conformance';
import { createCallAutomationService, operationTable, type CallAutomationHandlers } from '@call-automation/server';
import { serveApp } from '@call-automation/server/node';
import { Webhook } from 'standardwebhooks';

const accessKey = Buffer.from('flow-test-access-key-0000000001').toString('base64');
const calls = new Set<string>();
const muted: boolean[] = [];
const notFound = { status: 404 as const, body: { code: 'CallNotFound', message: 'No such call.' } };
const handlers: CallAutomationHandlers = {
  createCall: () => {
    const callLegId = crypto.randomUUID();
    calls.add(callLegId);
    return { status: 200, body: { callLegId } };
  },
  hangupCall: ({ params }) => (calls.delete(params.callId) ? { status: 202 } : notFound),
  playAudio: () => notFound,
  cancelMediaProcessing: () => notFound,
  inviteParticipants: () => notFound,
  removeParticipant: () => notFound,
  muteParticipants: ({ params, body }) => {
    if (!calls.has(params.callId)) return notFound;
    muted.push(body.mute);
    return { status: 202 };
  },
};
const server = await serveApp(createCallAutomationService({ handlers, auth: { accessKeys: [accessKey] }, idempotency: false }));
const client = createCallAutomationClient(\`endpoint=\${server.url}/;accesskey=\${accessKey}\`, { retry: false });
const created = await client.createCall({ targets: [{ phoneNumber: { value: '+14251001000' } }], callbackUri: 'https://app.contoso.com/cb', requestedModalities: ['audio'], requestedCallEvents: [] });
const callLegId = created.data!.callLegId;
const ok = await client.muteParticipants(callLegId, { mute: true });
const wrong = await client.muteParticipants(callLegId, { mute: 'yes' } as never);
await server.close();

const secret = 'whsec_' + Buffer.from('flow-test-callback-secret-000001').toString('base64');
const event = { specversion: '1.0', id: 'evt-1', source: \`calls/\${callLegId}\`, type: 'Microsoft.Communication.MuteChanged', time: new Date().toISOString(), data: { callLegId, muted: true } };
const parsed = parseCallbackEvent(JSON.stringify(event));
const heard: unknown[] = [];
const receive = createCallbackHandler({ secret, on: { MuteChanged: (e) => void heard.push(e.data.muted) } });
const body = JSON.stringify(event);
const timestamp = new Date();
const answer = await receive(new Request('http://127.0.0.1/cb', {
  method: 'POST',
  body,
  headers: { 'webhook-id': event.id, 'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign(event.id, timestamp, body) },
}));

console.log(JSON.stringify({
  muteStatus: ok.response.status,
  muted,
  wrongType: { status: wrong.response.status, targets: wrong.error?.details?.map((d) => d.target) },
  parsedType: parsed.type,
  handled: { status: answer.status, heard },
  table: operationTable.muteParticipants,
  conformanceKnows: new Contract().operations.some((o) => o.operationId === 'muteParticipants'),
}));
`;

describe('a spec change flows through with no hand edit', () => {
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'call-automation-flow-'));
    await cp(join(repoRoot, 'spec'), join(scratch, 'spec'), { recursive: true });
    await cp(join(repoRoot, 'redocly.yaml'), join(scratch, 'redocly.yaml'));
    await writeFile(join(scratch, 'package.json'), '{ "private": true, "type": "module" }\n');
    for (const [name, folder] of Object.entries(packages)) {
      await mkdir(join(scratch, folder), { recursive: true });
      await cp(join(repoRoot, folder, 'package.json'), join(scratch, folder, 'package.json'));
      await cp(join(repoRoot, folder, 'src'), join(scratch, folder, 'src'), { recursive: true });
      // Third-party dependencies from the workspace's install; the workspace's own from the scratch copy.
      const modules = join(scratch, folder, 'node_modules');
      await mkdir(join(modules, '@call-automation'), { recursive: true });
      for (const entry of await readdir(join(repoRoot, folder, 'node_modules'))) {
        if (entry === '@call-automation' || entry === '.bin') continue;
        await symlink(join(repoRoot, folder, 'node_modules', entry), join(modules, entry));
      }
      for (const [other, otherFolder] of Object.entries(packages)) {
        if (other !== name) await symlink(join(scratch, otherFolder), join(modules, other));
      }
    }
    // The program's own imports: the scratch packages, and @types and standardwebhooks from the workspace.
    const rootModules = join(scratch, 'node_modules');
    await mkdir(join(rootModules, '@call-automation'), { recursive: true });
    for (const [name, folder] of Object.entries(packages)) await symlink(join(scratch, folder), join(rootModules, name));
    await symlink(join(repoRoot, 'node_modules', '@types'), join(rootModules, '@types'));
    await symlink(join(repoRoot, 'packages', 'client', 'node_modules', 'standardwebhooks'), join(rootModules, 'standardwebhooks'));

    for (const [path, content] of Object.entries(specFiles)) await writeFile(join(scratch, 'spec', path), content);
    const openapi = join(scratch, 'spec', 'openapi.yaml');
    await writeFile(
      openapi,
      (await readFile(openapi, 'utf8'))
        .replace('webhooks:\n', 'webhooks:\n  MuteChanged:\n    $ref: webhooks/MuteChanged.yaml\n')
        .replace('  /calls/{callId}/Hangup:\n', '  /calls/{callId}/Mute:\n    $ref: paths/calls_{callId}_Mute.yaml\n  /calls/{callId}/Hangup:\n'),
    );
    await writeGenerated(scratch, await generateAll(scratch));
  }, 120_000);

  afterAll(() => rm(scratch, { recursive: true, force: true }));

  it('types the client method, the handler the server requires and the event', async () => {
    const file = join(scratch, 'typed-use.ts');
    await writeFile(file, typedUse);
    const base = ts.readConfigFile(join(repoRoot, 'tsconfig.base.json'), ts.sys.readFile).config;
    const { options } = ts.convertCompilerOptionsFromJson({ ...base.compilerOptions, types: ['node'], skipLibCheck: true }, scratch);
    const program = ts.createProgram([file], options);
    const problems = ts.getPreEmitDiagnostics(program).map((d) => `${d.file?.fileName.replace(scratch, '') ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(problems).toEqual([]);
  }, 60_000);

  it('routes, validates and answers the operation, parses and handles the event, and the conformance suite knows the operation', async () => {
    const file = join(scratch, 'runtime-use.ts');
    await writeFile(file, runtimeUse);
    const { stdout } = await run(join(binDir, 'tsx'), [file], { cwd: scratch });
    const seen = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(seen).toMatchObject({
      muteStatus: 202,
      muted: [true],
      wrongType: { status: 400, targets: ['/mute'] },
      parsedType: 'Microsoft.Communication.MuteChanged',
      handled: { status: 204, heard: [true] },
      table: { method: 'POST', path: '/calls/{callId}/Mute', pathParams: ['callId'], body: 'MuteRequest', successStatus: 202, idempotent: false },
      conformanceKnows: true,
    });
  }, 60_000);

  it('puts the operation and the event in the docs', async () => {
    await buildDocs(scratch, join(scratch, 'docs', 'index.html'));
    const html = await readFile(join(scratch, 'docs', 'index.html'), 'utf8');
    expect(html).toContain('Mute everyone in a call');
    expect(html).toContain('The call was muted or unmuted');
  }, 60_000);

  it('is noticed by check:generated when a generated file is not regenerated', async () => {
    expect(await findStale(scratch, await generateAll(scratch))).toEqual([]);
    const schema = join(scratch, 'spec', 'components', 'schemas', 'MuteRequest.yaml');
    await writeFile(schema, (await readFile(schema, 'utf8')).replace('maxLength: 128', 'maxLength: 64'));
    expect(await findStale(scratch, await generateAll(scratch))).toContainEqual({ path: 'packages/contract/src/generated/request-validators.gen.ts', reason: 'differs' });
  }, 60_000);
});
