/**
 * Block FP8 (e4m3fn) activation quantization on WebGPU, bit-exact with actQuantRow
 * (numerics/block-quant.ts), and its inverse.
 *
 * quantFp8 runs two passes. Scales: one invocation per (row, block) takes amax from the float
 * bits, a = max(amax, f32(1e-4)), s = a · f32(1/448) (a correctly rounded f32 product of normal
 * numbers), and for ue8m0 s = 2^ceil(log2 s) from its exponent and mantissa bits. Codes: one
 * invocation per u32 word of 4 codes (little-endian bytes of the flat [rows, n] array, so a word
 * may span rows); f32(x / s) is computed by integer long division of the mantissas with
 * round-to-nearest-even (WGSL's f32 division need not be correctly rounded), clamped to ±448 and
 * rounded to e4m3 (RNE, saturating) from its bits as f32BitsToE4m3 does. Quotients below 2^-126
 * give a signed zero code, as they do on the CPU. NaN and ±Inf inputs are not supported.
 *
 * dequantFp8: one invocation per value, e4m3 decoded from its bits times the block scale.
 */
import type { ScaleFormat } from '../../../numerics/block-quant.js';
import type { GpuDevice, UniformParams } from '../device.js';
import { E4M3_DECODE_WGSL } from './wgsl.js';

const WG = 64;

const QUANT_COMMON = /* wgsl */ `
struct Params { rows: u32, n: u32, block: u32, blocks: u32, ue8m0: u32, count: u32, groupsX: u32 }
`;

export const QUANT_SCALES_WGSL = /* wgsl */ `${QUANT_COMMON}
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> scales: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

const AMAX_MIN: u32 = 0x${(new Uint32Array(Float32Array.of(1e-4).buffer)[0]!).toString(16)}u; // f32(1e-4)
const INV_448: u32 = 0x${(new Uint32Array(Float32Array.of(1 / 448).buffer)[0]!).toString(16)}u; // f32(1/448)

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let k = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (k >= p.count) { return; }
  let row = k / p.blocks;
  let start = (k % p.blocks) * p.block;
  let end = min(start + p.block, p.n);
  var amax = 0u;
  for (var i = start; i < end; i++) { amax = max(amax, x[row * p.n + i] & 0x7fffffffu); }
  amax = max(amax, AMAX_MIN);
  var s = bitcast<u32>(bitcast<f32>(amax) * bitcast<f32>(INV_448));
  if (p.ue8m0 == 1u) {
    let e = (s >> 23u) & 0xffu;
    if (e != 0xffu) { s = (e + select(0u, 1u, (s & 0x7fffffu) != 0u)) << 23u; }
  }
  scales[k] = s;
}
`;

