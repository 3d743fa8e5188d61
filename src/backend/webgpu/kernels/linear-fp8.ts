/**
 * linear with block-scaled FP8 (e4m3fn) weights on WebGPU: out [rows, N] = x [rows, K] · Wᵀ for
 * W [N, K] stored as e4m3 codes, four per u32 word (element i of the flat [N, K] array in byte
 * i & 3 of word i >> 2), with f32 block scales scaleInv [ceil(N / bo), ceil(K / bi)].
 *
 * Without activation quantization the weight is used at its real value e4m3 · scale, rounded to
 * f32, like linearPlain: one workgroup of 64 invocations per (output, row), strided partial sums
 * and a tree reduction (f32 accumulation, where the CPU accumulates in float64).
 *
 * With activation quantization (the reference FP8 GEMM, CPU twin linearFp8) x is quantized with
 * quantFp8Gpu in blocks of bi, and for every K block b: acc += (x8_b · w8_b) · (sx_b · sw_b) in f32.
 * Each invocation of the workgroup computes whole block dots in k order (the products of two e4m3
 * values are exact in f32, so this is the CPU's sum), and invocation 0 adds the block terms in block
 * order, as the CPU does; results match up to contraction of a multiply-add into an FMA.
 *
 * e4m3 is decoded from its bits: exponent field 0 is subnormal (m · 2^-9), 0x7f / 0xff are NaN.
 *
 * Rows t ≥ count[p.e] are skipped (whole workgroups return, out left as it was): linearFp8Gpu binds
 * a one-word count holding rows; the grouped MoE (moe-grouped.ts) binds its per-expert counts.
 */
import type { ScaleFormat } from '../../../numerics/block-quant.js';
import type { GpuDevice } from '../device.js';
import { quantFp8Gpu } from './quant.js';
import { linearFp8TiledWgsl, TILED_MAX_BI, TILED_OUTPUTS, tiledRows } from './linear-fp8-tiled.js';
import { E4M3_DECODE_WGSL } from './wgsl.js';

const WG = 64;

const COMMON = /* wgsl */ `
struct Params { rows: u32, k: u32, n: u32, bo: u32, bi: u32, kb: u32, groupsX: u32, e: u32 }
${E4M3_DECODE_WGSL}
fn code(buf_word: u32, i: u32) -> u32 { return (buf_word >> (8u * (i & 3u))) & 0xffu; }
`;

/** Weight at its real value (e4m3 · block scale), f32 activations. */
export const LINEAR_FP8_PLAIN_WGSL = /* wgsl */ `${COMMON}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> sw: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> count: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;

var<workgroup> partial: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = wg.y;
  if (t >= count[p.e]) { return; }
  let o = wg.x + wg.z * p.groupsX;
  var acc = 0.0;
  if (o < p.n) {
    let srow = (o / p.bo) * p.kb;
    for (var j = lid.x; j < p.k; j += ${WG}u) {
      let i = o * p.k + j;
      acc += x[t * p.k + j] * (e4m3(code(w[i >> 2u], i)) * sw[srow + j / p.bi]);
    }
  }
  partial[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.x] += partial[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && o < p.n) { out[t * p.n + o] = partial[0]; }
}
`;

/** The block-scaled FP8 GEMM: activations as e4m3 codes xq [rows, K] with scales sx [rows, kb]. */
export const LINEAR_FP8_GEMM_WGSL = /* wgsl */ `${COMMON}
@group(0) @binding(0) var<storage, read> xq: array<u32>;
@group(0) @binding(1) var<storage, read> sx: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> sw: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> count: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

var<workgroup> terms: array<f32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = wg.y;
  if (t >= count[p.e]) { return; }
  let o = wg.x + wg.z * p.groupsX;
  let valid = o < p.n;
  let srow = (o / p.bo) * p.kb;
  var acc = 0.0;
  for (var c = 0u; c < p.kb; c += ${WG}u) {
    let b = c + lid.x;
    var term = 0.0;
    if (valid && b < p.kb) {
      let start = b * p.bi;
      let end = min(start + p.bi, p.k);
      var s = 0.0;
      for (var j = start; j < end; j++) {
        let ix = t * p.k + j;
        let iw = o * p.k + j;
        s = s + e4m3(code(xq[ix >> 2u], ix)) * e4m3(code(w[iw >> 2u], iw));
      }
      term = s * (sx[t * p.kb + b] * sw[srow + b]);
    }
    terms[lid.x] = term;
    workgroupBarrier();
    if (lid.x == 0u) {
      let m = min(${WG}u, p.kb - c);
      for (var i = 0u; i < m; i++) { acc = acc + terms[i]; }
    }
    workgroupBarrier();
  }
  if (lid.x == 0u && valid) { out[t * p.n + o] = acc; }
}
`;

