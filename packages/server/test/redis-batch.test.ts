// batchWrites: the commands issued in one turn of the event loop go out in one write on the
// connection's socket, with the same answers in the same order; without it, in a write each.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchWrites } from '../src/redis.ts';
import { connectRedis, countWrites, startRedis, stopAll, type RedisProcess } from './redis-server.ts';

let redis: RedisProcess;
const connections: Redis[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const connection of connections) connection.disconnect();
  await stopAll();
});

async function connect(): Promise<Redis> {
  const connection = await connectRedis(redis.port);
  connections.push(connection);
  return connection;
}

/** Issues `n` INCRs of one key in one turn; answers what they answered, and how many writes the socket made for them. */
async function incrementsInOneTurn(connection: Redis, n: number): Promise<{ answers: number[]; writes: number }> {
  const key = `batch:${crypto.randomUUID()}`;
  const writes = countWrites(connection);
  try {
    const answers = await Promise.all(Array.from({ length: n }, () => connection.incr(key)));
    return { answers, writes: writes.count };
  } finally {
    writes.stop();
  }
}

describe('batchWrites', () => {
  it('sends the commands of one turn in one write, with the same answers in the same order', async () => {
    const plain = await incrementsInOneTurn(await connect(), 200);
    const batched = await incrementsInOneTurn(batchWrites(await connect()), 200);
    const expected = Array.from({ length: 200 }, (_, i) => i + 1);
    expect(plain.answers).toEqual(expected);
    expect(batched.answers).toEqual(expected);
    expect(batched.writes).toBe(1);
    expect(plain.writes).toBe(200);
  });

  it('leaves the commands of later turns to later writes, and a pipeline as it is', async () => {
    const connection = batchWrites(await connect());
    const key = `batch:${crypto.randomUUID()}`;
    for (let i = 1; i <= 5; i++) expect(await connection.incr(key)).toBe(i);
    const results = await connection.pipeline().incr(key).incr(key).get(key).exec();
    expect(results).toEqual([[null, 6], [null, 7], [null, '7']]);
    // Batched twice, it is batched once.
    expect(batchWrites(connection)).toBe(connection);
    expect(await connection.incr(key)).toBe(8);
  });
});
