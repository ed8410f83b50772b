import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/**
 * A callback receiver on a free loopback port. `answer` decides each response (by default 204);
 * it may leave the response open to stand for a receiver that never answers.
 */
export async function startReceiver(answer: (received: Received, count: number, res: ServerResponse) => void = (_r, _n, res) => void res.writeHead(204).end()) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const entry = { path: req.url ?? '/', headers: req.headers, body, at: Date.now() };
      received.push(entry);
      answer(entry, received.length, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
