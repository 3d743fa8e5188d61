/**
 * Seeds for data that must be reproducible batch by batch: batch i of a loader seeded s is drawn
 * from its own generator, seeded mixSeed(s, i), so a run resumed at batch i needs nothing but
 * (s, i) to draw the very same batches again (no generator state to save).
 */
import { Rng } from '../../generate/sampler.js';

/** A 32-bit seed from (seed, index, salt) through the murmur3 finalizer; distinct inputs give unrelated seeds. */
export function mixSeed(seed: number, index: number, salt = 0): number {
  let h = (seed >>> 0) ^ 0x9e3779b9;
  for (const v of [index >>> 0, Math.floor(index / 2 ** 32) >>> 0, salt >>> 0]) {
    h = Math.imul(h ^ v, 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** The generator of item `index` of a stream seeded `seed`. */
export function itemRng(seed: number, index: number, salt = 0): Rng {
  return new Rng(mixSeed(seed, index, salt));
}

/** A uniform integer in [lo, hi), from 53 random bits (no modulo bias worth the name for ranges up to 2^32). */
export function randInt(rng: Rng, lo: number, hi: number): number {
  const n = hi - lo;
  if (!(n >= 1)) throw new RangeError(`randInt: empty range [${lo}, ${hi})`);
  return lo + Math.floor(rng.next() * n);
}

/** Checks that a seed is an integer that fits in 32 bits (what the generators take). */
export function checkSeed(seed: number, what = 'seed'): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`${what} must be an integer in 0..4294967295, got ${seed}`);
  return seed;
}
