/**
 * Lightning-indexer scores on WebGPU:
 * out[t, s] = kScale[slot(s)] · Σ_h w[t, h] · ReLU(q8[t, h] · k8[slot(s)]) for s ≤ positions[t],
 * −∞ after (and for every s when positions[t] < 0), over the paged FP8 key cache with
 * slot(s) = table[s / pageSize] · pageSize + s % pageSize — or, with rowSeq (several sequences in
 * one grid), through row rowSeq[t] of a 2-D table (pages.ts); keys without a slot there give −∞.
 * The e4m3 codes (queries and keys, four
 * per u32 word, any dim) are decoded in the shader by bit arithmetic; 0x7f / 0xff (NaN) are not
 * special-cased (they decode as ±480), inputs are assumed NaN-free like the CPU path.
 *
 * The variants below and in indexer-direct.ts / indexer-fused.ts / indexer-fused2.ts (a kernel lab, as in llm.c), all with the CPU twin indexerScores
 * (cpu/kernels/indexer.ts, which sums in float64 and rounds once), so results agree to f32
 * rounding, not bit for bit:
 *  - 'naive': one invocation per (key, query), q and k decoded per product. Any shape.
 *  - 'tiled': 64 keys × one query row per workgroup; the query is decoded once per workgroup into
 *    shared memory, 16 heads × 32 dims at a time, and each key's codes are read once per 16 heads.
 *    Any shape, core WebGPU only (16 KiB of shared memory is enough).
 *  - 'matrix': tensor cores through the subgroup-matrix feature: e4m3 → f16 is exact, so the
 *    products are exact and accumulate in f32 (f16×f16 → f32 16×16×16). The query row [H, D] and a
 *    tile of keys [KT, D] are decoded into shared memory; the scores of the tile [H, KT] come from
 *    (H/16)·(KT/16) matrix products spread over the subgroups; then ReLU, the head weights and the
 *    key scale. Needs shader-f16, subgroup-matrix f16→f32 16×16×16, a fixed subgroup size, and
 *    H and D multiples of 16.
 */
import { GpuError, type GpuDevice } from '../device.js';
import { E4M3_DECODE_WGSL } from './wgsl.js';
import { indexerDirectAvailable, indexerDirectFits, indexerScoresDirectGpu } from './indexer-direct.js';
import { indexerFusedAvailable, indexerScoresFusedGpu, type FusedOptions } from './indexer-fused.js';
import { FUSED2_CONFIGS, indexerFused2Available, indexerScoresFused2Gpu, type Fused2Config } from './indexer-fused2.js';
import { PAGE_FIELDS, PAGES_WGSL, pageParams, pagesOfArgs, rowSeqBinding } from './pages.js';

/** The bindings every variant shares (in this order); each declares its own Params. */
const BINDINGS = /* wgsl */ `
@group(0) @binding(0) var<storage, read> q8: array<u32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> kCache: array<u32>;
@group(0) @binding(3) var<storage, read> kScale: array<f32>;
@group(0) @binding(4) var<storage, read> table: array<i32>;
@group(0) @binding(5) var<storage, read> rowSeq: array<i32>;
@group(0) @binding(6) var<storage, read> positions: array<i32>;
@group(0) @binding(7) var<storage, read_write> out: array<u32>; // f32 bits (−∞ is not a WGSL constant)
@group(0) @binding(8) var<uniform> p: Params;
${PAGES_WGSL}`;

