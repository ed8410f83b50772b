// The whole suite against the simulator as `REDIS_URL=… pnpm start` runs it, two instances on one
// redis-server behind a load balancer that sends each request to the other instance in turn: a
// call made on one is played, invited to and hung up on the other, its events delivered by
// either, and the suite, a client that knows nothing of instances, sees one service.
import { createServer, request as forward, type Server } from 'node:http';
import { join } from 'node:path';
import { runSimulator, type RunningSimulator } from '@call-automation/simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allChecks, runChecks } from '../src/index.ts';
import { startCallbackReceiver, type CallbackReceiver } from '../src/harness/index.ts';
import { startRedis, stopAll } from '../../packages/server/test/redis-server.ts';
import { accessKey, callbackSecret } from './fixtures.ts';

/**
 * A round-robin load balancer on loopback: each request goes whole to the next of `targets`
 * (method, path, headers, Host included, since requests are signed for the balancer's host).
 */
async function balance(targets: string[]): Promise<{ url: string; sent: number[]; server: Server }> {
  const sent = targets.map(() => 0);
  let next = 0;
  const server = createServer((incoming, outgoing) => {
    const i = next++ % targets.length;
    sent[i]!++;
    const target = new URL(targets[i]!);
    const proxied = forward({ host: target.hostname, port: target.port, method: incoming.method, path: incoming.url, headers: incoming.headers }, (answer) => {
      outgoing.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(outgoing);
    });
    proxied.on('error', (error) => outgoing.writeHead(502).end(error.message));
    incoming.pipe(proxied);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, sent, server };
}

let receiver: CallbackReceiver;
const instances: RunningSimulator[] = [];
const balancers: Server[] = [];

beforeAll(async () => {
  receiver = await startCallbackReceiver();
});

afterAll(async () => {
  try {
    for (const server of balancers) server.closeAllConnections();
    await Promise.all(balancers.map((server) => new Promise((resolve) => server.close(resolve))));
    await Promise.all(instances.map((instance) => instance.stop()));
    await receiver?.close();
  } finally {
    await stopAll();
  }
});

describe('the suite against two simulators on one Redis, behind a load balancer', () => {
  it('passes every check it passes against one, each instance serving half the requests', async () => {
    const redis = await startRedis();
    const files = { docs: join(import.meta.dirname, 'missing.html'), specJson: join(import.meta.dirname, 'missing.json'), specYaml: join(import.meta.dirname, 'missing.yaml') };
    for (let i = 0; i < 2; i++) {
      instances.push(
        await runSimulator({
          host: '127.0.0.1',
          port: 0,
          controlPort: 0,
          accessKey,
          callbackSecret,
          allowLoopback: true,
          answerDelayMs: 20,
          playDurationMs: 50,
          redisUrl: `redis://127.0.0.1:${redis.port}`,
          files,
          log: () => {},
        }),
      );
    }
    const api = await balance(instances.map((instance) => instance.url));
    const control = await balance(instances.map((instance) => instance.controlUrl));
    balancers.push(api.server, control.server);
    const results = await runChecks({ baseUrl: api.url, accessKey, callbackUrl: `${receiver.url}/callbacks`, receiver, callbackSecret, controlUrl: control.url, seed: 20261203 });
    expect(results.filter((r) => r.status === 'failed').map((r) => `${r.id}: ${r.message}`)).toEqual([]);
    expect(results.filter((r) => r.status === 'skipped').map((r) => r.id)).toEqual(['auth.replay']);
    expect(results.map((r) => r.id)).toEqual(allChecks.map((c) => c.id));
    // Each instance served half the suite's requests (it sends a hundred or so; the control
    // surface sees only the one that presses keys).
    expect(api.sent[0]! + api.sent[1]!).toBeGreaterThanOrEqual(50);
    expect(Math.abs(api.sent[0]! - api.sent[1]!)).toBeLessThanOrEqual(1);
    expect(control.sent[0]! + control.sent[1]!).toBeGreaterThanOrEqual(1);
    console.info(`API requests per instance ${api.sent.join(', ')}; control ${control.sent.join(', ')}`);
  }, 120_000);
});
