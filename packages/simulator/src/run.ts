import { readFile } from 'node:fs/promises';
import { Hono } from 'hono';
import { serveApp, type RunningServer } from '@call-automation/server/node';
import { batchWrites } from '@call-automation/server/redis';
import { createSimulatorService, type SimulatorServiceOptions } from './service.ts';

export interface RunOptions extends Omit<SimulatorServiceOptions, 'accessKeys' | 'callbackSecret'> {
  host: string;
  port: number;
  /** The control surface's port, on 127.0.0.1 only. */
  controlPort: number;
  accessKey: string;
  callbackSecret: string;
  /**
   * `redis://…`: runs on that Redis, sharing calls, timers and callbacks with every instance run
   * on it (see SimulatorServiceOptions.redis). The connection is this run's, closed at stop.
   */
  redisUrl?: string;
  /** Files served beside the API. */
  files: { docs: string; specJson: string; specYaml: string };
}

export interface RunningSimulator {
  url: string;
  controlUrl: string;
  stop(): Promise<void>;
}

/** Serves the simulator's API (with the docs at /docs and the spec at /openapi.json and /openapi.yaml) and its control surface. */
export async function runSimulator(options: RunOptions): Promise<RunningSimulator> {
  // Commands fail at once while Redis is away (the API answers 503), rather than wait in a queue.
  // ioredis is loaded only to run on Redis: a start in memory does without it.
  const redis = options.redisUrl
    ? new (await import('ioredis')).Redis(options.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true })
    : undefined;
  if (redis) {
    // ioredis reconnects by itself; what went wrong is said at start, and by the API's 503s later.
    let cause: Error | undefined;
    redis.on('error', (error: Error) => (cause = error));
    try {
      await redis.connect();
    } catch (error) {
      redis.disconnect();
      const why = (cause ?? (error as Error)).message.replace(/\.$/, '');
      throw new Error(`Cannot reach Redis at ${redactedUrl(options.redisUrl!)} (${why}). Is redis-server running there? Without a Redis URL the simulator runs in memory.`);
    }
  }
  // The commands of the requests served in one turn go to Redis together, a few writes a turn.
  if (redis) batchWrites(redis);
  const service = createSimulatorService({ ...options, redis, accessKeys: [options.accessKey], callbackSecret: options.callbackSecret });
  // The docs and the spec beside the API: the paths it does not have go to this app, whose 404 is
  // the API's own error body.
  const site = new Hono();
  const serveFile = (path: string, type: string) => async () =>
    new Response(await readFile(path), { headers: { 'content-type': type, 'cache-control': 'no-cache' } });
  // The API has nothing at its root: a browser opened there is sent to the docs.
  site.get('/', (c) => c.redirect('/docs'));
  site.get('/docs', serveFile(options.files.docs, 'text/html; charset=utf-8'));
  site.get('/openapi.json', serveFile(options.files.specJson, 'application/json'));
  site.get('/openapi.yaml', serveFile(options.files.specYaml, 'application/yaml'));
  site.notFound((c) => {
    const answer = service.api.notFound(c.req.method, c.req.path);
    return new Response(answer.body, { status: answer.status, headers: answer.headers });
  });
  let api: RunningServer | undefined;
  let control: RunningServer | undefined;
  try {
    api = await serveApp(service.api, { host: options.host, port: options.port, fallback: site.fetch });
    control = await serveApp(service.control, { host: '127.0.0.1', port: options.controlPort });
  } catch (error) {
    await api?.close();
    await service.close(0);
    redis?.disconnect();
    throw error;
  }
  return {
    url: api.url,
    controlUrl: control.url,
    async stop() {
      await Promise.all([api!.close(), control!.close()]);
      await service.close();
      await redis?.quit().catch(() => redis.disconnect());
    },
  };
}

/** A Redis URL without its password, to be printed. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unreadable URL)';
  }
}