export const INDEXER_WGSL = /* wgsl */ `
struct Params { rows: u32, heads: u32, dim: u32, nKeys: u32, groupsX: u32, ${PAGE_FIELDS} }
${BINDINGS}

fn e4m3(c: u32) -> f32 {
  let e = (c >> 3u) & 0xfu;
  let m = c & 7u;
  var v: f32;
  if (e == 0u) {
    v = f32(m) * (1.0 / 512.0);
  } else {
    v = bitcast<f32>(((e + 120u) << 23u) | (m << 20u));
  }
  return select(v, -v, (c & 0x80u) != 0u);
}

fn qCode(i: u32) -> u32 { return (q8[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu; }
fn kCode(i: u32) -> u32 { return (kCache[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu; }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let s = (wg.x + wg.z * p.groupsX) * 64u + lid.x;
  let t = wg.y;
  if (s >= p.nKeys || t >= p.rows) { return; }
  var slot = NO_SLOT;
  if (i32(s) <= positions[t]) { slot = slotOf(t, s); }
  if (slot == NO_SLOT) {
    out[t * p.nKeys + s] = 0xff800000u;
    return;
  }
  let kBase = slot * p.dim;
  var score = 0.0;
  for (var h = 0u; h < p.heads; h++) {
    let qBase = (t * p.heads + h) * p.dim;
    var d = 0.0;
    for (var j = 0u; j < p.dim; j++) {
      d += e4m3(qCode(qBase + j)) * e4m3(kCode(kBase + j));
    }
    if (d > 0.0) { score += w[t * p.heads + h] * d; }
  }
  out[t * p.nKeys + s] = bitcast<u32>(kScale[slot] * score);
}
`;

export interface IndexerGpuArgs {
  /** u8 codes [rows, heads, dim], packed 4 per u32. */
  q8: GPUBuffer;
  /** f32 [rows, heads]. */
  w: GPUBuffer;
  /** u8 codes [slots, dim], packed 4 per u32. */
  kCache: GPUBuffer;
  /** f32 [slots]. */
  kScale: GPUBuffer;
  /**
   * i32 block table: the pages of one sequence, tableLength entries; or with rowSeq [seqs,
   * tableLength], row t using table row rowSeq[t] (every sequence of a step in one grid).
   */
  table: GPUBuffer;
  tableLength: number;
  pageSize: number;
  /** i32 [rows]: each row's table row; absent / null with a one-sequence table. */
  rowSeq?: GPUBuffer | null;
  /** Rows of a 2-D table (with rowSeq). */
  seqs?: number;
  /** i32 [rows]. */
  positions: GPUBuffer;
  rows: number;
  heads: number;
  dim: number;
  nKeys: number;
  /** Kernel variant (default: the fastest the device offers for the shape). */
  variant?: IndexerVariant;
}

/**
 * Runs the indexer score kernel; returns f32 [rows, nKeys]. With rowSeq, nKeys is the width of the
 * output (the longest sequence) and row t scores its own sequence's keys 0..min(positions[t], nKeys−1).
 */
export function indexerScoresGpu(gpu: GpuDevice, a: IndexerGpuArgs): GPUBuffer {
  if (a.nKeys > a.tableLength * a.pageSize) {
    throw new GpuError(`indexerScoresGpu: ${a.nKeys} keys exceed the sequence's ${a.tableLength} cache pages of ${a.pageSize}`);
  }
  const out = gpu.buffer(a.rows * a.nKeys * 4);
  if (a.rows === 0 || a.nKeys === 0) return out;
  const variant = indexerVariantOf(gpu, a);
  const pages = pagesOfArgs(a);
  if (variant === 'matrix-direct') {
    indexerScoresDirectGpu(gpu, a, out);
    return out;
  }
  const multi = a.rowSeq ? { rowSeq: a.rowSeq, tableStride: a.tableLength, seqs: a.seqs ?? 1 } : null;
  const fused = FUSED_VARIANTS[variant];
  if (fused) {
    indexerScoresFusedGpu(gpu, a, out, fused, multi);
    return out;
  }
  const fused2 = fused2Config(variant);
  if (fused2) {
    indexerScoresFused2Gpu(gpu, a, out, fused2, multi);
    return out;
  }
  if (variant === 'matrix') {
    const m = matrixPlan(gpu, a.heads, a.dim);
    if (!m) throw new GpuError(`indexerScoresGpu: the 'matrix' variant needs subgroup-matrix f16 tensor cores and H, D multiples of 16 (H ${a.heads}, D ${a.dim})`);
    const tiles = Math.ceil(a.nKeys / m.kt);
    // Enough workgroups to fill the GPU; each takes a run of tiles, so the query is decoded once per run.
    const perGroup = Math.max(1, Math.min(16, Math.floor((tiles * a.rows) / 512)));
    const groups = Math.ceil(tiles / perGroup);
    const [gx, gz] = gpu.grid(groups);
    const params = gpu.uniforms(Uint32Array.of(a.rows, a.nKeys, gx, perGroup, ...pageParams(pages)));
    gpu.dispatch(m.code, [a.q8, a.w, a.kCache, a.kScale, a.table, rowSeqBinding(pages), a.positions, out, params], [gx, a.rows, gz]);
    return out;
  }
  const [gx, gz] = gpu.grid(a.nKeys, 64);
  const params = gpu.uniforms(Uint32Array.of(a.rows, a.heads, a.dim, a.nKeys, gx, ...pageParams(pages)));
  const code = variant === 'tiled' ? INDEXER_TILED_WGSL : INDEXER_WGSL;
  gpu.dispatch(code, [a.q8, a.w, a.kCache, a.kScale, a.table, rowSeqBinding(pages), a.positions, out, params], [gx, a.rows, gz]);
  return out;
}

