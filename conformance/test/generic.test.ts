import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { operationTable } from '@call-automation/contract';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Contract, runChecks, toJUnit, type CheckResult, type OperationTable } from '../src/index.ts';
import type { JsonObject } from '../src/contract.ts';
import { accessKey } from './fixtures.ts';

/**
 * The generic checks follow the operation table: a spec with one more operation (POST
 * /calls/{callId}/Mute, whose body holds a URI the service contacts), and the table that goes
 * with it, get that operation checked with no edit to the suite.
 */

const muteTable: OperationTable = {
  ...operationTable,
  muteCall: {
    operationId: 'muteCall',
    method: 'POST',
    path: '/calls/{callId}/Mute',
    pathParams: ['callId'],
    body: 'MuteRequest',
    statuses: [202, 400, 401, 404, 405, 413, 429, 500, 503],
    successStatus: 202,
    repeatable: false,
    idempotent: true,
    contactedUris: ['/announcementUri'],
    callbackUri: null,
    createdId: null,
    linkedParam: null,
    endsCall: false,
  },
};

/** The bundled spec with the Mute operation added, as a spec change would add it. */
function withMute(spec: JsonObject): JsonObject {
  const copy = structuredClone(spec) as { paths: JsonObject; components: { schemas: JsonObject } };
  copy.components.schemas.MuteRequest = {
    type: 'object',
    title: 'MuteRequest',
    required: ['muted', 'announcementUri'],
    properties: {
      muted: { type: 'boolean' },
      announcementUri: { type: 'string', format: 'uri', 'x-contacted-uri': true, minLength: 8, maxLength: 2048, pattern: '^[Hh][Tt][Tt][Pp][Ss]?://' },
      operationContext: { $ref: '#/components/schemas/OperationContext' },
    },
    additionalProperties: false,
  };
  const hangup = (copy.paths['/calls/{callId}/Hangup'] as { post: { responses: JsonObject } }).post;
  copy.paths['/calls/{callId}/Mute'] = {
    parameters: [{ $ref: '#/components/parameters/CallId' }],
    post: {
      operationId: 'muteCall',
      summary: 'Mute everyone in a call',
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: { $ref: '#/components/schemas/MuteRequest' },
            examples: { announced: { value: { muted: true, announcementUri: 'https://media.example.com/muted.wav', operationContext: 'mute-1' } } },
          },
        },
      },
      responses: { ...hangup.responses, 202: { description: 'Muted.' } },
    },
  };
  return copy as unknown as JsonObject;
}

interface Received {
  method: string;
  path: string;
  body: string;
  status: number;
}

/**
 * A server that answers every request as the spec says, routed by the table: calls it created
 * answer each operation's success, unknown calls and participants 404, invalid bodies 400,
 * bodies over 1 MiB 413, other methods 405 with Allow. It contacts nothing and checks no
 * signature (the auth checks are not run against it).
 */
