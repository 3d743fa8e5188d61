/**
 * MLA attention in MQA (absorbed) form on the CPU, dense causal or sparse over selected entries.
 * Each cached entry is [c_kv (r) | k_rope (dr)] and is shared by every head: score_h(s) =
 * (qLat_h · c_kv[s] + qPe_h · k_rope[s]) · scale; output_h = Σ_s softmax_s · c_kv[s].
 * A float32 cache is read in place; a bf16 or fp8 cache has each attended row decoded to float32
 * once per query (not once per head).
 */
import { dot } from './linear.js';
import { pageOfRow, slotOf, type RowPageMap } from './indexer.js';
import { decodeLatentRows, type LatentData } from './latent.js';

export interface MlaShape {
  rows: number;
  heads: number;
  /** kv_lora_rank */
  r: number;
  /** qk_rope_head_dim */
  dr: number;
}

export function mlaAttention(
  qLat: Float32Array,
  qPe: Float32Array,
  latent: LatentData,
  /** Elements per row of the latent cache tensor (r + dr, or the fp8 row bytes). */
  latentWidth: number,
  /** Row t's sequence's page map (one map for all rows when they belong to one sequence). */
  pages: RowPageMap,
  positions: Int32Array,
  indices: Int32Array | null,
  width: number,
  shape: MlaShape,
  scale: number,
): Float32Array {
  const { rows, heads, r, dr } = shape;
  const row = r + dr;
  const out = new Float32Array(rows * heads * r);
  let slots = new Int32Array(64);
  let bases = new Int32Array(64);
  let scores = new Float64Array(64);
  const acc = new Float64Array(r);
  // Rows are read in place from a float32 cache, else from this per-query buffer of decoded rows.
  const direct = latent.format === 'f32' ? latent.data : null;
  let decoded = new Float32Array(direct ? 0 : 64 * row);
  const pageOf = pageOfRow(pages);
  for (let t = 0; t < rows; t++) {
    const map = pageOf(t);
    // The cache slots this query attends: its selection, or every position up to its own.
    let n = 0;
    const count = indices ? width : positions[t] + 1;
    if (slots.length < count) {
      slots = new Int32Array(count);
      bases = new Int32Array(count);
      scores = new Float64Array(count);
    }
    for (let j = 0; j < count; j++) {
      const p = indices ? indices[t * width + j] : j;
      if (p < 0) continue;
      if (p > positions[t]) throw new RangeError(`mlaAttention: query at position ${positions[t]} selects future position ${p}`);
      slots[n++] = slotOf(map, p);
    }
    let src: Float32Array;
    if (direct) {
      src = direct;
      for (let j = 0; j < n; j++) bases[j] = slots[j] * latentWidth;
    } else {
      if (decoded.length < n * row) decoded = new Float32Array(Math.max(n, 2 * decoded.length / row) * row);
      decodeLatentRows(latent, slots, n, r, dr, latentWidth, decoded);
      src = decoded;
      for (let j = 0; j < n; j++) bases[j] = j * row;
    }
    for (let h = 0; h < heads; h++) {
      const qL = (t * heads + h) * r;
      const qP = (t * heads + h) * dr;
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        const base = bases[j];
        const s = (Math.fround(dot(qLat, qL, src, base, r)) + Math.fround(dot(qPe, qP, src, base + r, dr))) * scale;
        scores[j] = s;
        if (s > max) max = s;
      }
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const e = Math.exp(scores[j] - max);
        scores[j] = e;
        sum += e;
      }
      acc.fill(0);
      for (let j = 0; j < n; j++) {
        const p = scores[j] / sum;
        const base = bases[j];
        for (let c = 0; c < r; c++) acc[c] += p * src[base + c];
      }
      out.set(acc, (t * heads + h) * r);
    }
  }
  return out;
}
