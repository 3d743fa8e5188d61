/**
 * The int8 lightning indexer on the CPU — the twin of the WebGPU kernels in
 * backend/webgpu/kernels/indexer-int8.ts, and the CPU backend's `requantInt8` and
 * `indexerScoresInt8`.
 *
 * The keys and the queries are the FP8 indexer's, re-quantized to int8 with one scale per vector:
 * q = round(127 · v / max|v|) (halves away from zero, so q(−v) = −q(v)), and the vector's scale
 * becomes scaleIn · max|v| / 127 in float32, as the GPU computes it. The score of key s for row t is
 * I(t, s) = kScale[s] · Σ_h wq[t, h] · ReLU(qI8[t, h] · kI8[s]): integer dot products (exact), the
 * rest in float64, rounded to float32 once.
 */
import { E4M3_TABLE } from '../../../numerics/e4m3.js';
import { slotOf, type PageMap } from './indexer.js';
import { pickRows, seqGroups, type RowPages } from '../row-pages.js';

/**
 * Re-quantizes `rows` rows of `dim` e4m3 codes to int8: codes (two's-complement bytes) and
 * scale[r] = fround(scaleIn[r] · fround(max|v| / 127)) (0 for a zero row).
 */
export function requantInt8Rows(codes: Uint8Array, scaleIn: Float32Array, rows: number, dim: number): { q: Uint8Array; s: Float32Array } {
  const q = new Int8Array(rows * dim);
  const s = new Float32Array(rows);
  for (let r = 0; r < rows; r++) s[r] = Math.fround(scaleIn[r]! * Math.fround(requantInt8Row(codes, r * dim, dim, q) / 127));
  return { q: new Uint8Array(q.buffer), s };
}

/**
 * One row: the e4m3 values of codes[at .. at + dim) as int8 into q[at ..]: round(127 · v / max|v|),
 * halves away from zero (so q(−v) = −q(v)); returns max|v| (0: a zero row, all 0).
 */
export function requantInt8Row(codes: Uint8Array, at: number, dim: number, q: Int8Array): number {
  let amax = 0;
  for (let d = 0; d < dim; d++) amax = Math.max(amax, Math.abs(E4M3_TABLE[codes[at + d]!]!));
  if (amax === 0) return 0;
  for (let d = 0; d < dim; d++) {
    const x = (127 * E4M3_TABLE[codes[at + d]!]!) / amax;
    q[at + d] = Math.sign(x) * Math.round(Math.abs(x));
  }
  return amax;
}

/** One sequence's rows: scores [rows, nKeys] against its first keys through `map` (−∞ past each row's position). */
function oneSequence(
  qI8: Int8Array, rows: number, heads: number, dim: number, wq: Float32Array,
  kc: Int8Array, ks: Float32Array, map: PageMap, nKeys: number, positions: Int32Array,
): Float32Array {
  const out = new Float32Array(rows * nKeys).fill(-Infinity);
  const last = Math.min(nKeys, Math.max(0, ...Array.from(positions, (p) => p + 1)));
  for (let s = 0; s < last; s++) {
    const slot = slotOf(map, s);
    const k = slot * dim;
    for (let t = 0; t < rows; t++) {
      if (s > positions[t]!) continue;
      let score = 0;
      for (let h = 0; h < heads; h++) {
        const q = (t * heads + h) * dim;
        let dot = 0;
        for (let d = 0; d < dim; d++) dot += qI8[q + d]! * kc[k + d]!;
        if (dot > 0) score += wq[t * heads + h]! * dot;
      }
      out[t * nKeys + s] = ks[slot]! * score;
    }
  }
  return out;
}

/** Index scores [rows, nKeys]: qI8 int8 [rows, heads, dim], wq f32 [rows, heads], int8 keys through `pages` (one or several sequences). */
export function indexerScoresInt8Rows(
  qI8: Uint8Array, rows: number, heads: number, dim: number, wq: Float32Array,
  kc: Uint8Array, ks: Float32Array, pages: RowPages, nKeys: number, positions: Int32Array,
): Float32Array {
  const keys = new Int8Array(kc.buffer, kc.byteOffset, kc.length);
  if (!pages.rowSeq) return oneSequence(new Int8Array(qI8.buffer, qI8.byteOffset, qI8.length), rows, heads, dim, wq, keys, ks, pages.maps[0]!, nKeys, positions);
  const out = new Float32Array(rows * nKeys).fill(-Infinity);
  for (const g of seqGroups(pages, rows)) {
    const q = pickRows(qI8, heads * dim, g.rows);
    const part = oneSequence(new Int8Array(q.buffer), g.rows.length, heads, dim, pickRows(wq, heads, g.rows), keys, ks, g.map, nKeys, pickRows(positions, 1, g.rows));
    g.rows.forEach((r, i) => out.set(part.subarray(i * nKeys, (i + 1) * nKeys), r * nKeys));
  }
  return out;
}
