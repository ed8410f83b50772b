import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { announce, benchKey, hmacCheck } from './hmac-check.ts';

const json = (res: import('node:http').ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
};

const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/calls') return json(res, 404, { code: 'NotFound', message: 'no' });
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (body += chunk));
  req.on('end', () => {
    if (!hmacCheck(benchKey, 'POST', req.url!, req.headers.host ?? '', req.headers, body)) return json(res, 401, { code: 'InvalidSignature', message: 'no' });
    let parsed: { targets?: unknown };
    try {
      parsed = JSON.parse(body);
    } catch {
      return json(res, 400, { code: 'InvalidJson', message: 'no' });
    }
    if (!Array.isArray(parsed.targets)) return json(res, 400, { code: 'ValidationFailed', message: 'no' });
    json(res, 200, { callLegId: crypto.randomUUID() });
  });
});
server.keepAliveTimeout = 5000;
server.listen(0, '127.0.0.1', () => announce((server.address() as AddressInfo).port));
