/**
 * MLA attention in MQA (absorbed) form on WebGPU, dense causal or sparse over selected entries,
 * for decode and prefill rows. Each cached entry is [c_kv (r) | k_rope (dr)], shared by every head:
 * score_h(s) = (qLat_h · c_kv[s] + qPe_h · k_rope[s]) · scale; out_h = Σ_s softmax_s · c_kv[s].
 *
 * One workgroup of 64 invocations per (query row, head). Entries are taken 64 at a time: each
 * invocation scores one entry of the tile (its slot from the block table), then every invocation
 * folds the tile into its running (max, sum) and its own output columns c = lid, lid + 64, ...
 * with the online (streaming) softmax, so any context length works in fixed memory.
 *
 * The latent cache is bound as u32 words in any LatentFormat: 'f32' (one value per word), 'bf16'
 * (two per word, little-endian: element e in the low half when e is even), or 'fp8' (bytes: e4m3
 * codes of c_kv, float32 scales per 128 values, then bf16 k_rope; see cpu/kernels/latent.ts).
 * Its CPU twin is mlaAttention (cpu/kernels/mla-attention.ts). Entries that are −1, beyond the
 * query's position or beyond the block table are skipped (the CPU twin throws on the latter two).
 * With rowSeq (pages.ts) the rows of several sequences go in one grid: row t's entries are
 * positions of sequence rowSeq[t], mapped through that row of a 2-D block table.
 */
import { LATENT_FP8_BLOCK, latentRowWidth, type LatentFormat } from '../../backend.js';
import { GpuError, type GpuDevice } from '../device.js';
import { BF16_UNPACK_WGSL } from './wgsl.js';
import { PAGE_FIELDS, PAGES_WGSL, pageParams, rowSeqBinding, type GpuPages } from './pages.js';

/** Most output columns per invocation: r ≤ 64 · MLA_MAX_COLS. */
const MLA_MAX_COLS = 16;

export const MLA_ATTENTION_WGSL = /* wgsl */ `
struct Params {
  rows: u32, heads: u32, r: u32, dr: u32,
  width: u32, format: u32, k: u32, groupsX: u32,
  scale: f32, ${PAGE_FIELDS},
}
@group(0) @binding(0) var<storage, read> qLat: array<f32>;
@group(0) @binding(1) var<storage, read> qPe: array<f32>;
@group(0) @binding(2) var<storage, read> latent: array<u32>;
@group(0) @binding(3) var<storage, read> table: array<i32>;
@group(0) @binding(4) var<storage, read> rowSeq: array<i32>;
@group(0) @binding(5) var<storage, read> positions: array<i32>;
@group(0) @binding(6) var<storage, read> indices: array<i32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;
${PAGES_WGSL}

const WG: u32 = 64u;
const MAX_COLS: u32 = ${MLA_MAX_COLS}u;
const FP8_BLOCK: u32 = ${LATENT_FP8_BLOCK}u;

var<workgroup> sScore: array<f32, 64>;
var<workgroup> sBase: array<u32, 64>;
var<workgroup> sCount: u32;

fn byteAt(b: u32) -> u32 {
  return (latent[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

${BF16_UNPACK_WGSL}
fn bf16At(e: u32) -> f32 { return bf16Unpack(latent[e >> 1u], e); }

fn e4m3(code: u32) -> f32 {
  let sign = select(1.0, -1.0, (code & 0x80u) != 0u);
  let ex = (code >> 3u) & 15u;
  let man = f32(code & 7u);
  if (ex == 15u && (code & 7u) == 7u) { return bitcast<f32>(0x7fc00000u | ((code & 0x80u) << 24u)); } // NaN (a runtime value)
  if (ex == 0u) { return sign * man * exp2(-9.0); }
  return sign * (1.0 + man / 8.0) * exp2(f32(ex) - 7.0);
}

// Value c (0 ≤ c < r + dr) of the cached row starting at element/byte 'base'.
fn value(base: u32, c: u32) -> f32 {
  if (p.format == 0u) { return bitcast<f32>(latent[base + c]); }
  if (p.format == 1u) { return bf16At(base + c); }
  let blocks = p.r / FP8_BLOCK;
  if (c < p.r) {
    let s = base + p.r + 4u * (c / FP8_BLOCK);
    let bits = byteAt(s) | (byteAt(s + 1u) << 8u) | (byteAt(s + 2u) << 16u) | (byteAt(s + 3u) << 24u);
    return e4m3(byteAt(base + c)) * bitcast<f32>(bits);
  }
  let b = base + p.r + 4u * blocks + 2u * (c - p.r);
  return bitcast<f32>((byteAt(b) | (byteAt(b + 1u) << 8u)) << 16u);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let th = wg.x + wg.y * p.groupsX;
  let valid = th < p.rows * p.heads;
  let t = min(th / p.heads, p.rows - 1u);
  let pos = positions[t];
  if (lid.x == 0u) {
    var count = 0u;
    if (valid) { count = select(u32(max(pos + 1, 0)), p.k, p.k > 0u); }
    sCount = count;
  }
  let count = workgroupUniformLoad(&sCount);
  let qL = th * p.r;
  let qP = th * p.dr;

  var m = -3.0e38;
  var l = 0.0;
  var acc: array<f32, MAX_COLS>;
  for (var i = 0u; i < MAX_COLS; i++) { acc[i] = 0.0; }

  for (var tile = 0u; tile < count; tile += WG) {
    // Score the tile's entry of this invocation.
    let j = tile + lid.x;
    var score = -1.0e38;
    var base = 0u;
    var ok = false;
    if (j < count) {
      var q = i32(j);
      if (p.k > 0u) { q = indices[t * p.k + j]; }
      if (q >= 0 && q <= pos) {
        let slot = slotOf(t, u32(q));
        base = slot * p.width;
        ok = slot != NO_SLOT;
      }
    }
    if (ok) {
      var a = 0.0;
      for (var c = 0u; c < p.r; c++) { a += qLat[qL + c] * value(base, c); }
      var b = 0.0;
      for (var c = 0u; c < p.dr; c++) { b += qPe[qP + c] * value(base, p.r + c); }
      score = (a + b) * p.scale;
    }
    sScore[lid.x] = select(-1.0e38, score, ok);
    sBase[lid.x] = select(0xffffffffu, base, ok);
    workgroupBarrier();

    // Fold the tile into the running softmax and this invocation's columns.
    let n = min(WG, count - tile);
    var tileMax = -3.0e38;
    for (var e = 0u; e < n; e++) {
      if (sBase[e] != 0xffffffffu) { tileMax = max(tileMax, sScore[e]); }
    }
    if (tileMax > -1.0e38) {
      let mNew = max(m, tileMax);
      let corr = exp(m - mNew);
      l *= corr;
      for (var i = 0u; i < MAX_COLS; i++) { acc[i] *= corr; }
      for (var e = 0u; e < n; e++) {
        let eb = sBase[e];
        if (eb == 0xffffffffu) { continue; }
        let w = exp(sScore[e] - mNew);
        l += w;
        for (var i = 0u; i < MAX_COLS; i++) {
          let c = lid.x + i * WG;
          if (c >= p.r) { break; }
          acc[i] += w * value(eb, c);
        }
      }
      m = mNew;
    }
    workgroupBarrier();
  }

  if (valid) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var i = 0u; i < MAX_COLS; i++) {
      let c = lid.x + i * WG;
      if (c >= p.r) { break; }
      out[th * p.r + c] = acc[i] * inv;
    }
  }
}
`;