async function serveStub(contract: Contract): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const calls = new Set<string>();
  const creator = contract.creator();
  const routes = contract.operations.map((operation) => ({
    operation,
    pattern: new RegExp(`^${operation.path.replace(/\{[^}]+\}/g, '([^/]+)')}$`),
  }));

  function answer(request: IncomingMessage, text: string, size: number): { status: number; body?: unknown; headers?: Record<string, string> } {
    const error = (status: number, code: string, message: string) => ({ status, body: { code, message } });
    const path = new URL(request.url!, 'http://stub').pathname;
    const matching = routes.filter((r) => r.pattern.test(path));
    const route = matching.find((r) => r.operation.method === request.method);
    if (!route) {
      if (!matching.length) return error(404, 'NotFound', `No route ${path}.`);
      return { ...error(405, 'MethodNotAllowed', `${request.method} is not allowed.`), headers: { allow: matching.map((r) => r.operation.method).join(', ') } };
    }
    const { operation } = route;
    if (!request.headers.authorization) return error(401, 'MissingAuthorization', 'No Authorization.');
    const values = route.pattern.exec(path)!.slice(1);
    const params = Object.fromEntries(operation.pathParams.map((name, i) => [name, values[i]!]));
    if (operation.pathParams.includes(creator.linkedParam!) && !calls.has(params[creator.linkedParam!]!)) return error(404, 'CallNotFound', 'No such call.');
    // It knows no participant: no answer gives their ids.
    if (contract.unlinkedParams(operation).length) return error(404, 'ParticipantNotFound', 'No such participant.');
    if (size > 1024 * 1024) return error(413, 'PayloadTooLarge', 'Over 1 MiB.');
    if (operation.body) {
      if (request.headers['content-type']?.split(';')[0] !== 'application/json') return error(400, 'InvalidContentType', 'Not application/json.');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return error(400, 'InvalidJson', 'Not JSON.');
      }
      const validate = contract.validator(`#/components/schemas/${operation.body}`);
      if (!validate(body)) return error(400, 'ValidationFailed', JSON.stringify(validate.errors?.[0]));
    }
    if (operation.createdId) {
      const id = randomUUID();
      calls.add(id);
      return { status: operation.successStatus, body: { [operation.createdId.slice(1)]: id } };
    }
    if (operation.endsCall) calls.delete(params[creator.linkedParam!]!);
    // A success with a body answers the spec's first example of it.
    const media = (contract.response(operation.operationId, operation.successStatus)?.content as JsonObject | undefined)?.['application/json'] as JsonObject | undefined;
    const example = Object.values((media?.examples ?? {}) as JsonObject)[0] as JsonObject | undefined;
    return { status: operation.successStatus, body: example?.value };
  }

  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const bytes = Buffer.concat(chunks);
      const text = bytes.toString('utf8');
      const { status, body, headers } = answer(request, text, bytes.length);
      received.push({ method: request.method!, path: new URL(request.url!, 'http://stub').pathname, body: text, status });
      if (body === undefined) response.writeHead(status, headers).end();
      else response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('a spec with an operation added, and its table', () => {
  // Never contacted: the stub contacts nothing; the checks only write it into bodies.
  const callbackUrl = 'http://127.0.0.1:9/callbacks';
  let dir: string;
  let contract: Contract;
  let stub: Awaited<ReturnType<typeof serveStub>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'call-automation-generic-'));
    const bundled = JSON.parse(await readFile(createRequire(import.meta.url).resolve('@call-automation/contract/openapi.json'), 'utf8')) as JsonObject;
    await writeFile(join(dir, 'openapi.json'), JSON.stringify(withMute(bundled)));
    contract = new Contract(join(dir, 'openapi.json'), muteTable);
    stub = await serveStub(contract);
  });
  afterAll(async () => {
    await stub?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs one check against the stub: its result, and the requests it made. */
  async function check(id: string): Promise<{ result: CheckResult; received: Received[] }> {
    stub.received.length = 0;
    const [result] = await runChecks({ baseUrl: stub.url, accessKey, callbackUrl, seed: 99, only: [id], contract });
    return { result: result!, received: [...stub.received] };
  }
  const isMute = (r: Received) => /^\/calls\/[^/]+\/Mute$/.test(r.path);
  const muteBodies = (received: Received[]) => received.filter((r) => isMute(r) && r.status === 202).map((r) => JSON.parse(r.body) as { muted: unknown; announcementUri: string });

  it('reads who creates, ends and is on a call from the table, and which path parameters no answer fills', () => {
    expect(contract.creator().operationId).toBe('createCall');
    expect(contract.ender().operationId).toBe('hangupCall');
    expect(contract.onCall().map((o) => o.operationId)).toContain('muteCall');
    expect(contract.operation('muteCall')).toMatchObject({ body: 'MuteRequest', contactedUris: ['/announcementUri'], exampleBody: { muted: true } });
    expect(contract.unlinkedParams(contract.operation('removeParticipant'))).toEqual(['participantId']);
    expect(contract.unlinkedParams(contract.operation('muteCall'))).toEqual([]);
  });

  it('positive.call-operations sends generated valid bodies to /calls/{id}/Mute, its contacted URI pointed at the callback URL', async () => {
    const { result, received } = await check('positive.call-operations');
    expect(result).toMatchObject({ status: 'passed' });
    const bodies = muteBodies(received);
    expect(bodies).toHaveLength(8);
    const validate = contract.validator('#/components/schemas/MuteRequest');
    for (const body of bodies) {
      expect(validate(body)).toBe(true);
      expect(body.announcementUri).toMatch(/^http:\/\/127\.0\.0\.1:9\/callbacks\/contacted\/announcementUri-\d$/);
    }
    // Seeded: not one body eight times.
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBeGreaterThan(1);
    // On the call it created, which the operation that ends calls ended last.
    const callId = received.find(isMute)!.path.split('/')[2];
    expect(received.at(-1)).toMatchObject({ method: 'POST', path: `/calls/${callId}/Hangup`, status: 202 });
  });

  it('lifecycle.operations sends the example Mute to the live call, notes removeParticipant, and ends the call', async () => {
    const { result, received } = await check('lifecycle.operations');
    expect(result).toMatchObject({ status: 'passed' });
    expect(result.notes).toEqual(['removeParticipant not sent: its path takes participantId, an id no answer gives (the operation table links only callId, from createCall)']);
    expect(muteBodies(received)).toEqual([{ muted: true, announcementUri: 'http://127.0.0.1:9/callbacks/contacted/announcementUri', operationContext: 'mute-1' }]);
    expect(received.some((r) => r.path.endsWith('/participants/conformance-no-such-participant'))).toBe(false);
    const callId = received.find(isMute)!.path.split('/')[2];
    expect(received.at(-1)).toMatchObject({ path: `/calls/${callId}/Hangup`, status: 202 });
    expect(toJUnit([result])).toContain('<system-out>removeParticipant not sent: its path takes participantId');
  });

  it('lifecycle.after-hangup holds /calls/{id}/Mute to 404 once the call is ended', async () => {
    const { result, received } = await check('lifecycle.after-hangup');
    expect(result).toMatchObject({ status: 'passed' });
    const hangup = received.findIndex((r) => r.path.endsWith('/Hangup'));
    const mute = received.findIndex(isMute);
    expect(hangup).toBeGreaterThan(-1);
    expect(mute).toBeGreaterThan(hangup);
    expect(received[mute]!.status).toBe(404);
  });

  it('negative.call-operations, errors.unknown-call and negative.odd-ids send to /calls/{id}/Mute too', async () => {
    const negative = await check('negative.call-operations');
    expect(negative.result).toMatchObject({ status: 'passed' });
    const refused = negative.received.filter(isMute);
    expect(refused.length).toBeGreaterThanOrEqual(10);
    expect(refused.every((r) => r.status === 400 || r.status === 413)).toBe(true);
    expect(refused.some((r) => r.body.startsWith('{') && !('muted' in (JSON.parse(r.body) as object)))).toBe(true);

    const unknown = await check('errors.unknown-call');
    expect(unknown.result).toMatchObject({ status: 'passed' });
    expect(unknown.received).toContainEqual(expect.objectContaining({ method: 'POST', path: '/calls/conformance-no-such-call/Mute', status: 404 }));

    const odd = await check('negative.odd-ids');
    expect(odd.result).toMatchObject({ status: 'passed' });
    expect(odd.received.filter(isMute)).toHaveLength(5);
  });

  it('the other generic checks pass against it', async () => {
    const results = await runChecks({ baseUrl: stub.url, accessKey, callbackUrl, seed: 7, only: ['errors.*', 'negative.*', 'positive.*', 'lifecycle.*'], contract });
    expect(results.filter((r) => r.status !== 'passed').map((r) => `${r.id}: ${r.message}`)).toEqual([]);
  });

  it('a table naming an operation the spec lacks is refused when the contract is made', () => {
    const table: OperationTable = { ...operationTable, ghost: { ...muteTable.muteCall!, operationId: 'ghost', path: '/calls/{callId}/Ghost' } };
    expect(() => new Contract(join(dir, 'openapi.json'), table)).toThrow('The operation table\'s ghost (POST /calls/{callId}/Ghost) is not in the spec.');
  });
});

