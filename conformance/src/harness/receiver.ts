import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedCallback {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

export interface CallbackReceiver {
  url: string;
  received: ReceivedCallback[];
  /** Resolves with the first delivery that matches, or rejects after `timeoutMs`. */
  waitFor(match: (delivery: ReceivedCallback) => boolean, timeoutMs?: number): Promise<ReceivedCallback>;
  close(): Promise<void>;
}

/**
 * A callback receiver on `host` (127.0.0.1 by default) and a free port. `answer` decides each
 * response (204 by default).
 */
export async function startCallbackReceiver(
  options: { host?: string; port?: number; answer?: (delivery: ReceivedCallback, count: number, res: ServerResponse) => void } = {},
): Promise<CallbackReceiver> {
  const received: ReceivedCallback[] = [];
  const answer = options.answer ?? ((_d, _n, res) => void res.writeHead(204).end());
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const delivery = { path: req.url ?? '/', headers: req.headers, body, at: Date.now() };
      received.push(delivery);
      answer(delivery, received.length, res);
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    received,
    async waitFor(match, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = received.find(match);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`No matching callback within ${timeoutMs} ms (${received.length} received).`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
