/**
 * The attention core's kernels as the kernel lab runs them (lab.ts, `dsa bench gpu --sections core`)
 * at DeepSeek-V3.2's shapes, and the lab's checks of them against their CPU twins before timing:
 * every indexer variant and attention kernel on one sequence and on three sequences in one grid
 * (rowSeq over a 2-D block table), so a GPU with tensor cores checks the variants lavapipe cannot run.
 */
import { indexerScores } from '../../backend/cpu/kernels/indexer.js';
import { headMatmul } from '../../backend/cpu/kernels/linear.js';
import { headMatmulGpu } from '../../backend/webgpu/kernels/head-matmul.js';
import { mlaAttention } from '../../backend/cpu/kernels/mla-attention.js';
import type { GpuDevice } from '../../backend/webgpu/device.js';
import { indexerScoresGpu, type IndexerVariant } from '../../backend/webgpu/kernels/indexer.js';
import { indexerScoresFused2Gpu, type Fused2Config } from '../../backend/webgpu/kernels/indexer-fused2.js';
import { mlaAttentionGpu } from '../../backend/webgpu/kernels/mla-attention.js';
import { mlaAttentionMatrixGpu } from '../../backend/webgpu/kernels/mla-attention-matrix.js';
import { mlaAttentionMatrix2Gpu, type Matrix2Options } from '../../backend/webgpu/kernels/mla-attention-matrix2.js';
import { onePageTable, type GpuPages } from '../../backend/webgpu/kernels/pages.js';
import { Rng } from '../../generate/sampler.js';
import { encodeBf16 } from '../../numerics/bf16.js';

/** DeepSeek-V3.2's attention shapes (the peer's constants). */
export const H = 128;
export const R = 512;
export const DR = 64;
export const DV = 128;
export const HI = 64;
export const DI = 128;
export const TOPK = 2048;
export const PAGE = 64;

/** The attention kernels: f32 (mla-attention.ts), tensor cores (mla-attention-matrix.ts) and their second form (mla-attention-matrix2.ts). */
export type AttentionVariant = 'f32' | 'matrix' | 'matrix2';

/** MLA attention over a bf16 latent cache by one of the kernels (one sequence's table, or a 2-D one with rowSeq); `o` goes to 'matrix2'. */
export function attend(
  gpu: GpuDevice, v: AttentionVariant, qLat: GPUBuffer, qPe: GPUBuffer, latent: GPUBuffer, pages: GpuPages, positions: GPUBuffer,
  indices: GPUBuffer | null, k: number, nKeys: number, shape: { rows: number; heads: number; r: number; dr: number }, scale: number, o: Matrix2Options = {},
): GPUBuffer {
  const a = { qLat, qPe, latent, format: 'bf16' as const, pages, positions, indices, k, nKeys, shape, scale };
  if (v === 'matrix2') return mlaAttentionMatrix2Gpu(gpu, a, o);
  if (v === 'matrix') return mlaAttentionMatrixGpu(gpu, a);
  return mlaAttentionGpu(gpu, a);
}

/** n small integers in −4..4 from a seeded generator (exact in every type the kernels take). */
function smallInts(n: number, seed: number): Int8Array {
  const r = new Rng(seed);
  return Int8Array.from({ length: n }, () => Math.floor(r.next() * 9) - 4);
}

/**
 * The checks' caches: one sequence of 300 keys (rows at positions 299 and 170), or (`multi`) three
 * sequences of 300, 130 and 200 keys whose pages are interleaved over one pool, four rows of them in
 * mixed order, all in one grid (rowSeq) and compared with the CPU twin run on each sequence alone.
 */
interface CheckLayout {
  tables: number[][];
  poolPages: number;
  rowSeq: number[];
  positions: Int32Array;
  nKeys: number;
  multi: boolean;
}

function checkLayout(multi: boolean): CheckLayout {
  if (!multi) return { tables: [[0, 3, 1, 4, 2]], poolPages: 5, rowSeq: [0, 0], positions: Int32Array.of(299, 170), nKeys: 300, multi };
  const pool = Array.from({ length: 13 }, (_, i) => (i * 5) % 13);
  return { tables: [pool.slice(0, 5), pool.slice(5, 8), pool.slice(8, 12)], poolPages: 13, rowSeq: [1, 0, 2, 0], positions: Int32Array.of(129, 299, 199, 170), nKeys: 300, multi };
}

