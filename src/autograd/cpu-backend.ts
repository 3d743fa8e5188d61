/**
 * TrainBackend on the CPU in plain TypeScript: row-major loops ordered so the innermost loop runs
 * over contiguous memory (dot products of rows for x·wᵀ, axpy rows for the two backward products).
 * Sums run in float64 (JavaScript numbers) and are stored as float32.
 */
import type { AttentionDims, IndexerDims, TrainBackend } from './backend.js';
import type { KeySets } from './keysets.js';

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let j = 0;
  for (; j + 2 <= n; j += 2) {
    s0 += a[ao + j]! * b[bo + j]!;
    s1 += a[ao + j + 1]! * b[bo + j + 1]!;
  }
  if (j < n) s0 += a[ao + j]! * b[bo + j]!;
  return s0 + s1;
}

/** y[yo ..] += c · x[xo ..] over n elements. */
function axpy(c: number, x: Float32Array, xo: number, y: Float32Array, yo: number, n: number): void {
  for (let j = 0; j < n; j++) y[yo + j] += c * x[xo + j]!;
}

export class CpuTrainBackend implements TrainBackend {
  readonly name: string = 'cpu';

  matmulNT(x: Float32Array, w: Float32Array, m: number, k: number, n: number): Float32Array {
    const y = new Float32Array(m * n);
    for (let i = 0; i < m; i++) {
      const xo = i * k;
      const yo = i * n;
      let o = 0;
      // Four outputs at a time share each load of x.
      for (; o + 4 <= n; o += 4) {
        const w0 = o * k;
        const w1 = w0 + k;
        const w2 = w1 + k;
        const w3 = w2 + k;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let j = 0; j < k; j++) {
          const v = x[xo + j]!;
          s0 += v * w[w0 + j]!;
          s1 += v * w[w1 + j]!;
          s2 += v * w[w2 + j]!;
          s3 += v * w[w3 + j]!;
        }
        y[yo + o] = s0;
        y[yo + o + 1] = s1;
        y[yo + o + 2] = s2;
        y[yo + o + 3] = s3;
      }
      for (; o < n; o++) y[yo + o] = dot(x, xo, w, o * k, k);
    }
    return y;
  }

  matmulNNAcc(dy: Float32Array, w: Float32Array, m: number, n: number, k: number, dx: Float32Array): void {
    // dx_i += Σ_o dy[i, o] · w_o, four rows of w per pass over dx_i.
    for (let i = 0; i < m; i++) {
      const xo = i * k;
      const go = i * n;
      let o = 0;
      for (; o + 4 <= n; o += 4) {
        const g0 = dy[go + o]!;
        const g1 = dy[go + o + 1]!;
        const g2 = dy[go + o + 2]!;
        const g3 = dy[go + o + 3]!;
        if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0) continue;
        const w0 = o * k;
        const w1 = w0 + k;
        const w2 = w1 + k;
        const w3 = w2 + k;
        for (let j = 0; j < k; j++) dx[xo + j] += g0 * w[w0 + j]! + g1 * w[w1 + j]! + g2 * w[w2 + j]! + g3 * w[w3 + j]!;
      }
      for (; o < n; o++) {
        const g = dy[go + o]!;
        if (g !== 0) axpy(g, w, o * k, dx, xo, k);
      }
    }
  }

  matmulTNAcc(dy: Float32Array, x: Float32Array, m: number, n: number, k: number, dw: Float32Array): void {
    // dw_o += Σ_i dy[i, o] · x_i, four rows of x per pass over dw_o.
    let i = 0;
    for (; i + 4 <= m; i += 4) {
      const x0 = i * k;
      const x1 = x0 + k;
      const x2 = x1 + k;
      const x3 = x2 + k;
      for (let o = 0; o < n; o++) {
        const g0 = dy[i * n + o]!;
        const g1 = dy[(i + 1) * n + o]!;
        const g2 = dy[(i + 2) * n + o]!;
        const g3 = dy[(i + 3) * n + o]!;
        if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0) continue;
        const wo = o * k;
        for (let j = 0; j < k; j++) dw[wo + j] += g0 * x[x0 + j]! + g1 * x[x1 + j]! + g2 * x[x2 + j]! + g3 * x[x3 + j]!;
      }
    }
    for (; i < m; i++) {
      for (let o = 0; o < n; o++) {
        const g = dy[i * n + o]!;
        if (g !== 0) axpy(g, x, i * k, dw, o * k, k);
      }
    }
  }

  attentionForward(q: Float32Array, kv: Float32Array, kPe: Float32Array, keys: KeySets, d: AttentionDims): { out: Float32Array; probs: Float32Array } {
    const { heads: hN, dn, dr, dv, scale } = d;
    const rows = keys.offsets.length - 1;
    const out = new Float32Array(rows * hN * dv);
    const probs = new Float32Array(keys.keys.length * hN);
    for (let t = 0; t < rows; t++) {
      const b = keys.offsets[t]!;
      const e = keys.offsets[t + 1]!;
      for (let h = 0; h < hN; h++) {
        const qo = (t * hN + h) * (dn + dr);
        let max = -Infinity;
        for (let i = b; i < e; i++) {
          const s = keys.keys[i]!;
          const sc = (dot(q, qo, kv, (s * hN + h) * (dn + dv), dn) + dot(q, qo + dn, kPe, s * dr, dr)) * scale;
          probs[i * hN + h] = sc;
          if (sc > max) max = sc;
        }
        let sum = 0;
        for (let i = b; i < e; i++) {
          const p = Math.exp(probs[i * hN + h]! - max);
          probs[i * hN + h] = p;
          sum += p;
        }
        const oo = (t * hN + h) * dv;
        for (let i = b; i < e; i++) {
          const p = probs[i * hN + h]! / sum;
          probs[i * hN + h] = p;
          axpy(p, kv, (keys.keys[i]! * hN + h) * (dn + dv) + dn, out, oo, dv);
        }
      }
    }
    return { out, probs };
  }

  attentionBackward(
    q: Float32Array,
    kv: Float32Array,
    kPe: Float32Array,
    keys: KeySets,
    d: AttentionDims,
    probs: Float32Array,
    dOut: Float32Array,
    dq: Float32Array | null,
    dkv: Float32Array | null,
    dkPe: Float32Array | null,
  ): void {
    const { heads: hN, dn, dr, dv, scale } = d;
    const rows = keys.offsets.length - 1;
    let dp = new Float64Array(64);
    for (let t = 0; t < rows; t++) {
      const b = keys.offsets[t]!;
      const e = keys.offsets[t + 1]!;
      if (e - b > dp.length) dp = new Float64Array(2 * (e - b));
      for (let h = 0; h < hN; h++) {
        const qo = (t * hN + h) * (dn + dr);
        const oo = (t * hN + h) * dv;
        let sum = 0;
        for (let i = b; i < e; i++) {
          const ko = (keys.keys[i]! * hN + h) * (dn + dv);
          const g = dot(dOut, oo, kv, ko + dn, dv);
          dp[i - b] = g;
          sum += probs[i * hN + h]! * g;
          if (dkv) axpy(probs[i * hN + h]!, dOut, oo, dkv, ko + dn, dv);
        }
        for (let i = b; i < e; i++) {
          const s = keys.keys[i]!;
          const ds = probs[i * hN + h]! * (dp[i - b]! - sum) * scale;
          if (ds === 0) continue;
          const ko = (s * hN + h) * (dn + dv);
          if (dq) {
            axpy(ds, kv, ko, dq, qo, dn);
            axpy(ds, kPe, s * dr, dq, qo + dn, dr);
          }
          if (dkv) axpy(ds, q, qo, dkv, ko, dn);
          if (dkPe) axpy(ds, q, qo + dn, dkPe, s * dr, dr);
        }
      }
    }
  }

  indexerForward(q: Float32Array, k: Float32Array, w: Float32Array, keys: KeySets, d: IndexerDims): { scores: Float32Array; dots: Float32Array } {
    const { heads: hN, dim } = d;
    const rows = keys.offsets.length - 1;
    const scores = new Float32Array(keys.keys.length);
    const dots = new Float32Array(keys.keys.length * hN);
    for (let t = 0; t < rows; t++) {
      for (let i = keys.offsets[t]!; i < keys.offsets[t + 1]!; i++) {
        const ko = keys.keys[i]! * dim;
        let score = 0;
        for (let h = 0; h < hN; h++) {
          const v = dot(q, (t * hN + h) * dim, k, ko, dim);
          dots[i * hN + h] = v;
          if (v > 0) score += w[t * hN + h]! * v;
        }
        scores[i] = score;
      }
    }
    return { scores, dots };
  }

  indexerBackward(
    q: Float32Array,
    k: Float32Array,
    w: Float32Array,
    keys: KeySets,
    d: IndexerDims,
    dots: Float32Array,
    dScores: Float32Array,
    dq: Float32Array | null,
    dk: Float32Array | null,
    dw: Float32Array | null,
  ): void {
    const { heads: hN, dim } = d;
    const rows = keys.offsets.length - 1;
    for (let t = 0; t < rows; t++) {
      for (let i = keys.offsets[t]!; i < keys.offsets[t + 1]!; i++) {
        const g = dScores[i]!;
        if (g === 0) continue;
        const ko = keys.keys[i]! * dim;
        for (let h = 0; h < hN; h++) {
          const v = dots[i * hN + h]!;
          if (!(v > 0)) continue;
          if (dw) dw[t * hN + h] += g * v;
          const c = g * w[t * hN + h]!;
          if (dq) axpy(c, k, ko, dq, (t * hN + h) * dim, dim);
          if (dk) axpy(c, q, (t * hN + h) * dim, dk, ko, dim);
        }
      }
    }
  }
}
