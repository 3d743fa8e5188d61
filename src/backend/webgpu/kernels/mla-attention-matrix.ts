/**
 * MLA attention (absorbed, MQA form) on tensor cores through WebGPU's subgroup-matrix feature, for
 * f32 and bf16 latent caches: the same contract as mla-attention.ts (its CPU twin is mlaAttention,
 * cpu/kernels/mla-attention.ts), computed as two gathered GEMMs in the split-KV manner of flash
 * decoding. Five kernels per call:
 *  1. prep: the query rows [qLat | qPe] as f16 (its tensor-core operand).
 *  1b. entries: the cache slot of every entry of every row (selected positions, or 0..pos when
 *     dense; through the block table, or through row rowSeq[t] of a 2-D one: pages.ts), NONE where
 *     there is none — read by both GEMM passes, so every sequence of a step goes in one grid.
 *  2. scores: per tile of 64 entries (selected positions, or 0..pos when dense) and 64 heads,
 *     S = scale · Q · Lᵀ with f16 × f16 → f32 products (the tile's latent rows are gathered through
 *     the block table into shared memory, 64 dims at a time); S is written out and each head's
 *     maximum is combined across tiles by an atomic max on an order-preserving key.
 *  3. values: per split of the entries, 64 heads and 128 output dims, O += P · V with
 *     P = exp(S − max) rounded to f16 and V the latent rows' first r dims as f16; the split's O and
 *     Σ P go to partial buffers. The maximum is known before this pass, so no running rescale.
 *  4. combine: out = Σ O / Σ P over the splits.
 * Rounding to f16 (queries, latents, probabilities) makes it agree with the f32 kernel to about
 * 1e-3 of the output scale, as bf16 engines do; `mlaMatrixAvailable` says when it can run:
 * shader-f16, subgroup-matrix f16 → f32 16×16×16, a fixed subgroup size of 32, heads a multiple of
 * 64, r a multiple of 128, r + dr a multiple of 64, latent 'f32' or 'bf16'.
 */
import type { LatentFormat } from '../../backend.js';
import { GpuError, type GpuDevice, type UniformParams } from '../device.js';
import { BF16_UNPACK_WGSL, ORDER_KEY_WGSL } from './wgsl.js';
import type { MlaGpuArgs, MlaGpuShape } from './mla-attention.js';
import { PAGE_FIELDS, PAGES_WGSL, pageParams, rowSeqBinding, type GpuPages } from './pages.js';

/** Scores held at once, bytes (rows of a call are processed in groups under this). */
const SCORE_BUDGET = 256 * 1024 * 1024;

export function mlaMatrixAvailable(gpu: GpuDevice, shape: MlaGpuShape, format: LatentFormat): boolean {
  return (
    (format === 'f32' || format === 'bf16') &&
    gpu.features.has('shader-f16') &&
    gpu.hasSubgroupMatrix('f16', 'f32', 16, 16, 16) &&
    gpu.subgroupSize === 32 &&
    shape.heads % 64 === 0 &&
    shape.r % 128 === 0 &&
    (shape.r + shape.dr) % 64 === 0 &&
    gpu.limits.maxStorageBuffersPerShaderStage >= 8
  );
}

const PARAMS = /* wgsl */ `
struct Params {
  rows: u32, heads: u32, r: u32, dr: u32,
  width: u32, format: u32, k: u32, E: u32,
  splits: u32, tilesPerSplit: u32, scale: f32, rowOffset: u32,
  total: u32, groupsX: u32,
}`;

/** Entry slots of the rows of a group: slots[tl · E + j] for row rowOffset + tl (see mlaEntrySlotsGpu). */
const ENTRIES_WGSL = /* wgsl */ `
struct Params { k: u32, E: u32, rowOffset: u32, total: u32, groupsX: u32, ${PAGE_FIELDS} }
@group(0) @binding(0) var<storage, read> table: array<i32>;
@group(0) @binding(1) var<storage, read> rowSeq: array<i32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> indices: array<i32>;
@group(0) @binding(4) var<storage, read_write> slots: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;
${PAGES_WGSL}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 256u + lid.x;
  if (i >= p.total) { return; }
  let t = p.rowOffset + i / p.E;
  let j = i % p.E;
  var q = i32(j);
  if (p.k > 0u) { q = indices[t * p.k + j]; }
  var slot = NO_SLOT;
  if (q >= 0 && q <= positions[t]) { slot = slotOf(t, u32(q)); }
  slots[i] = slot;
}
`;