export const INDEXER_VARIANTS = ['naive', 'tiled', 'matrix', 'matrix-direct', 'matrix-fused', 'matrix-fused-4', 'fused-scalar', ...(Object.keys(FUSED2_CONFIGS) as (keyof typeof FUSED2_CONFIGS)[])] as const;
export type IndexerVariant = (typeof INDEXER_VARIANTS)[number];

/** The config of a 'matrix-fused2…' variant (indexer-fused2.ts), or undefined for the others. */
function fused2Config(v: IndexerVariant): Fused2Config | undefined {
  return (FUSED2_CONFIGS as Record<string, Fused2Config>)[v];
}

/** The fused kernel's forms (indexer-fused.ts): tensor-core products, or plain f32 ones (its twin for GPUs without tensor cores). */
const FUSED_VARIANTS: Partial<Record<IndexerVariant, FusedOptions>> = {
  'matrix-fused': {},
  'matrix-fused-4': { subgroups: 4 },
  'fused-scalar': { scalar: true },
};

/**
 * The variant a call runs: its own, or the best for its shape. With several sequences (rowSeq)
 * 'matrix-direct' decodes each row's keys apart; where that scratch would not fit one storage
 * binding, the shared-memory tensor-core kernel takes the call ('tiled' where that cannot run).
 */
export function indexerVariantOf(gpu: GpuDevice, a: IndexerGpuArgs): IndexerVariant {
  const v = a.variant ?? bestIndexerVariant(gpu, a.heads, a.dim, a.nKeys);
  if (v === 'matrix-direct' && a.rowSeq && !indexerDirectFits(gpu, a)) return matrixPlan(gpu, a.heads, a.dim) ? 'matrix' : 'tiled';
  return v;
}

/**
 * The fastest variant the device offers for H heads of D dims and nKeys keys: on the H200 the
 * fused tensor-core kernels at every length where their shape fits — 'matrix-fused2'
 * (indexer-fused2.ts: 0.25 ms at 16 × 128K keys), else 'matrix-fused' (indexer-fused.ts: 0.6 ms;
 * 2.4 for 'matrix-direct', docs/benchmarks.md); else 'matrix-direct' from 16K keys, 'matrix'
 * below; the f32 'tiled' kernel without tensor cores.
 */
export function bestIndexerVariant(gpu: GpuDevice, heads: number, dim: number, nKeys = 0): IndexerVariant {
  if (indexerFused2Available(gpu, heads, dim, FUSED2_CONFIGS['matrix-fused2'])) return 'matrix-fused2';
  if (indexerFusedAvailable(gpu, heads, dim)) return 'matrix-fused';
  if (nKeys >= 16384 && indexerDirectAvailable(gpu, heads, dim)) return 'matrix-direct';
  return matrixPlan(gpu, heads, dim) ? 'matrix' : 'tiled';
}

/** Whether a variant runs on this device for H heads of D dims (the tensor-core ones need the feature). */
export function indexerVariantAvailable(gpu: GpuDevice, v: IndexerVariant, heads: number, dim: number): boolean {
  if (v === 'matrix') return matrixPlan(gpu, heads, dim) !== null;
  if (v === 'matrix-direct') return indexerDirectAvailable(gpu, heads, dim);
  const fused = FUSED_VARIANTS[v];
  if (fused) return indexerFusedAvailable(gpu, heads, dim, fused);
  const fused2 = fused2Config(v);
  if (fused2) return indexerFused2Available(gpu, heads, dim, fused2);
  return true;
}

