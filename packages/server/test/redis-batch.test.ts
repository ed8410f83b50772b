// The helpers every Redis store uses. batchWrites: the commands issued in one turn of the event
// loop go out together on the connection's socket, in writes of at most maxCommands, with the
// same answers in the same order; without it, in a write each. withTimeout: a command's answer,
// or a RedisTimeoutError in time, or a RedisUnavailableError for one not sent. defineGatheredScript: a script's invocations of one turn are one
// command, each with its own answer or error.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchWrites, defineGatheredScript, RedisTimeoutError, RedisUnavailableError, withTimeout } from '../src/redis.ts';
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
  it('sends the commands of one turn together, with the same answers in the same order', async () => {
    const plain = await incrementsInOneTurn(await connect(), 200);
    const whole = await incrementsInOneTurn(batchWrites(await connect(), { maxCommands: Infinity }), 200);
    const expected = Array.from({ length: 200 }, (_, i) => i + 1);
    expect(plain.answers).toEqual(expected);
    expect(whole.answers).toEqual(expected);
    expect(whole.writes).toBe(1);
    expect(plain.writes).toBe(200);
  });

  it('writes a batch once it holds maxCommands (16 by default), without waiting for the end of the turn', async () => {
    const byDefault = await incrementsInOneTurn(batchWrites(await connect()), 200);
    expect(byDefault.answers).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(byDefault.writes).toBe(13); // 12 of 16 and the last 8
    const connection = batchWrites(await connect(), { maxCommands: 3 });
    const socket = connection.stream;
    const key = `batch:${crypto.randomUUID()}`;
    const answers = [connection.incr(key), connection.incr(key)];
    expect(socket.writableCorked).toBe(1);
    answers.push(connection.incr(key));
    // Full: written now.
    expect(socket.writableCorked).toBe(0);
    answers.push(connection.incr(key));
    expect(socket.writableCorked).toBe(1);
    expect(await Promise.all(answers)).toEqual([1, 2, 3, 4]);
    expect(socket.writableCorked).toBe(0);
    expect(() => batchWrites(connection, { maxCommands: 0 })).toThrow(RangeError);
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

/** The commands the connection sends from now on, by name (a script's is evalsha or eval). */
function countCommands(connection: Redis): { names: string[]; stop(): void } {
  const send = connection.sendCommand;
  const names: string[] = [];
  connection.sendCommand = function (this: Redis, command, stream) {
    names.push(command.name);
    return send.call(this, command, stream);
  };
  return { names, stop: () => void (connection.sendCommand = send) };
}

// Adds ARGV[1] to the counter KEYS[1] and answers {the key, its new value}; an argument 'fail'
// makes it answer an error, 'throw' makes a Redis command fail (INCRBY of a hash).
const addLua = `
if ARGV[1] == 'fail' then return redis.error_reply('refused ' .. KEYS[1]) end
if ARGV[1] == 'throw' then
  redis.call('HSET', KEYS[1], 'field', 'x')
  redis.call('INCR', KEYS[1])
end
return {KEYS[1], redis.call('INCRBY', KEYS[1], ARGV[1])}
`;

describe('defineGatheredScript', () => {
  it("sends a turn's invocations as one command, each answered its own answer or its own error, in the order asked", async () => {
    const connection = await connect();
    const add = defineGatheredScript<[string, number]>(connection, 'testAdd', addLua);
    const key = `gather:${crypto.randomUUID()}`;
    const commands = countCommands(connection);
    try {
      const answers = await Promise.allSettled([
        add([key], [1]),
        add([`${key}:other`], [10]),
        add([`${key}:refused`], ['fail']),
        add([`${key}:hash`], ['throw']),
        add([key], [2]),
        add([], []).catch(() => 'no key'),
      ]);
      expect(answers.slice(0, 2)).toEqual([
        { status: 'fulfilled', value: [key, 1] },
        { status: 'fulfilled', value: [`${key}:other`, 10] },
      ]);
      expect(answers[2]).toMatchObject({ status: 'rejected', reason: { message: `refused ${key}:refused` } });
      expect(answers[3]).toMatchObject({ status: 'rejected', reason: { message: expect.stringMatching(/WRONGTYPE/) } });
      // The invocations after a failed one ran as well.
      expect(answers[4]).toEqual({ status: 'fulfilled', value: [key, 3] });
      expect(answers[5]).toEqual({ status: 'fulfilled', value: 'no key' });
      // The first time, Redis did not have the script: ioredis sent it whole once (EVALSHA, then EVAL).
      expect(commands.names.filter((name) => name === 'evalsha')).toHaveLength(1);
      commands.names.length = 0;
      expect(await Promise.all([add([key], [1]), add([key], [1])])).toEqual([
        [key, 4],
        [key, 5],
      ]);
      expect(commands.names).toEqual(['evalsha']);
      // Invocations in later turns go in later commands.
      commands.names.length = 0;
      expect(await add([key], [1])).toEqual([key, 6]);
      expect(await add([key], [1])).toEqual([key, 7]);
      expect(commands.names).toEqual(['evalsha', 'evalsha']);
    } finally {
      commands.stop();
    }
  });

  it('answers an invocation of thousands of arguments, and commands of a hundred thousand, as it answers small ones, also once Redis has lost the script', async () => {
    const connection = await connect();
    // The number of arguments and the last one, whatever their number.
    const count = defineGatheredScript<[number, string]>(connection, 'testCount', 'return {#ARGV, ARGV[#ARGV] or false}');
    const many = (n: number) => Array.from({ length: n }, (_, i) => `a${i}`);
    // One invocation of 9 000 arguments (past what Lua can unpack at once) between two small ones.
    expect(await Promise.all([count([], ['x']), count([], many(9_000)), count([], ['y', 'z'])])).toEqual([
      [1, 'x'],
      [9_000, 'a8999'],
      [2, 'z'],
    ]);
    // 64 invocations of 2 000 arguments: one command of 128 000, past what a spread can pass.
    const answers = Array.from({ length: 64 }, () => [2_000, 'a1999']);
    expect(await Promise.all(Array.from({ length: 64 }, () => count([], many(2_000))))).toEqual(answers);
    // Redis forgets the script: ioredis sends the command again as EVAL, its arguments as they were.
    await connection.call('SCRIPT', 'FLUSH');
    expect(await Promise.all(Array.from({ length: 64 }, () => count([], many(2_000))))).toEqual(answers);
  });

  it('sends at most maxPerCommand invocations in one command, and a batched connection writes them with the turn\'s other commands', async () => {
    const connection = batchWrites(await connect(), { maxCommands: Infinity });
    const add = defineGatheredScript<[string, number]>(connection, 'testAddFew', addLua, { maxPerCommand: 4 });
    const key = `gather:${crypto.randomUUID()}`;
    await add([key], [0]); // loads the script
    const commands = countCommands(connection);
    const writes = countWrites(connection);
    try {
      const answers = await Promise.all([connection.incr(`${key}:plain`), ...Array.from({ length: 10 }, () => add([key], [1])), connection.incr(`${key}:plain`)]);
      expect(answers).toEqual([1, ...Array.from({ length: 10 }, (_, i) => [key, i + 1]), 2]);
      // Two full commands at once, the rest of the turn's at its end, behind the plain commands.
      expect(commands.names).toEqual(['incr', 'evalsha', 'evalsha', 'incr', 'evalsha']);
      expect(writes.count).toBe(1);
    } finally {
      commands.stop();
      writes.stop();
    }
  });
});

describe('withTimeout', () => {
  it("answers a command's answer, or its error, as it comes", async () => {
    const connection = await connect();
    expect(await withTimeout(connection.ping(), 1_000, 'a ping')).toBe('PONG');
    await expect(withTimeout(connection.call('NO-SUCH-COMMAND'), 1_000, 'a bad command')).rejects.toThrow(/unknown command/i);
  });

  it("says a command was not sent because the connection is down, in its own words, with ioredis's error as the cause", async () => {
    // A connection whose redis-server (one of its own, shut down here) went away after it
    // connected, told not to queue commands meanwhile.
    const port = (await startRedis()).port;
    const connection = new Redis({ host: '127.0.0.1', port, enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
    connections.push(connection);
    connection.on('error', () => {});
    await connection.connect();
    await connection.call('SHUTDOWN', 'NOSAVE').catch(() => {});
    await new Promise<void>((resolve) => (connection.status === 'ready' ? connection.once('close', () => resolve()) : resolve()));
    const error: unknown = await withTimeout(connection.get('a key'), 1_000, 'a key').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RedisUnavailableError);
    expect((error as Error).message).toBe('Redis is not connected (ioredis is reconnecting), so a key could not be read or written.');
    expect(((error as Error).cause as Error).message).toBe("Stream isn't writeable and enableOfflineQueue options is false");
  });

  it('gives up on a command that does not answer in time, and does not hear it later', async () => {
    let settle!: (value: string) => void;
    let fail!: (error: Error) => void;
    const never = new Promise<string>((resolve) => (settle = resolve));
    const started = performance.now();
    const error: unknown = await withTimeout(never, 50, 'a stuck command').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RedisTimeoutError);
    expect((error as Error).message).toBe('Redis did not answer a stuck command within 50 ms.');
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    settle('late');
    // A command that fails after it was given up on is not an unhandled rejection either.
    const failing = new Promise<string>((_, reject) => (fail = reject));
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      await expect(withTimeout(failing, 20, 'a failing command')).rejects.toBeInstanceOf(RedisTimeoutError);
      fail(new Error('late failure'));
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