describe('an operation that ends the call, found by the table and not by its name', () => {
  it('is the one the checks end calls with', async () => {
    // The same spec, with the table saying Mute ends a call and Hangup does not.
    const dir = await mkdtemp(join(tmpdir(), 'call-automation-generic-'));
    let stub: Awaited<ReturnType<typeof serveStub>> | undefined;
    try {
      const bundled = JSON.parse(await readFile(createRequire(import.meta.url).resolve('@call-automation/contract/openapi.json'), 'utf8')) as JsonObject;
      await writeFile(join(dir, 'openapi.json'), JSON.stringify(withMute(bundled)));
      const table: OperationTable = { ...muteTable, hangupCall: { ...operationTable.hangupCall, endsCall: false }, muteCall: { ...muteTable.muteCall!, endsCall: true } };
      const contract = new Contract(join(dir, 'openapi.json'), table);
      expect(contract.ender().operationId).toBe('muteCall');
      stub = await serveStub(contract);
      const [result] = await runChecks({ baseUrl: stub.url, accessKey, callbackUrl: 'http://127.0.0.1:9/callbacks', seed: 3, only: ['lifecycle.after-hangup'], contract });
      expect(result).toMatchObject({ status: 'passed' });
      const first = stub.received.find((r) => r.path !== '/calls')!;
      expect(first).toMatchObject({ method: 'POST', path: expect.stringMatching(/\/Mute$/), status: 202 });
      expect(stub.received.filter((r) => r.path.endsWith('/Hangup')).map((r) => r.status)).toEqual([404]);
    } finally {
      await stub?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