// ---- 'tiled' ----

export const INDEXER_TILED_WGSL = /* wgsl */ `
struct Params { rows: u32, heads: u32, dim: u32, nKeys: u32, groupsX: u32, ${PAGE_FIELDS} }
${BINDINGS}

const HC: u32 = 16u; // heads per chunk
const DC: u32 = 32u; // dims per chunk
var<workgroup> qS: array<f32, 512>; // [HC][DC]

${E4M3_DECODE_WGSL}
fn code(words: ptr<storage, array<u32>, read>, i: u32) -> u32 { return ((*words)[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu; }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = wg.y;
  let s = (wg.x + wg.z * p.groupsX) * 64u + lid.x;
  var slot = NO_SLOT;
  if (s < p.nKeys && i32(s) <= positions[t]) { slot = slotOf(t, s); }
  let live = slot != NO_SLOT;
  let kSlot = select(0u, slot, live);
  let kBase = kSlot * p.dim;
  var score = 0.0;
  for (var h0 = 0u; h0 < p.heads; h0 += HC) {
    var acc: array<f32, 16>;
    for (var h = 0u; h < HC; h++) { acc[h] = 0.0; }
    for (var d0 = 0u; d0 < p.dim; d0 += DC) {
      workgroupBarrier();
      for (var i = lid.x; i < HC * DC; i += 64u) {
        let h = h0 + i / DC;
        let d = d0 + i % DC;
        var v = 0.0;
        if (h < p.heads && d < p.dim) { v = e4m3(code(&q8, (t * p.heads + h) * p.dim + d)); }
        qS[i] = v;
      }
      workgroupBarrier();
      if (live) {
        let n = min(DC, p.dim - d0);
        for (var j = 0u; j < n; j++) {
          let kv = e4m3(code(&kCache, kBase + d0 + j));
          for (var h = 0u; h < HC; h++) { acc[h] += qS[h * DC + j] * kv; }
        }
      }
    }
    for (var h = 0u; h < HC; h++) {
      if (h0 + h < p.heads && acc[h] > 0.0) { score += w[t * p.heads + h0 + h] * acc[h]; }
    }
  }
  if (s < p.nKeys && t < p.rows) {
    out[t * p.nKeys + s] = select(0xff800000u, bitcast<u32>(kScale[kSlot] * score), live);
  }
}
`;

// ---- 'matrix' ----

interface MatrixPlan {
  code: string;
  /** Keys per tile. */
  kt: number;
}

/** The 'matrix' kernel for H heads of D dims on this device, or null when it cannot run there. */
function matrixPlan(gpu: GpuDevice, heads: number, dim: number): MatrixPlan | null {
  return gpu.generated(`indexer-matrix ${heads}x${dim}`, () => makeMatrixPlan(gpu, heads, dim));
}

function makeMatrixPlan(gpu: GpuDevice, heads: number, dim: number): MatrixPlan | null {
  if (!gpu.features.has('shader-f16') || !gpu.hasSubgroupMatrix('f16', 'f32', 16, 16, 16)) return null;
  const sg = gpu.subgroupSize;
  if (sg === null || heads % 16 !== 0 || dim % 16 !== 0) return null;
  const nsg = 4;
  const limit = gpu.limits.maxComputeWorkgroupStorageSize;
  // Largest tile of keys (a multiple of 16, at most 64) whose shared arrays fit.
  for (let kt = 64; kt >= 16; kt -= 16) {
    const bytes = heads * dim * 2 + kt * dim * 2 + heads * kt * 4 + kt * 4;
    const tasks = (heads / 16) * (kt / 16);
    if (bytes <= limit && tasks % nsg === 0) return { code: matrixWgsl(heads, dim, kt, sg, nsg), kt };
  }
  return null;
}