/** The cache slot of entry j of the group's row tl, or NONE (−1 entry, beyond the row's position or its pages). */
const ENTRY_WGSL = /* wgsl */ `
const NONE: u32 = 0xffffffffu;
fn entrySlot(tl: u32, j: u32) -> u32 {
  if (j >= p.E) { return NONE; }
  return slots[tl * p.E + j];
}
${BF16_UNPACK_WGSL}
fn latVal(e: u32) -> f32 {
  if (p.format == 0u) { return bitcast<f32>(latent[e]); }
  return bf16Unpack(latent[e >> 1u], e);
}`;

const PREP_WGSL = /* wgsl */ `
enable f16;
${PARAMS}
@group(0) @binding(0) var<storage, read> qLat: array<f32>;
@group(0) @binding(1) var<storage, read> qPe: array<f32>;
@group(0) @binding(2) var<storage, read_write> qh: array<f16>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 256u + lid.x;
  if (i >= p.total) { return; }
  let row = p.r + p.dr;
  let th = i / row;
  let c = i % row;
  qh[i] = f16(select(qPe[th * p.dr + c - p.r], qLat[th * p.r + c], c < p.r));
}
`;

function scoresWgsl(H: number, ROW: number): string {
  return /* wgsl */ `
enable f16;
enable chromium_experimental_subgroup_matrix;
${PARAMS}
@group(0) @binding(0) var<storage, read> qh: array<f16>;
@group(0) @binding(1) var<storage, read> latent: array<u32>;
@group(0) @binding(2) var<storage, read> slots: array<u32>;
@group(0) @binding(3) var<storage, read_write> S: array<u32>; // f32 bits, −∞ for no entry
@group(0) @binding(4) var<storage, read_write> mKey: array<atomic<u32>>;
@group(0) @binding(5) var<uniform> p: Params;
${ENTRY_WGSL}
${ORDER_KEY_WGSL}
const H: u32 = ${H}u;
const ROW: u32 = ${ROW}u;
var<workgroup> slotS: array<u32, 64>;
var<workgroup> latS: array<f16, 4096>; // [64 dims][64 entries]
var<workgroup> sS: array<f32, 4096>;   // [64 heads][64 entries]

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let e0 = wg.x * 64u;
  let h0 = wg.y * 64u;
  let tl = wg.z;
  let t = p.rowOffset + tl;
  if (li < 64u) { slotS[li] = entrySlot(tl, e0 + li); }
  var acc: array<subgroup_matrix_result<f32, 16, 16>, 4>;
  for (var j = 0u; j < 4u; j++) { acc[j] = subgroup_matrix_result<f32, 16, 16>(); }
  for (var dc = 0u; dc < ROW; dc += 64u) {
    workgroupBarrier();
    // Invocations take consecutive entries (conflict-free stores); loads are issued 16 at a time
    // before they are converted.
    for (var i0 = 0u; i0 < 4096u; i0 += 2048u) {
      var vals: array<f32, 16>;
      for (var j = 0u; j < 16u; j++) {
        let i = i0 + j * 128u + li;
        let d = i / 64u;
        let slot = slotS[i % 64u];
        var v = 0.0;
        if (slot != NONE && dc + d < ROW) { v = latVal(slot * p.width + dc + d); }
        vals[j] = v;
      }
      for (var j = 0u; j < 16u; j++) { latS[i0 + j * 128u + li] = f16(vals[j]); }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 64u; kk += 16u) {
      if (dc + kk < ROW) {
        let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&qh, (t * H + h0 + sg * 16u) * ROW + dc + kk, false, ROW);
        for (var eb = 0u; eb < 4u; eb++) {
          let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&latS, kk * 64u + eb * 16u, false, 64u);
          acc[eb] = subgroupMatrixMultiplyAccumulate(a, b, acc[eb]);
        }
      }
    }
  }
  for (var eb = 0u; eb < 4u; eb++) { subgroupMatrixStore(&sS, sg * 16u * 64u + eb * 16u, acc[eb], false, 64u); }
  workgroupBarrier();
  let h = li / 2u;
  let half = (li % 2u) * 32u;
  var mx = 0.0;
  var any = false;
  for (var j = 0u; j < 32u; j++) {
    let e = half + j;
    if (e0 + e < p.E) {
      var bits = 0xff800000u;
      if (slotS[e] != NONE) {
        let s = sS[h * 64u + e] * p.scale;
        bits = bitcast<u32>(s);
        mx = select(s, max(mx, s), any);
        any = true;
      }
      S[(tl * H + h0 + h) * p.E + e0 + e] = bits;
    }
  }
  if (any) { atomicMax(&mKey[t * H + h0 + h], orderKey(bitcast<u32>(mx))); }
}
`;
}

