/**
 * The MLA latent cache's row formats on the CPU (see LatentFormat in backend.ts): packing c_kv and
 * k_rope rows into 'f32', 'bf16' or FlashMLA's 'fp8' layout, and decoding cached rows back to
 * float32 values for the attention kernel.
 *
 * 'fp8' row (r a multiple of 128): bytes [0, r) e4m3 codes of c_kv; [r, r + 4·r/128) one float32
 * scale per 128 values, little-endian, a power of two (ue8m0, as FlashMLA's tests/quant.py rounds
 * them; computed by the activation quantizer, so amax is floored at 1e-4 and scaled by
 * float32(1/448)); then dr bf16 values of k_rope, little-endian. Decoded c_kv = e4m3(code) · scale.
 */
import { LATENT_FP8_BLOCK, latentRowWidth, type LatentFormat } from '../../backend.js';
import { f32ToBf16 } from '../../../numerics/bf16.js';
import { actQuantRow } from '../../../numerics/block-quant.js';
import { E4M3_TABLE } from '../../../numerics/e4m3.js';

/** A latent cache tensor's storage, tagged by format. */
export type LatentData =
  | { format: 'f32'; data: Float32Array }
  | { format: 'bf16'; data: Uint16Array }
  | { format: 'fp8'; data: Uint8Array };

/** Rows [T, width] in `format` from ckv [T, r] and kPe [T, dr] (see the file comment). */
export function packLatent(ckv: Float32Array, kPe: Float32Array, rows: number, r: number, dr: number, format: LatentFormat): LatentData {
  const width = latentRowWidth(format, r, dr);
  if (format === 'f32') {
    const out = new Float32Array(rows * width);
    for (let t = 0; t < rows; t++) {
      out.set(ckv.subarray(t * r, (t + 1) * r), t * width);
      out.set(kPe.subarray(t * dr, (t + 1) * dr), t * width + r);
    }
    return { format, data: out };
  }
  if (format === 'bf16') {
    const out = new Uint16Array(rows * width);
    for (let t = 0; t < rows; t++) {
      for (let c = 0; c < r; c++) out[t * width + c] = f32ToBf16(ckv[t * r + c]!);
      for (let c = 0; c < dr; c++) out[t * width + r + c] = f32ToBf16(kPe[t * dr + c]!);
    }
    return { format, data: out };
  }
  const blocks = r / LATENT_FP8_BLOCK;
  const out = new Uint8Array(rows * width);
  const view = new DataView(out.buffer);
  const scales = new Float32Array(blocks);
  for (let t = 0; t < rows; t++) {
    const base = t * width;
    actQuantRow(ckv, t * r, r, LATENT_FP8_BLOCK, 'ue8m0', out, base, scales, 0);
    for (let b = 0; b < blocks; b++) view.setFloat32(base + r + 4 * b, scales[b]!, true);
    const rope = base + r + 4 * blocks;
    for (let c = 0; c < dr; c++) view.setUint16(rope + 2 * c, f32ToBf16(kPe[t * dr + c]!), true);
  }
  return { format, data: out };
}

/**
 * Decodes the cached rows at slots[0..n) of a 'bf16' or 'fp8' latent cache (row width `width`) into
 * dst[j·(r + dr) ..] as float32 [c_kv | k_rope].
 */
export function decodeLatentRows(
  latent: LatentData,
  slots: Int32Array,
  n: number,
  r: number,
  dr: number,
  width: number,
  dst: Float32Array,
): void {
  const row = r + dr;
  if (latent.format === 'f32') {
    for (let j = 0; j < n; j++) dst.set(latent.data.subarray(slots[j]! * width, slots[j]! * width + row), j * row);
    return;
  }
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  if (latent.format === 'bf16') {
    const src = latent.data;
    for (let j = 0; j < n; j++) {
      const s = slots[j]! * width;
      const d = j * row;
      for (let c = 0; c < row; c++) bits[d + c] = src[s + c]! << 16;
    }
    return;
  }
  const src = latent.data;
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const blocks = r / LATENT_FP8_BLOCK;
  for (let j = 0; j < n; j++) {
    const s = slots[j]! * width;
    const d = j * row;
    for (let b = 0; b < blocks; b++) {
      const scale = view.getFloat32(s + r + 4 * b, true);
      const lo = b * LATENT_FP8_BLOCK;
      for (let c = lo; c < lo + LATENT_FP8_BLOCK; c++) dst[d + c] = E4M3_TABLE[src[s + c]!]! * scale;
    }
    const rope = s + r + 4 * blocks;
    for (let c = 0; c < dr; c++) bits[d + r + c] = view.getUint16(rope + 2 * c, true) << 16;
  }
}

