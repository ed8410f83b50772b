import { readFile } from 'node:fs/promises';
import { Hono } from 'hono';
import { serveApp, type RunningServer } from '@call-automation/server/node';
import { createSimulatorService, type SimulatorServiceOptions } from './service.ts';

export interface RunOptions extends Omit<SimulatorServiceOptions, 'accessKeys' | 'callbackSecret'> {
  host: string;
  port: number;
  /** The control surface's port, on 127.0.0.1 only. */
  controlPort: number;
  accessKey: string;
  callbackSecret: string;
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
  const service = createSimulatorService({ ...options, accessKeys: [options.accessKey], callbackSecret: options.callbackSecret });
  // The docs and the spec beside the API: the paths it does not have go to this app, whose 404 is
  // the API's own error body.
  const site = new Hono();
  const serveFile = (path: string, type: string) => async () =>
    new Response(await readFile(path), { headers: { 'content-type': type, 'cache-control': 'no-cache' } });
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
    throw error;
  }
  return {
    url: api.url,
    controlUrl: control.url,
    async stop() {
      await Promise.all([api!.close(), control!.close()]);
      await service.close();
    },
  };
}