function valuesWgsl(H: number): string {
  return /* wgsl */ `
enable f16;
enable chromium_experimental_subgroup_matrix;
${PARAMS}
@group(0) @binding(0) var<storage, read> latent: array<u32>;
@group(0) @binding(1) var<storage, read> slots: array<u32>;
@group(0) @binding(2) var<storage, read> S: array<u32>;
@group(0) @binding(3) var<storage, read> mKey: array<u32>;
@group(0) @binding(4) var<storage, read_write> oPart: array<f32>;
@group(0) @binding(5) var<storage, read_write> lPart: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
${ENTRY_WGSL}
const H: u32 = ${H}u;
var<workgroup> slotS: array<u32, 64>;
var<workgroup> mS: array<f32, 64>;
var<workgroup> pS: array<f16, 4096>; // [64 heads][64 entries]
var<workgroup> vS: array<f16, 8192>; // [64 entries][128 dims]

fn fromOrderKey(key: u32) -> f32 {
  if (key == 0u) { return 0.0; } // no entry: nothing is exponentiated
  return bitcast<f32>(select(~key, key & 0x7fffffffu, (key & 0x80000000u) != 0u));
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let split = wg.x;
  let chunks = p.r / 128u;
  let h0 = (wg.y / chunks) * 64u;
  let c0 = (wg.y % chunks) * 128u;
  let tl = wg.z;
  let t = p.rowOffset + tl;
  if (li < 64u) { mS[li] = fromOrderKey(mKey[t * H + h0 + li]); }
  var acc: array<subgroup_matrix_result<f32, 16, 16>, 8>;
  for (var j = 0u; j < 8u; j++) { acc[j] = subgroup_matrix_result<f32, 16, 16>(); }
  var lsum = 0.0;
  for (var tt = 0u; tt < p.tilesPerSplit; tt++) {
    let e0 = (split * p.tilesPerSplit + tt) * 64u;
    if (e0 >= p.E) { break; }
    workgroupBarrier();
    if (li < 64u) { slotS[li] = entrySlot(tl, e0 + li); }
    workgroupBarrier();
    for (var i0 = 0u; i0 < 4096u; i0 += 2048u) {
      var vals: array<f32, 16>;
      for (var j = 0u; j < 16u; j++) {
        let i = i0 + j * 128u + li;
        var s = -3.0e38;
        if (slotS[i % 64u] != NONE) { s = bitcast<f32>(S[(tl * H + h0 + i / 64u) * p.E + e0 + i % 64u]); }
        vals[j] = s;
      }
      for (var j = 0u; j < 16u; j++) {
        let i = i0 + j * 128u + li;
        pS[i] = f16(select(0.0, exp(vals[j] - mS[i / 64u]), vals[j] > -1.0e38));
      }
    }
    for (var i0 = 0u; i0 < 8192u; i0 += 2048u) {
      var vals: array<f32, 16>;
      for (var j = 0u; j < 16u; j++) {
        let i = i0 + j * 128u + li;
        let slot = slotS[i / 128u];
        var v = 0.0;
        if (slot != NONE) { v = latVal(slot * p.width + c0 + i % 128u); }
        vals[j] = v;
      }
      for (var j = 0u; j < 16u; j++) { vS[i0 + j * 128u + li] = f16(vals[j]); }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 64u; kk += 16u) {
      let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&pS, sg * 16u * 64u + kk, false, 64u);
      for (var db = 0u; db < 8u; db++) {
        let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&vS, kk * 128u + db * 16u, false, 128u);
        acc[db] = subgroupMatrixMultiplyAccumulate(a, b, acc[db]);
      }
    }
    if (c0 == 0u) {
      let h = li / 2u;
      let half = (li % 2u) * 32u;
      for (var j = 0u; j < 32u; j++) { lsum += f32(pS[h * 64u + half + j]); }
    }
  }
  let base = ((tl * p.splits + split) * H + h0 + sg * 16u) * p.r + c0;
  for (var db = 0u; db < 8u; db++) { subgroupMatrixStore(&oPart, base + db * 16u, acc[db], false, p.r); }
  if (c0 == 0u) { lPart[((tl * p.splits + split) * H + h0) * 2u + li] = lsum; }
}
`;
}

const COMBINE_WGSL = /* wgsl */ `
${PARAMS}
@group(0) @binding(0) var<storage, read> oPart: array<f32>;
@group(0) @binding(1) var<storage, read> lPart: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 256u + lid.x;
  if (i >= p.total) { return; }
  let c = i % p.r;
  let th = i / p.r; // tl * heads + h
  let tl = th / p.heads;
  let h = th % p.heads;
  var o = 0.0;
  var l = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let at = (tl * p.splits + s) * p.heads + h;
    o += oPart[at * p.r + c];
    l += lPart[2u * at] + lPart[2u * at + 1u];
  }
  out[(p.rowOffset * p.heads + th) * p.r + c] = select(0.0, o / l, l > 0.0);
}
`;

