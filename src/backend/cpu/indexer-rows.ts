/**
 * The CPU backend's indexerScores over its rows' sequences: one sequence (the WASM kernel, or the
 * TypeScript one when the key cache is not in the WASM heap), or several in one call (rowSeq). With
 * several, each sequence's keys are scanned once for its rows, exactly as a call for that sequence
 * alone would (its key count: its largest position + 1, at most nKeys), so every row's scores are
 * the same bit for bit; the WASM kernel does it in one call over all sequences.
 */
import { indexerScores, slotOf, type PageMap } from './kernels/indexer.js';
import { pickRows, seqGroups, type RowPages } from './row-pages.js';
import type { CpuTensor } from './tensor.js';
import type { WasmRuntime } from './wasm/runtime.js';

/** Index scores [rows, nKeys]: q8 u8 [rows, heads, dim], w f32 [rows, heads], keys through `pages`. */
export function indexerScoresRows(
  rt: WasmRuntime | null, q8: Uint8Array, rows: number, heads: number, dim: number, w: Float32Array,
  kc: CpuTensor, ks: CpuTensor, pages: RowPages, nKeys: number, positions: Int32Array,
): Float32Array {
  const wasm = rt && kc.ptr !== undefined && ks.ptr !== undefined && dim % 16 === 0 ? rt : null;
  if (!pages.rowSeq) return oneSequence(wasm, q8, rows, heads, dim, w, kc, ks, pages.maps[0]!, nKeys, positions);
  const groups = seqGroups(pages, rows);
  const multi = wasm ? wasmMulti(wasm, q8, rows, heads, dim, w, kc, ks, groups, nKeys, positions) : null;
  if (multi) return multi;
  const out = new Float32Array(rows * nKeys).fill(-Infinity);
  for (const g of groups) {
    const gPos = pickRows(positions, 1, g.rows);
    const keys = Math.min(nKeys, Math.max(...gPos) + 1);
    if (keys <= 0) continue;
    const part = oneSequence(wasm, pickRows(q8, heads * dim, g.rows), g.rows.length, heads, dim, pickRows(w, heads, g.rows), kc, ks, g.map, keys, gPos);
    g.rows.forEach((r, i) => out.set(part.subarray(i * keys, (i + 1) * keys), r * nKeys));
  }
  return out;
}

/** One sequence's rows (WASM when given and the heap has room). */
function oneSequence(
  rt: WasmRuntime | null, q8: Uint8Array, rows: number, heads: number, dim: number, w: Float32Array,
  kc: CpuTensor, ks: CpuTensor, map: PageMap, nKeys: number, positions: Int32Array,
): Float32Array {
  if (rt) {
    const slots = new Int32Array(nKeys);
    for (let s = 0; s < nKeys; s++) slots[s] = slotOf(map, s);
    const out = rt.indexerScores(q8, rows, heads, dim, w, kc.ptr!, ks.ptr!, slots, positions);
    if (out) return out;
  }
  return indexerScores(q8, rows, heads, dim, w, kc.data as Uint8Array, ks.data as Float32Array, map, nKeys, positions);
}

/** Several sequences' rows in one WASM call (rows regrouped by sequence, then put back); null when the heap is full. */
function wasmMulti(
  rt: WasmRuntime, q8: Uint8Array, rows: number, heads: number, dim: number, w: Float32Array, kc: CpuTensor, ks: CpuTensor,
  groups: ReturnType<typeof seqGroups>, nKeys: number, positions: Int32Array,
): Float32Array | null {
  const order = new Int32Array(rows);
  const groupStart = new Int32Array(groups.length + 1);
  const slots = new Int32Array(groups.length * nKeys); // past a group's keys: slot 0, decoded at most
  groups.forEach((g, i) => {
    order.set(g.rows, groupStart[i]!);
    groupStart[i + 1] = groupStart[i]! + g.rows.length;
    let maxPos = -1;
    for (const r of g.rows) maxPos = Math.max(maxPos, positions[r]!);
    const keys = Math.min(nKeys, maxPos + 1);
    for (let s = 0; s < keys; s++) slots[i * nKeys + s] = slotOf(g.map, s);
  });
  const inOrder = order.every((r, i) => r === i);
  const pick = <T extends Uint8Array | Float32Array | Int32Array>(x: T, n: number) => (inOrder ? x : pickRows(x, n, order));
  const sorted = rt.indexerScoresMulti(pick(q8, heads * dim), rows, heads, dim, pick(w, heads), kc.ptr!, ks.ptr!, slots, groupStart, nKeys, pick(positions, 1));
  if (!sorted || inOrder) return sorted;
  const out = new Float32Array(rows * nKeys);
  order.forEach((r, i) => out.set(sorted.subarray(i * nKeys, (i + 1) * nKeys), r * nKeys));
  return out;
}