/**
 * The row count from which the tiled kernel takes a call (DSA_FP8_TILED_FROM overrides, read once;
 * the lab's A/B): with fewer rows a workgroup per (output, row) has more parallelism, and on the
 * H200 the whole layer's step at batch 1 ran slower tiled (docs/benchmarks.md).
 */
const TILED_FROM_ROWS = ((): number => {
  const env = typeof process !== 'undefined' ? process.env?.DSA_FP8_TILED_FROM : undefined;
  const n = env === undefined ? NaN : Number(env);
  return Number.isInteger(n) && n >= 1 ? n : 8;
})();

/**
 * As linearFp8Gpu, into out [rows, n] f32 over the first count[e] rows only (count a u32 storage
 * buffer): rows ≥ count[e] are left as they were in out. With actQuant all rows of x are quantized
 * (per row, so the rows used are quantized as linearFp8Gpu does).
 */
export function linearFp8CountedGpu(
  gpu: GpuDevice,
  x: GPUBuffer,
  wCodes: GPUBuffer,
  scaleInv: GPUBuffer,
  bo: number,
  bi: number,
  rows: number,
  k: number,
  n: number,
  actQuant: ScaleFormat | null,
  out: GPUBuffer,
  count: GPUBuffer,
  e: number,
): void {
  if (rows === 0 || n === 0) return;
  const kb = Math.ceil(k / bi);
  if (bi <= TILED_MAX_BI && rows >= TILED_FROM_ROWS) {
    // Tiled over 32 outputs × 4–16 rows (linear-fp8-tiled.ts): the weights read once per 16 rows.
    const rt = tiledRows(rows);
    const [gx, gz] = gpu.grid(Math.ceil(n / TILED_OUTPUTS));
    const params = gpu.uniforms(Uint32Array.of(rows, k, n, bo, bi, kb, gx, e));
    const groups: [number, number, number] = [gx, Math.ceil(rows / rt), gz];
    const gemm = actQuant !== null;
    const code = gpu.generated(`linear-fp8-tiled ${rt} ${gemm}`, () => linearFp8TiledWgsl(rt, gemm));
    if (actQuant === null) gpu.dispatch(code, [x, null, wCodes, scaleInv, out, count, params], groups);
    else {
      const { q, s } = quantFp8Gpu(gpu, x, rows, k, bi, actQuant);
      gpu.dispatch(code, [q, s, wCodes, scaleInv, out, count, params], groups);
    }
    return;
  }
  const groupsX = Math.min(n, gpu.limits.maxComputeWorkgroupsPerDimension);
  const groupsZ = Math.ceil(n / groupsX);
  const params = gpu.uniforms(Uint32Array.of(rows, k, n, bo, bi, kb, groupsX, e));
  if (actQuant === null) {
    gpu.dispatch(LINEAR_FP8_PLAIN_WGSL, [x, wCodes, scaleInv, out, count, params], [groupsX, rows, groupsZ]);
  } else {
    const { q, s } = quantFp8Gpu(gpu, x, rows, k, bi, actQuant);
    gpu.dispatch(LINEAR_FP8_GEMM_WGSL, [q, s, wCodes, scaleInv, out, count, params], [groupsX, rows, groupsZ]);
  }
}

/**
 * out [rows, n] f32 = x [rows, k] · Wᵀ for an FP8 weight: wCodes (e4m3 codes [n, k], 4 per u32 word),
 * scaleInv (f32 [ceil(n / bo), ceil(k / bi)]). actQuant null: the weight at its real value (as
 * linearPlain); otherwise x is quantized to e4m3 in blocks of bi with that scale format and the
 * block-scaled FP8 GEMM runs (as linearFp8).
 */
export function linearFp8Gpu(
  gpu: GpuDevice,
  x: GPUBuffer,
  wCodes: GPUBuffer,
  scaleInv: GPUBuffer,
  bo: number,
  bi: number,
  rows: number,
  k: number,
  n: number,
  actQuant: ScaleFormat | null,
): GPUBuffer {
  const out = gpu.buffer(rows * n * 4);
  if (rows === 0 || n === 0) return out;
  linearFp8CountedGpu(gpu, x, wCodes, scaleInv, bo, bi, rows, k, n, actQuant, out, gpu.buffer(4, Uint32Array.of(rows)), 0);
  return out;
}
