/**
 * Token sampling: greedy (temperature 0) or temperature sampling from a seeded generator, so a
 * given seed reproduces the same tokens.
 */

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
    let max = -Infinity;
    for (const v of logits) max = Math.max(max, v);
    const p = new Float64Array(logits.length);
    let sum = 0;
    for (let i = 0; i < logits.length; i++) {
      p[i] = Math.exp((logits[i]! - max) / this.temperature);
      sum += p[i]!;
    }
    let u = this.rng.next() * sum;
    for (let i = 0; i < p.length; i++) {
      u -= p[i]!;
      if (u < 0) return i;
    }
    return argmax(logits);
  }
}
