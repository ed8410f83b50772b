// FifoMap keeps a Map's order and answers (checked against a Map step by step, over operations
// mixed at random), and what it keeps for its order stays bounded by its live keys.
import { describe, expect, it } from 'vitest';
import { FifoMap } from '../src/fifo-map.ts';

/** A small deterministic generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('FifoMap', () => {
  it('answers as a Map does, its oldest key taken from the front', () => {
    for (const seed of [1, 2, 3]) {
      const next = random(seed);
      const fifo = new FifoMap<number, number>();
      const map = new Map<number, number>();
      for (let step = 0; step < 20_000; step++) {
        const key = Math.floor(next() * 300);
        const roll = next();
        if (roll < 0.45) {
          fifo.set(key, step);
          map.set(key, step);
        } else if (roll < 0.65) {
          expect(fifo.delete(key)).toBe(map.delete(key));
        } else if (roll < 0.9) {
          const oldest = map.keys().next();
          if (!oldest.done) map.delete(oldest.value);
          expect(fifo.shift()).toBe(oldest.done ? undefined : oldest.value);
        } else if (roll < 0.999) {
          expect(fifo.get(key)).toBe(map.get(key));
          expect(fifo.has(key)).toBe(map.has(key));
        } else {
          fifo.clear();
          map.clear();
        }
        expect(fifo.size).toBe(map.size);
        if (step % 1_000 === 0) expect([...fifo.oldest()]).toEqual([...map.keys()]);
      }
      expect([...fifo.keys()]).toEqual([...map.keys()]);
      expect([...fifo.oldest()]).toEqual([...map.keys()]);
    }
  });

  it('a key set again keeps its place; deleted and set again, it is the newest', () => {
    const fifo = new FifoMap<string, number>().set('a', 1).set('b', 2).set('a', 3);
    expect([...fifo.keys()]).toEqual(['a', 'b']);
    expect(fifo.get('a')).toBe(3);
    fifo.delete('a');
    fifo.set('a', 4);
    expect(fifo.shift()).toBe('b');
    expect(fifo.shift()).toBe('a');
    expect(fifo.shift()).toBeUndefined();
    expect(fifo.size).toBe(0);
  });

  it('keeps its order bounded by its live keys, whether keys leave by shift or by delete', () => {
    const fifo = new FifoMap<number, true>();
    const kept = () => (fifo as unknown as { order: unknown[]; head: number }).order.length - (fifo as unknown as { head: number }).head;
    // Deleted rather than shifted: the order's stale keys are dropped once they outnumber the live ones.
    for (let key = 0; key < 100_000; key++) {
      fifo.set(key, true);
      if (key >= 10) fifo.delete(key - 10);
    }
    expect(fifo.size).toBe(10);
    expect(kept()).toBeLessThanOrEqual(2 * 10 + 1_001);
    // Shifted as a first-come queue: what was taken is dropped from the front.
    for (let key = 100_000; key < 200_000; key++) {
      fifo.set(key, true);
      if (fifo.size > 5_000) fifo.shift();
    }
    expect(fifo.size).toBe(5_000);
    expect(kept()).toBeLessThanOrEqual(2 * 5_000 + 1_001);
    expect(fifo.shift()).toBe(195_000);
  });

  it('drops from its order the keys deleted at the front as soon as it is looked at, so that a look costs no walk past them', () => {
    const fifo = new FifoMap<number, true>();
    const listed = () => (fifo as unknown as { order: unknown[]; head: number }).order.length - (fifo as unknown as { head: number }).head;
    for (let key = 0; key < 1_000; key++) fifo.set(key, true);
    // A first-come queue whose front is taken by a look and a delete (a call other than the first may be taken too).
    for (let key = 1_000; key < 20_000; key++) {
      fifo.set(key, true);
      const [first, second] = fifo.oldest();
      fifo.delete(key % 7 === 0 ? second! : first!);
      expect(listed()).toBeLessThanOrEqual(fifo.size + 7);
    }
    expect(fifo.size).toBe(1_000);
  });
});