/** The layout's block table on the GPU (a 2-D one with rowSeq when multi). */
function checkPages(gpu: GpuDevice, l: CheckLayout): GpuPages {
  const up = (a: Int32Array) => gpu.buffer(a.byteLength, a);
  if (!l.multi) return onePageTable(up(Int32Array.from(l.tables[0]!)), l.tables[0]!.length, PAGE);
  const maxPages = Math.max(...l.tables.map((t) => t.length));
  const table = new Int32Array(l.tables.length * maxPages).fill(-1);
  l.tables.forEach((t, s) => table.set(t, s * maxPages));
  return { table: up(table), nPages: maxPages, pageSize: PAGE, rowSeq: up(Int32Array.from(l.rowSeq)), seqs: l.tables.length };
}

/** Rows idx of a [*, width] array. */
function takeRows<A extends Float32Array | Int32Array | Uint8Array>(a: A, width: number, idx: number[]): A {
  const out = new (a.constructor as new (n: number) => A)(idx.length * width);
  idx.forEach((t, j) => out.set(a.subarray(t * width, (t + 1) * width), j * width));
  return out;
}

/**
 * A CPU twin run on each sequence alone (`run(table, rows)` → [rows, width_s]), its rows put back
 * in place: [rows, width], fill past width_s.
 */
function perSequence(l: CheckLayout, width: number, fill: number, run: (table: Int32Array, idx: number[]) => { out: Float32Array; width: number }): Float32Array {
  const want = new Float32Array(l.rowSeq.length * width).fill(fill);
  l.tables.forEach((table, s) => {
    const idx = l.rowSeq.flatMap((q, t) => (q === s ? [t] : []));
    if (idx.length === 0) return;
    const { out, width: ws } = run(Int32Array.from(table), idx);
    idx.forEach((t, j) => want.set(out.subarray(j * ws, (j + 1) * ws), t * width));
  });
  return want;
}

/**
 * An attention variant against the CPU twin (bf16 latents, sparse with −1 entries and dense); max
 * error ÷ max |output|. 'matrix2' is checked with its default splits and with runs of 2 tiles (also
 * without prefetch).
 */
export async function checkAttention(gpu: GpuDevice, v: AttentionVariant, multi: boolean): Promise<number> {
  const l = checkLayout(multi);
  const rows = l.rowSeq.length;
  const k = 96;
  const slots = l.poolPages * PAGE;
  const gen = smallInts(rows * H * (R + DR) + slots * (R + DR) + rows * k, 11);
  let at = 0;
  const take = (n: number) => gen.subarray(at, (at += n));
  const qLat = Float32Array.from(take(rows * H * R), (x) => x / 16);
  const qPe = Float32Array.from(take(rows * H * DR), (x) => x / 16);
  const lat = encodeBf16(Float32Array.from(take(slots * (R + DR)), (x) => x / 4));
  const indices = Int32Array.from(take(rows * k), (x, i) => (x === -4 ? -1 : (i * 37) % (l.positions[Math.floor(i / k)]! + 1)));
  const scale = 1 / Math.sqrt(192);
  const up = (a: ArrayBufferView) => gpu.buffer(a.byteLength, a);
  let worst = 0;
  for (const sparse of [true, false]) {
    const want = perSequence(l, H * R, 0, (table, idx) => ({
      out: mlaAttention(
        takeRows(qLat, H * R, idx), takeRows(qPe, H * DR, idx), { format: 'bf16', data: lat }, R + DR, { table, pageSize: PAGE }, takeRows(l.positions, 1, idx),
        sparse ? takeRows(indices, k, idx) : null, sparse ? k : 0, { rows: idx.length, heads: H, r: R, dr: DR }, scale,
      ),
      width: H * R,
    }));
    for (const o of v === 'matrix2' ? [{}, { tilesPerSplit: 2 }, { tilesPerSplit: 2, prefetch: false }] : [{}]) {
      const out = attend(
        gpu, v, up(qLat), up(qPe), up(lat), checkPages(gpu, l), up(l.positions), sparse ? up(indices) : null, sparse ? k : 0, l.nKeys, { rows, heads: H, r: R, dr: DR }, scale, o,
      );
      const got = new Float32Array(await gpu.read(out, want.length * 4));
      worst = Math.max(worst, errOverScale(got, want));
    }
  }
  return worst;
}

/**
 * An indexer variant against the CPU twin at the real head shape (max error ÷ its row's max
 * |score|; a wrong mask counts as ∞); a failing variant also reports where and what it computed,
 * for diagnosis (flat indices into [rows, nKeys]).
 */
