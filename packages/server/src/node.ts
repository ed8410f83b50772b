import { serve, type ServerType } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServeOptions {
  /** Default 127.0.0.1: loopback only. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Time to receive a request's headers. Default 10 s. */
  headersTimeoutMs?: number;
  /** Time to receive a whole request. Default 30 s. */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open. Default 5 s. */
  keepAliveTimeoutMs?: number;
}

export interface RunningServer {
  url: string;
  server: Server;
  /** Stops accepting connections and closes idle ones; resolves when the server is closed. */
  close(): Promise<void>;
}

/**
 * Serves a Hono app with Node, hardened: bounded times for headers and bodies (slow-loris), a
 * keep-alive shorter than common load balancers', and at most 16 KiB of headers.
 */
export async function serveApp(app: { fetch: (request: Request) => Response | Promise<Response> }, options: ServeOptions = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const server = await new Promise<ServerType>((resolve, reject) => {
    const started = serve({ fetch: app.fetch, hostname: host, port: options.port ?? 0, serverOptions: { maxHeaderSize: 16 * 1024 } }, () => resolve(started));
    started.once('error', reject);
  });
  const http = server as Server;
  http.headersTimeout = options.headersTimeoutMs ?? 10_000;
  http.requestTimeout = options.requestTimeoutMs ?? 30_000;
  http.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    server: http,
    close: () =>
      new Promise<void>((resolve, reject) => {
        http.close((error) => (error ? reject(error) : resolve()));
        http.closeIdleConnections();
      }),
  };
}
