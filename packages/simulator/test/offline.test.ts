import { createCallAutomationClient, type CallAutomationClient } from '@call-automation/client';
import { serveApp, type RunningServer } from '@call-automation/server/node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSimulatorService } from '../src/index.ts';

const accessKey = Buffer.from('simulator-offline-access-key-001').toString('base64');
const secret = `whsec_${Buffer.from('simulator-offline-callback-sec01').toString('base64')}`;
const call = { targets: [{ phoneNumber: { value: '+14251001000' } }], requestedModalities: ['audio' as const], requestedCallEvents: [] };

// No name resolves, as on a machine without a network or behind a resolver that knows none of
// them: the simulator must still take realistic URIs, and resolve only what it really contacts.
let asked: string[];
let service: ReturnType<typeof createSimulatorService>;
let api: RunningServer;
let client: CallAutomationClient;

beforeEach(async () => {
  asked = [];
  service = createSimulatorService({
    accessKeys: [accessKey],
    callbackSecret: secret,
    answerDelayMs: 10,
    resolve: async (host) => {
      asked.push(host);
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    },
    delivery: { retryDelaysMs: [20], jitter: 0, lifetimeMs: 100 },
  });
  api = await serveApp(service.api);
  client = createCallAutomationClient(`endpoint=${api.url}/;accesskey=${accessKey}`);
});

afterEach(async () => {
  try {
    await service.close(1000);
  } finally {
    await api.close();
  }
});

describe('the simulator offline', () => {
  it('takes realistic callbackUri and audioFileUri without resolving them, and resolves only the callbackUri when it delivers', async () => {
    const created = await client.createCall({ ...call, callbackUri: 'https://app.contoso.com/api/callbacks' });
    expect(created.error).toBeUndefined();
    const played = await client.playAudio(created.data!.callLegId, { audioFileUri: 'https://media.contoso.com/x.wav' });
    expect(played.error).toBeUndefined();
    expect(played.response.status).toBe(202);
    await service.delivery.drain();
    // Delivery asked for the callback host (and, unanswered, retried it); nothing ever asked for the media host.
    expect(new Set(asked)).toEqual(new Set(['app.contoso.com']));
    const letters = await service.delivery.deadLetters();
    expect(letters.length).toBeGreaterThan(0);
    expect(letters.every((letter) => letter.reason === 'expired' && letter.lastError?.includes('ENOTFOUND'))).toBe(true);
  });

  it.each([
    ['audioFileUri', 'http://127.0.0.1/x.wav', 'loopback'],
    ['audioFileUri', 'http://[::1]:8080/x.wav', 'loopback'],
    ['audioFileUri', 'http://10.0.0.7/x.wav', 'private'],
    ['callbackUri', 'http://127.0.0.1:9/cb', 'loopback'],
    ['callbackUri', 'http://169.254.169.254/latest/meta-data', 'link-local'],
  ])('still refuses %s %s (%s) with 400 UriNotAllowed', async (field, uri, why) => {
    let result;
    if (field === 'callbackUri') result = await client.createCall({ ...call, callbackUri: uri });
    else {
      const created = await client.createCall({ ...call, callbackUri: 'https://app.contoso.com/api/callbacks' });
      result = await client.playAudio(created.data!.callLegId, { audioFileUri: uri });
    }
    expect(result.response.status).toBe(400);
    expect(result.error).toMatchObject({ code: 'UriNotAllowed', target: `/${field}`, message: expect.stringContaining(why) });
  });

  it('refuses file: URIs, already by their schema (http or https only; the guard refuses them too)', async () => {
    const created = await client.createCall({ ...call, callbackUri: 'file:///etc/passwd' });
    expect(created.response.status).toBe(400);
    expect(created.error).toMatchObject({ code: 'ValidationFailed' });
    const callLegId = (await client.createCall({ ...call, callbackUri: 'https://app.contoso.com/api/callbacks' })).data!.callLegId;
    const played = await client.playAudio(callLegId, { audioFileUri: 'file:///srv/media/x.wav' });
    expect(played.response.status).toBe(400);
    expect(played.error).toMatchObject({ code: 'ValidationFailed' });
  });
});
