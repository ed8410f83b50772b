/** What the bench's processes share: the access key requests are signed with, the callback secret, bodies. */
import { createHash, createHmac } from 'node:crypto';

/** The spec's example access key (base64), as in the simulator's bench. */
export const accessKey = 'Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=';
export const callbackSecret = `whsec_${Buffer.from('the-bench-callback-secret-000000').toString('base64')}`;

/** A createCall body whose callbackUri is `callbackUri`. */
export function createCallBody(callbackUri: string): string {
  return JSON.stringify({
    targets: [{ communicationUser: { id: '8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776_00000005-4f83-d4b7-a7ac-473a0d00d0c1' } }],
    callbackUri,
    requestedModalities: ['audio'],
    requestedCallEvents: ['participantsUpdated'],
  });
}

/** The HMAC-SHA256 headers of a POST /calls to `host` (Azure's scheme: x-ms-date;host;x-ms-content-sha256). */
export function signedHeaders(host: string, payload: string, date = new Date().toUTCString()): Record<string, string> {
  const key = Buffer.from(accessKey, 'base64');
  const hash = createHash('sha256').update(payload).digest('base64');
  const signature = createHmac('sha256', key).update(`POST\n/calls\n${date};${host};${hash}`).digest('base64');
  return {
    'content-type': 'application/json',
    'x-ms-date': date,
    'x-ms-content-sha256': hash,
    authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${signature}`,
  };
}

/** A CloudEvent body of the size and shape the delivery sends for CallLegStateChanged. */
export function cloudEventBody(callLegId: string, i: number): string {
  return JSON.stringify({
    specversion: '1.0',
    id: `evt_${crypto.randomUUID().replace(/-/g, '')}`,
    source: `calls/${callLegId}`,
    type: 'Microsoft.Communication.CallLegStateChanged',
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: { callLegId, callState: i % 2 ? 'established' : 'establishing' },
  });
}