export const QUANT_CODES_WGSL = /* wgsl */ `${QUANT_COMMON}
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read_write> q: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

// Bits of f32(x / s), round-to-nearest-even, for finite x and normal positive s; quotients below
// the smallest normal float give a signed zero (their e4m3 code is a signed zero anyway).
fn divBits(xb: u32, sb: u32) -> u32 {
  let sign = (xb ^ sb) & 0x80000000u;
  let ex = i32((xb >> 23u) & 0xffu);
  if (ex == 0) { return sign; } // zero or subnormal x: |x / s| < 2^-126 / 2^-23
  var mx = (xb & 0x7fffffu) | 0x800000u;
  let ms = (sb & 0x7fffffu) | 0x800000u;
  var e = ex - i32((sb >> 23u) & 0xffu) + 127; // biased exponent of the quotient
  if (mx < ms) { mx <<= 1u; e -= 1; }
  // 26 quotient bits (1 integer + 25 fraction) and a sticky bit.
  var quo = 0u;
  var rem = mx;
  for (var i = 0u; i < 26u; i++) {
    quo <<= 1u;
    if (rem >= ms) { rem -= ms; quo |= 1u; }
    rem <<= 1u;
  }
  if (e < 1) { return sign; }
  if (e >= 255) { return sign | 0x7f800000u; }
  let mant = quo >> 2u;
  let guard = (quo >> 1u) & 1u;
  let sticky = (quo & 1u) | select(0u, 1u, rem != 0u);
  let up = select(0u, 1u, guard == 1u && (sticky == 1u || (mant & 1u) == 1u));
  return sign | ((u32(e) << 23u) + (mant & 0x7fffffu) + up);
}

// e4m3fn code of the f32 with these bits, RNE, saturating to ±448 (numerics/e4m3.ts f32BitsToE4m3).
fn e4m3(bits: u32) -> u32 {
  let sign = (bits >> 24u) & 0x80u;
  let mant = bits & 0x7fffffu;
  let e = i32((bits >> 23u) & 0xffu) - 120;
  if (e >= 16) { return sign | 0x7eu; }
  if (e >= 1) {
    var r = (u32(e) << 3u) | (mant >> 20u);
    let rem = mant & 0xfffffu;
    if (rem > 0x80000u || (rem == 0x80000u && (r & 1u) == 1u)) { r += 1u; }
    if (r >= 0x7fu) { return sign | 0x7eu; }
    return sign | r;
  }
  if (e < -3) { return sign; }
  let m = mant | 0x800000u;
  let shift = u32(21 - e);
  var r = m >> shift;
  let rem = m & ((1u << shift) - 1u);
  let half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (r & 1u) == 1u)) { r += 1u; }
  return sign | r;
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let w = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (w >= p.count) { return; }
  let total = p.rows * p.n;
  var word = 0u;
  for (var k = 0u; k < 4u; k++) {
    let i = w * 4u + k;
    if (i < total) {
      let row = i / p.n;
      let s = scales[row * p.blocks + (i % p.n) / p.block];
      var y = divBits(x[i], s);
      if ((y & 0x7fffffffu) > 0x43e00000u) { y = (y & 0x80000000u) | 0x43e00000u; } // clamp to ±448
      word |= e4m3(y) << (8u * k);
    }
  }
  q[w] = word;
}
`;

export const DEQUANT_WGSL = /* wgsl */ `${QUANT_COMMON}
@group(0) @binding(0) var<storage, read> q: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

${E4M3_DECODE_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (i >= p.count) { return; }
  let code = (q[i >> 2u] >> (8u * (i & 3u))) & 0xffu;
  out[i] = e4m3(code) * scales[(i / p.n) * p.blocks + (i % p.n) / p.block];
}
`;

function params(gpu: GpuDevice, rows: number, n: number, block: number, ue8m0: boolean, count: number, groupsX: number): UniformParams {
  return gpu.uniforms(Uint32Array.of(rows, n, block, Math.ceil(n / block), ue8m0 ? 1 : 0, count, groupsX));
}

/**
 * Block FP8 quantization of x f32 [rows, n] in blocks of `block` along the last dim: q holds
 * rows·n e4m3 codes, 4 per u32 word (little-endian bytes of the flat array), s the f32 scales
 * [rows, ceil(n / block)].
 */
export function quantFp8Gpu(gpu: GpuDevice, x: GPUBuffer, rows: number, n: number, block: number, fmt: ScaleFormat): { q: GPUBuffer; s: GPUBuffer; blocks: number } {
  const blocks = Math.ceil(n / block);
  const s = gpu.buffer(rows * blocks * 4);
  const q = gpu.buffer(rows * n);
  if (rows * n === 0) return { q, s, blocks };
  const nScales = rows * blocks;
  const g1 = gpu.grid(nScales, WG);
  gpu.dispatch(QUANT_SCALES_WGSL, [x, s, params(gpu, rows, n, block, fmt === 'ue8m0', nScales, g1[0])], g1);
  const words = Math.ceil((rows * n) / 4);
  const g2 = gpu.grid(words, WG);
  gpu.dispatch(QUANT_CODES_WGSL, [x, s, q, params(gpu, rows, n, block, fmt === 'ue8m0', words, g2[0])], g2);
  return { q, s, blocks };
}

/** e4m3 codes q (4 per u32 word, [rows, n]) times their block scales s [rows, ceil(n / block)] → f32 [rows, n]. */
export function dequantFp8Gpu(gpu: GpuDevice, q: GPUBuffer, s: GPUBuffer, rows: number, n: number, block: number): GPUBuffer {
  const out = gpu.buffer(rows * n * 4);
  const count = rows * n;
  if (count === 0) return out;
  const g = gpu.grid(count, WG);
  gpu.dispatch(DEQUANT_WGSL, [q, s, out, params(gpu, rows, n, block, false, count, g[0])], g);
  return out;
}
