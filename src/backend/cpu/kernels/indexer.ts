/**
 * Lightning-indexer scores on the CPU (plain TypeScript):
 * I(t, s) = kScale[s] · Σ_h w[t, h] · ReLU(q8[t, h] · k8[s]) over the FP8 key cache, causal.
 * The e4m3 products are exact in float64, so each q·k dot product is exact before the ReLU.
 */
import { E4M3_TABLE } from '../../../numerics/e4m3.js';
import { dot, dot4 } from './linear.js';

export interface PageMap {
  table: Int32Array;
  pageSize: number;
}

/**
 * The page map of each row of an op: one map for every row (one sequence), or a function of the
 * row (several sequences in one call: row t's sequence's map).
 */
export type RowPageMap = PageMap | ((t: number) => PageMap);

/** Row t → its page map. */
export function pageOfRow(pages: RowPageMap): (t: number) => PageMap {
  return typeof pages === 'function' ? pages : () => pages;
}

/** Cache slot of sequence position p. */
export function slotOf(pages: PageMap, p: number): number {
  const page = Math.floor(p / pages.pageSize);
  if (page >= pages.table.length) throw new RangeError(`position ${p} is beyond the sequence's ${pages.table.length} cache pages`);
  return pages.table[page] * pages.pageSize + (p % pages.pageSize);
}

export function indexerScores(
  q8: Uint8Array,
  rows: number,
  heads: number,
  dim: number,
  w: Float32Array,
  kCache: Uint8Array,
  kScale: Float32Array,
  pages: PageMap,
  nKeys: number,
  positions: Int32Array,
): Float32Array {
  // Decode the keys once per call (exact float32 values of the codes) and the queries.
  const keys = new Float32Array(nKeys * dim);
  const ks = new Float32Array(nKeys);
  for (let s = 0; s < nKeys; s++) {
    const slot = slotOf(pages, s);
    for (let j = 0; j < dim; j++) keys[s * dim + j] = E4M3_TABLE[kCache[slot * dim + j]];
    ks[s] = kScale[slot];
  }
  const q = new Float32Array(q8.length);
  for (let i = 0; i < q8.length; i++) q[i] = E4M3_TABLE[q8[i]];

  const out = new Float32Array(rows * nKeys).fill(-Infinity);
  const acc = new Float64Array(4);
  for (let t = 0; t < rows; t++) {
    const count = Math.min(positions[t], nKeys - 1) + 1;
    let s = 0;
    // Four keys at a time share each query load.
    for (; s + 4 <= count; s += 4) {
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let h = 0; h < heads; h++) {
        const wh = w[t * heads + h];
        dot4(q, (t * heads + h) * dim, keys, s * dim, (s + 1) * dim, (s + 2) * dim, (s + 3) * dim, dim, acc);
        if (acc[0] > 0) a0 += wh * acc[0];
        if (acc[1] > 0) a1 += wh * acc[1];
        if (acc[2] > 0) a2 += wh * acc[2];
        if (acc[3] > 0) a3 += wh * acc[3];
      }
      out[t * nKeys + s] = ks[s] * Math.fround(a0);
      out[t * nKeys + s + 1] = ks[s + 1] * Math.fround(a1);
      out[t * nKeys + s + 2] = ks[s + 2] * Math.fround(a2);
      out[t * nKeys + s + 3] = ks[s + 3] * Math.fround(a3);
    }
    for (; s < count; s++) {
      let score = 0;
      for (let h = 0; h < heads; h++) {
        const d = dot(q, (t * heads + h) * dim, keys, s * dim, dim);
        if (d > 0) score += w[t * heads + h] * d;
      }
      out[t * nKeys + s] = ks[s] * Math.fround(score);
    }
  }
  return out;
}
