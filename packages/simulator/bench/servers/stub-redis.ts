import { Redis } from 'ioredis';
import { serveApp } from '@call-automation/server/node';
import { batchWrites } from '@call-automation/server/redis';
import { createSimulatorService } from '../../src/service.ts';
import { announce, benchKey } from './hmac-check.ts';

// The simulator on the Redis at REDIS_URL, connected as `pnpm start` connects it (commands fail at
// once while Redis is away) and with batchWrites, unless BATCH_WRITES=0 (BATCH_WRITES=turn: one
// write a turn, however many commands). Its events go to the
// receiver on loopback that the requests name. Calls are not hung up, so the bench's are not
// refused as too many.
const redis = new Redis(process.env.REDIS_URL!, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
await redis.connect();
if (process.env.BATCH_WRITES !== '0') batchWrites(redis, process.env.BATCH_WRITES === 'turn' ? { maxCommands: Infinity } : {});
const service = createSimulatorService({
  redis,
  accessKeys: [benchKey.toString('base64')],
  callbackSecret: `whsec_${Buffer.from('the-bench-callback-secret-000000').toString('base64')}`,
  allowLoopback: true,
  answerDelayMs: 10,
  maxCalls: 1_000_000,
  log: () => {},
});
const running = await serveApp(service.api);
announce(Number(new URL(running.url).port));
