/**
 * Token sampling: greedy (temperature 0) or a draw from the softmax of the (processed) logits with a
 * seeded generator, so a given seed reproduces the same tokens. `Sampler` is the plain
 * temperature sampler; `TokenSampler` runs a request's logits processors (logits-processors.ts)
 * first.
 */
import { buildLogitsProcessors, type LogitsProcessorList, type ProcessorContext } from './logits-processors.js';
import { isGreedy, type SamplingParams } from './params.js';

/** xoshiro128** seeded through splitmix32: small, fast, and reproducible across platforms. */
export class Rng {
  private s = new Uint32Array(4);
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  /** Next 32 random bits. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }
  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    return ((this.nextU32() >>> 5) * 67108864 + (this.nextU32() >>> 6)) / 9007199254740992;
  }
}

/** A seeded generator of uniform numbers in [0, 1) (tests and benchmarks draw their data from it). */
export function seededUniform(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

export class Sampler {
  private readonly rng: Rng;
  constructor(
    readonly temperature: number,
    seed: number,
  ) {
    if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new RangeError(`temperature must be ≥ 0, got ${temperature}`);
    this.rng = new Rng(seed);
  }

  sample(logits: Float32Array): number {
    if (this.temperature === 0) return argmax(logits);
    return sampleCategorical(logits, this.rng, this.temperature);
  }
}

/**
 * One draw from softmax(scores / temperature) by inverse CDF with one uniform number from `rng`.
 * Tokens at −Infinity have probability zero and are never drawn.
 */
export function sampleCategorical(scores: Float32Array, rng: Rng, temperature = 1): number {
  let max = -Infinity;
  for (const v of scores) max = Math.max(max, v);
  const p = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    p[i] = Math.exp((scores[i]! - max) / temperature);
    sum += p[i]!;
  }
  let u = rng.next() * sum;
  for (let i = 0; i < p.length; i++) {
    u -= p[i]!;
    if (u < 0) return i;
  }
  return argmax(scores);
}

/** A 32-bit generator seed from any safe integer (the high bits are mixed in, not dropped). */
export function seedToU32(seed: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  return (lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0;
}

/** A fresh random seed (requests without `seed`). */
export function randomSeed(): number {
  return globalThis.crypto.getRandomValues(new Uint32Array(1))[0]!;
}

/**
 * A request's sampler: its logits processors, then greedy argmax (temperature ≈ 0) or a seeded
 * draw. It remembers the tokens it returned, which the penalties read. One per request: the
 * generator's state is the request's own, so batching never changes a seeded request's tokens.
 */
export class TokenSampler {
  readonly seed: number;
  readonly greedy: boolean;
  private readonly rng: Rng;
  private readonly processors: LogitsProcessorList;
  private readonly history: number[] = [];

  constructor(params: SamplingParams, opts: ProcessorContext = {}) {
    this.seed = params.seed == null ? randomSeed() : seedToU32(params.seed);
    this.rng = new Rng(this.seed);
    this.greedy = isGreedy(params);
    this.processors = buildLogitsProcessors(params, opts);
  }

  /** The next token from one row of logits (left unchanged). */
  sample(logits: Float32Array): number {
    const scores = this.processors.length > 0 ? logits.slice() : logits;
    this.processors.apply(scores, this.history);
    const token = this.greedy ? argmax(scores) : sampleCategorical(scores, this.rng);
    this.history.push(token);
    return token;
  }

  /** The tokens sampled so far. */
  get generated(): readonly number[] {
    return this.history;
  }
}
