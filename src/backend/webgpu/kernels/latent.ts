/**
 * The MLA latent cache rows on WebGPU (see LatentFormat in backend.ts), bit-exact with the CPU's
 * packLatent (cpu/kernels/latent.ts):
 *
 * - 'f32': [c_kv | k_rope], one value per u32 word.
 * - 'bf16': the same values rounded to bf16 (RNE from the float bits, NaN → quiet NaN with its
 *   sign, as f32BitsToBf16), two per u32 word; a word may span two rows when r + dr is odd.
 * - 'fp8' (FlashMLA rows, r a multiple of 128): r e4m3 codes, r/128 f32 ue8m0 scales, dr bf16
 *   k_rope values, as bytes, four per u32 word (a word may span two rows when dr is odd). The codes
 *   and scales come from quantFp8Gpu (block 128, ue8m0: the activation quantizer's rule, amax
 *   floored at 1e-4 and multiplied by f32(1/448), f32 division by integer long division, e4m3 RNE
 *   from the bits), then one pass assembles the row bytes.
 *
 * Every pass writes whole u32 words of the output, one invocation per word, so no two
 * invocations share a word.
 */
import { LATENT_FP8_BLOCK, latentRowWidth, type LatentFormat } from '../../backend.js';
import { GpuError, type GpuDevice } from '../device.js';
import { quantFp8Gpu } from './quant.js';

const WG = 64;

const COMMON = /* wgsl */ `
struct Params { rows: u32, r: u32, dr: u32, width: u32, blocks: u32, format: u32, count: u32, groupsX: u32 }

// bf16 bits of the f32 with these bits, round to nearest even; NaN → quiet NaN with its sign.
fn bf16(bits: u32) -> u32 {
  if ((bits & 0x7fffffffu) > 0x7f800000u) { return ((bits >> 16u) & 0x8000u) | 0x7fc0u; }
  return (bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u;
}
`;

export const PACK_LATENT_WGSL = /* wgsl */ `${COMMON}
@group(0) @binding(0) var<storage, read> ckv: array<u32>;
@group(0) @binding(1) var<storage, read> kpe: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

// Element e of the flat [rows, r + dr] array of [c_kv | k_rope] values, as f32 bits.
fn value(e: u32) -> u32 {
  let t = e / p.width;
  let c = e % p.width;
  if (c < p.r) { return ckv[t * p.r + c]; }
  return kpe[t * p.dr + c - p.r];
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let w = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (w >= p.count) { return; }
  if (p.format == 0u) { out[w] = value(w); return; }
  let total = p.rows * p.width;
  var word = bf16(value(2u * w));
  if (2u * w + 1u < total) { word |= bf16(value(2u * w + 1u)) << 16u; }
  out[w] = word;
}
`;

export const PACK_LATENT_FP8_WGSL = /* wgsl */ `${COMMON}
@group(0) @binding(0) var<storage, read> codes: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read> kpe: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

// Byte e of the flat [rows, width] array of fp8 latent rows.
fn byteAt(e: u32) -> u32 {
  let t = e / p.width;
  let o = e % p.width;
  if (o < p.r) {
    let i = t * p.r + o;
    return (codes[i >> 2u] >> (8u * (i & 3u))) & 0xffu;
  }
  let so = o - p.r;
  if (so < 4u * p.blocks) { return (scales[t * p.blocks + so / 4u] >> (8u * (so & 3u))) & 0xffu; }
  let ro = so - 4u * p.blocks;
  return (bf16(kpe[t * p.dr + ro / 2u]) >> (8u * (ro & 1u))) & 0xffu;
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let w = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (w >= p.count) { return; }
  let total = p.rows * p.width;
  var word = 0u;
  for (var k = 0u; k < 4u; k++) {
    let e = 4u * w + k;
    if (e < total) { word |= byteAt(e) << (8u * k); }
  }
  out[w] = word;
}
`;

/**
 * Latent cache rows [rows, latentRowWidth(format, r, dr)] from ckv f32 [rows, r] and kPe f32
 * [rows, dr]: f32 values, bf16 values (2 per u32 word) or fp8 row bytes (4 per u32 word); see the
 * file comment. Throws for 'fp8' unless r is a positive multiple of 128.
 */
export function packLatentGpu(gpu: GpuDevice, ckv: GPUBuffer, kPe: GPUBuffer, rows: number, r: number, dr: number, format: LatentFormat): GPUBuffer {
  let width: number;
  try {
    width = latentRowWidth(format, r, dr);
  } catch (e) {
    throw new GpuError(`packLatent: ${(e as Error).message}`);
  }
  const elemBytes = format === 'f32' ? 4 : format === 'bf16' ? 2 : 1;
  const total = rows * width;
  const out = gpu.buffer(total * elemBytes);
  if (total === 0) return out;
  const count = Math.ceil((total * elemBytes) / 4);
  const g = gpu.grid(count, WG);
  if (format !== 'fp8') {
    const params = gpu.uniforms(Uint32Array.of(rows, r, dr, width, 0, format === 'f32' ? 0 : 1, count, g[0]));
    gpu.dispatch(PACK_LATENT_WGSL, [ckv, kPe, out, params], g);
    return out;
  }
  const blocks = r / LATENT_FP8_BLOCK;
  const { q, s } = quantFp8Gpu(gpu, ckv, rows, r, LATENT_FP8_BLOCK, 'ue8m0');
  const params = gpu.uniforms(Uint32Array.of(rows, r, dr, width, blocks, 2, count, g[0]));
  gpu.dispatch(PACK_LATENT_FP8_WGSL, [q, s, kPe, out, params], g);
  gpu.release(q);
  gpu.release(s);
  return out;
}