export interface MlaGpuShape {
  rows: number;
  heads: number;
  /** kv_lora_rank */
  r: number;
  /** qk_rope_head_dim */
  dr: number;
}

/**
 * One MLA attention call, the arguments every attention kernel takes (mlaAttentionGpu, and the
 * tensor-core ones of mla-attention-matrix.ts / mla-attention-matrix2.ts).
 */
export interface MlaGpuArgs {
  /** f32 [rows, heads, r] and [rows, heads, dr]. */
  qLat: GPUBuffer;
  qPe: GPUBuffer;
  /** The cache [slots, latentRowWidth(format, r, dr)] as bytes. */
  latent: GPUBuffer;
  format: LatentFormat;
  pages: GpuPages;
  /** i32 [rows]. */
  positions: GPUBuffer;
  /** i32 [rows, k] (−1 = none), or null: dense causal attention over 0..positions[t]. */
  indices: GPUBuffer | null;
  k: number;
  /** The entries a dense call may attend (the largest position + 1; with rowSeq, of any row's sequence): the tensor-core kernels' grid. */
  nKeys: number;
  shape: MlaGpuShape;
  scale: number;
}

/**
 * Runs MLA attention (MlaGpuArgs; nKeys unused here): the latent rows as bytes (bf16: two values
 * per u32 word) through one sequence's block table (slot(p) = table[p / pageSize]·pageSize +
 * p % pageSize) or a 2-D one with rowSeq (pages.ts). Returns the output buffer f32 [rows, heads, r].
 */
export function mlaAttentionGpu(gpu: GpuDevice, a: MlaGpuArgs): GPUBuffer {
  const { qLat, qPe, latent, format, pages, positions, indices, k, shape, scale } = a;
  const { rows, heads, r, dr } = shape;
  if (r > 64 * MLA_MAX_COLS) throw new GpuError(`mlaAttentionGpu: kv_lora_rank ${r} exceeds ${64 * MLA_MAX_COLS}`);
  if (!(pages.pageSize > 0)) throw new GpuError(`mlaAttentionGpu: pageSize must be positive, got ${pages.pageSize}`);
  const width = latentRowWidth(format, r, dr);
  const out = gpu.buffer(rows * heads * r * 4);
  const groups = rows * heads;
  if (groups === 0 || r === 0) return out;
  if (indices && k === 0) return out; // nothing selected: all-zero output, as on the CPU
  const groupsX = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  const groupsY = Math.ceil(groups / groupsX);
  const params = new ArrayBuffer(52);
  const u = new Uint32Array(params);
  u.set([rows, heads, r, dr, width, format === 'f32' ? 0 : format === 'bf16' ? 1 : 2, indices ? k : 0, groupsX]);
  new Float32Array(params)[8] = scale;
  u.set(pageParams(pages), 9);
  // Dense: the kernel does not read indices; the positions stand in for the binding.
  gpu.dispatch(
    MLA_ATTENTION_WGSL,
    [qLat, qPe, latent, pages.table, rowSeqBinding(pages), positions, indices ?? positions, out, gpu.uniforms(u)],
    [groupsX, groupsY],
  );
  return out;
}
