/** A callback receiver on 127.0.0.1 (port 0): reads each request, answers `status` after `delayMs`. */
import { createServer } from 'node:http';

export interface Receiver {
  url: string;
  /** Requests answered so far. */
  readonly count: number;
  /** Resolves once `count` reaches `n`. */
  reached(n: number): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(options: { delayMs?: number; status?: number } = {}): Promise<Receiver> {
  const delayMs = options.delayMs ?? 0;
  const status = options.status ?? 204;
  let count = 0;
  let waiter: { n: number; resolve: () => void } | undefined;
  const server = createServer((request, response) => {
    request.resume();
    request.once('end', () => {
      const answer = () => {
        response.writeHead(status).end();
        count++;
        if (waiter && count >= waiter.n) {
          waiter.resolve();
          waiter = undefined;
        }
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/callbacks`,
    get count() {
      return count;
    },
    reached(n) {
      if (count >= n) return Promise.resolve();
      return new Promise((resolve) => (waiter = { n, resolve }));
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
