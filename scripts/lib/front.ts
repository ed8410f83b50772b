import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface FrontOptions {
  root: string;
  /** Where everything but the docs and the spec goes. */
  upstream: string;
  host: string;
  port: number;
}

/**
 * The local service's one address: `/docs` (the API reference), `/openapi.json` and
 * `/openapi.yaml` (the bundled spec), and the API itself, forwarded to `upstream`.
 */
export async function startFront(options: FrontOptions): Promise<{ server: Server; url: string }> {
  const files: Record<string, [string, string]> = {
    '/docs': [join(options.root, 'docs', 'index.html'), 'text/html; charset=utf-8'],
    '/docs/': [join(options.root, 'docs', 'index.html'), 'text/html; charset=utf-8'],
    '/openapi.json': [join(options.root, 'spec', 'dist', 'openapi.json'), 'application/json'],
    '/openapi.yaml': [join(options.root, 'spec', 'dist', 'openapi.yaml'), 'application/yaml'],
  };
  const upstream = new URL(options.upstream);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const file = req.method === 'GET' ? files[(req.url ?? '/').split('?')[0]!] : undefined;
    if (file) {
      readFile(file[0]).then(
        (body) => res.writeHead(200, { 'content-type': file[1], 'content-length': body.length }).end(body),
        () => res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'NotFound', message: `${file[0]} is missing; run \`pnpm docs\`.` })),
      );
      return;
    }
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', (error) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'BadGateway', message: `The mock is not answering: ${error.message}` }));
      } else res.destroy();
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}` };
}