function matrixWgsl(H: number, D: number, KT: number, SG: number, NSG: number): string {
  const tasksPerSubgroup = ((H / 16) * (KT / 16)) / NSG;
  return /* wgsl */ `
enable f16;
enable chromium_experimental_subgroup_matrix;
struct Params { rows: u32, nKeys: u32, groupsX: u32, perGroup: u32, ${PAGE_FIELDS} }
${BINDINGS}

const H: u32 = ${H}u;
const D: u32 = ${D}u;
const KT: u32 = ${KT}u;
const WGS: u32 = ${SG * NSG}u;
const NONE: u32 = NO_SLOT;
var<workgroup> qS: array<f16, ${H * D}>;   // the query row [H][D]
var<workgroup> kS: array<f16, ${KT * D}>;  // the tile's keys, transposed: [D][KT]
var<workgroup> sS: array<f32, ${H * KT}>;  // q·k [H][KT]
var<workgroup> slotS: array<u32, ${KT}>;

${E4M3_DECODE_WGSL}
fn f16of(c: u32) -> f16 { return f16(e4m3(c & 0xffu)); }

@compute @workgroup_size(${SG * NSG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let t = wg.y;
  let group = wg.x + wg.z * p.groupsX;
  let pos = positions[t];
  for (var i = li; i < H * D / 4u; i += WGS) {
    let word = q8[t * H * D / 4u + i];
    qS[4u * i] = f16of(word);
    qS[4u * i + 1u] = f16of(word >> 8u);
    qS[4u * i + 2u] = f16of(word >> 16u);
    qS[4u * i + 3u] = f16of(word >> 24u);
  }
  for (var tile = 0u; tile < p.perGroup; tile++) {
    let key0 = (group * p.perGroup + tile) * KT;
    if (key0 >= p.nKeys) { break; }
    if (i32(key0) > pos) {
      // A tile past the row's position (a shorter sequence of the batch): no keys, no products.
      if (li < KT && key0 + li < p.nKeys) { out[t * p.nKeys + key0 + li] = 0xff800000u; }
      continue;
    }
    if (li < KT) {
      let s = key0 + li;
      var slot = NONE;
      if (s < p.nKeys && i32(s) <= pos) { slot = slotOf(t, s); }
      slotS[li] = slot;
    }
    workgroupBarrier();
    // The tile's codes: invocations take consecutive keys (conflict-free shared stores); all of an
    // invocation's loads are issued before any is decoded.
    for (var i0 = 0u; i0 < KT * D / 4u; i0 += 16u * WGS) {
      var words: array<u32, 16>;
      for (var j = 0u; j < 16u; j++) {
        let i = i0 + j * WGS + li;
        let slot = slotS[i % KT];
        var word = 0u;
        if (i < KT * D / 4u && slot != NONE) { word = kCache[slot * (D / 4u) + i / KT]; }
        words[j] = word;
      }
      for (var j = 0u; j < 16u; j++) {
        let i = i0 + j * WGS + li;
        if (i < KT * D / 4u) {
          let key = i % KT;
          let d = 4u * (i / KT);
          let word = words[j];
          kS[d * KT + key] = f16of(word);
          kS[(d + 1u) * KT + key] = f16of(word >> 8u);
          kS[(d + 2u) * KT + key] = f16of(word >> 16u);
          kS[(d + 3u) * KT + key] = f16of(word >> 24u);
        }
      }
    }
    workgroupBarrier();
    for (var j = 0u; j < ${tasksPerSubgroup}u; j++) {
      let task = sg * ${tasksPerSubgroup}u + j;
      let hb = task / (KT / 16u);
      let kb = task % (KT / 16u);
      var acc = subgroup_matrix_result<f32, 16, 16>();
      for (var d = 0u; d < D; d += 16u) {
        let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&qS, hb * 16u * D + d, false, D);
        let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kS, d * KT + kb * 16u, false, KT);
        acc = subgroupMatrixMultiplyAccumulate(a, b, acc);
      }
      subgroupMatrixStore(&sS, hb * 16u * KT + kb * 16u, acc, false, KT);
    }
    workgroupBarrier();
    if (li < KT) {
      let s = key0 + li;
      let slot = slotS[li];
      if (s < p.nKeys) {
        var bits = 0xff800000u;
        if (slot != NONE) {
          var score = 0.0;
          for (var h = 0u; h < H; h++) {
            let d = sS[h * KT + li];
            if (d > 0.0) { score += w[t * H + h] * d; }
          }
          bits = bitcast<u32>(kScale[slot] * score);
        }
        out[t * p.nKeys + s] = bits;
      }
    }
    workgroupBarrier();
  }
}
`;
}