export async function checkIndexer(
  gpu: GpuDevice, variant: IndexerVariant | Fused2Config, multi: boolean, subnormalKeys = false,
): Promise<{ maxErrOverScale: number; sample?: Record<string, number[]> }> {
  const l = checkLayout(multi);
  const rows = l.rowSeq.length;
  const slots = l.poolPages * PAGE;
  const r = smallInts(rows * HI * DI + slots * DI + rows * HI + slots, 7);
  let at = 0;
  const take = (n: number) => r.subarray(at, (at += n));
  const code = (v: number): number => {
    const c = ((v + 4) * 29) & 0xff; // spread over the codes, NaN (0x7f, 0xff) avoided
    return (c & 0x7f) === 0x7f ? c ^ 1 : c;
  };
  const q8 = Uint8Array.from(take(rows * HI * DI), code);
  // With subnormalKeys every key code is an e4m3 subnormal (±m·2⁻⁹) or zero, so every score is made
  // of them: a kernel that flushed them to zero (an f16 path without denormals) fails plainly.
  const kc = Uint8Array.from(take(slots * DI), (v, i) => (subnormalKeys ? ((v + 4) % 8) | (i % 3 === 0 ? 0x80 : 0) : code(v * 3)));
  const w = Float32Array.from(take(rows * HI), (v) => v / 4);
  const kScale = Float32Array.from(take(slots), (v) => 0.1 + (v + 4) / 8);
  const nKeys = l.nKeys;
  const want = perSequence(l, nKeys, -Infinity, (table, idx) => {
    const n = Math.min(nKeys, table.length * PAGE);
    return { out: indexerScores(takeRows(q8, HI * DI, idx), idx.length, HI, DI, takeRows(w, HI, idx), kc, kScale, { table, pageSize: PAGE }, n, takeRows(l.positions, 1, idx)), width: n };
  });
  const up = (a: ArrayBufferView) => gpu.buffer(a.byteLength, a);
  const { table, nPages, rowSeq, seqs } = checkPages(gpu, l);
  const args = {
    q8: up(q8), w: up(w), kCache: up(kc), kScale: up(kScale), table, tableLength: nPages, pageSize: PAGE, rowSeq, seqs,
    positions: up(l.positions), rows, heads: HI, dim: DI, nKeys,
  };
  let out: GPUBuffer;
  if (typeof variant === 'string') out = indexerScoresGpu(gpu, { ...args, variant });
  else {
    // A 'matrix-fused2' form of the lab's sweep, by its config.
    out = gpu.buffer(rows * nKeys * 4);
    indexerScoresFused2Gpu(gpu, args, out, variant, rowSeq ? { rowSeq, tableStride: nPages, seqs: seqs ?? 1 } : null);
  }
  const got = new Float32Array(await gpu.read(out, rows * nKeys * 4));
  let worst = 0;
  let worstAt = 0;
  for (let t = 0; t < rows; t++) {
    let scale = 0;
    for (let i = t * nKeys; i < (t + 1) * nKeys; i++) if (want[i] !== -Infinity) scale = Math.max(scale, Math.abs(want[i]!));
    for (let i = t * nKeys; i < (t + 1) * nKeys; i++) {
      const e = want[i] === -Infinity ? (got[i] === -Infinity ? 0 : Infinity) : Math.abs(got[i]! - want[i]!) / scale;
      if (!(e <= worst)) [worst, worstAt] = [e, i];
    }
  }
  if (worst <= 1e-4) return { maxErrOverScale: worst };
  const pick = (a: ArrayLike<number>, from: number) => Array.from({ length: 4 }, (_, i) => a[from + i]!).filter((x) => x !== undefined);
  return { maxErrOverScale: worst, sample: { worstAt: [worstAt], got: pick(got, worstAt), want: pick(want, worstAt), got0: pick(got, 0), want0: pick(want, 0), got64: pick(got, 64), want64: pick(want, 64) } };
}

/** Max |got − want| ÷ max |want|. */
function errOverScale(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let max = 0;
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    max = Math.max(max, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
  }
  return err / max;
}

/**
 * The per-head output matmul (w_uv) against its CPU twin at the real shape, 16 rows (the batched
 * step's) and one: max error ÷ the output's max |value|.
 */
export async function checkHeadMatmul(gpu: GpuDevice): Promise<number> {
  let worst = 0;
  for (const rows of [16, 1]) {
    const x = Float32Array.from(smallInts(rows * H * R, 21), (v) => v / 8);
    const w = Float32Array.from(smallInts(H * DV * R, 22), (v) => v / 16);
    const want = headMatmul(x, rows, H, R, w, DV, true);
    const out = headMatmulGpu(gpu, gpu.buffer(x.byteLength, x), gpu.buffer(w.byteLength, w), rows, H, R, DV, true);
    const got = new Float32Array(await gpu.read(out, want.length * 4));
    worst = Math.max(worst, errOverScale(got, want));
  }
  return worst;
}