/**
 * The cache slot of entry j of rows rowOffset..rowOffset+n−1 into slots u32 [n, E]: the selected
 * position indices[t, j] (k > 0) or position j (dense), through the row's block table; NONE
 * (0xffffffff) for −1, a position past the row's own or one without a page.
 */
export function mlaEntrySlotsGpu(
  gpu: GpuDevice, pages: GpuPages, positions: GPUBuffer, indices: GPUBuffer | null, k: number, E: number, rowOffset: number, n: number, slots: GPUBuffer,
): void {
  if (n * E === 0) return;
  const g = gpu.grid(n * E, 256);
  const params = gpu.uniforms(Uint32Array.of(indices ? k : 0, E, rowOffset, n * E, g[0], ...pageParams(pages)));
  // Dense: the kernel does not read indices; the positions stand in for the binding.
  gpu.dispatch(ENTRIES_WGSL, [pages.table, rowSeqBinding(pages), positions, indices ?? positions, slots, params], g);
}

/**
 * MLA attention on tensor cores (MlaGpuArgs of mla-attention.ts; a dense call's grid covers nKeys
 * entries). Returns f32 [rows, heads, r].
 */
export function mlaAttentionMatrixGpu(gpu: GpuDevice, a: MlaGpuArgs): GPUBuffer {
  const { qLat, qPe, latent, format, pages, positions, indices, k, nKeys, shape, scale } = a;
  const { rows, heads, r, dr } = shape;
  if (!mlaMatrixAvailable(gpu, shape, format)) throw new GpuError(`mlaAttentionMatrixGpu: not available for H ${heads}, r ${r}, dr ${dr}, ${format} latents on this device`);
  const out = gpu.buffer(rows * heads * r * 4);
  const E = indices ? k : nKeys;
  if (rows === 0 || E === 0) return out;
  const row = r + dr;
  const width = row; // elements per cache row (bf16: two per word)
  const tiles = Math.ceil(E / 64);
  const tilesPerSplit = Math.max(1, Math.ceil(tiles / 64));
  const splits = Math.ceil(tiles / tilesPerSplit);
  const group = Math.max(1, Math.min(rows, Math.floor(SCORE_BUDGET / (heads * E * 4))));
  const params = (rowOffset: number, n: number, total: number, groupsX: number): UniformParams => {
    const b = new ArrayBuffer(56);
    const u = new Uint32Array(b);
    u.set([n, heads, r, dr, width, format === 'f32' ? 0 : 1, indices ? k : 0, E, splits, tilesPerSplit]);
    new Float32Array(b)[10] = scale;
    u.set([rowOffset, total, groupsX], 11);
    return gpu.uniforms(u);
  };
  const qh = gpu.scratch('mla.q', rows * heads * row * 2);
  const qTotal = rows * heads * row;
  const qg = gpu.grid(qTotal, 256);
  gpu.dispatch(PREP_WGSL, [qLat, qPe, qh, params(0, rows, qTotal, qg[0])], qg);
  const mKey = gpu.buffer(rows * heads * 4); // zeros: the running maxima start below every key
  const scoresCode = gpu.generated(`mla-scores ${heads} ${row}`, () => scoresWgsl(heads, row));
  const valuesCode = gpu.generated(`mla-values ${heads}`, () => valuesWgsl(heads));
  const combineCode = COMBINE_WGSL;
  for (let t0 = 0; t0 < rows; t0 += group) {
    const n = Math.min(group, rows - t0);
    const S = gpu.scratch('mla.scores', n * heads * E * 4);
    const oPart = gpu.scratch('mla.o', n * splits * heads * r * 4);
    const lPart = gpu.scratch('mla.l', n * splits * heads * 2 * 4);
    const slots = gpu.scratch('mla.slots', n * E * 4);
    mlaEntrySlotsGpu(gpu, pages, positions, indices, k, E, t0, n, slots);
    gpu.dispatch(scoresCode, [qh, latent, slots, S, mKey, params(t0, n, 0, 0)], [tiles, heads / 64, n]);
    gpu.dispatch(valuesCode, [latent, slots, S, mKey, oPart, lPart, params(t0, n, 0, 0)], [splits, (heads / 64) * (r / 128), n]);
    const total = n * heads * r;
    const g = gpu.grid(total, 256);
    gpu.dispatch(combineCode, [oPart, lPart, out, params(t0, n, total, g[0])], g);
  }
  gpu.release(mKey);
  return out;
}
