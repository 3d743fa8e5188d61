/**
 * Naive reference codecs for the latent cache formats (see LatentFormat in src/backend/backend.ts),
 * shared by the packLatent cases (quant-cache.test.ts) and the mlaAttention-over-bf16/fp8-cache
 * cases (dsa.test.ts). Part of the ops test harness (./harness.ts), kept apart for file size.
 */
import assert from 'node:assert/strict';
import { actQuantRow } from '../../../src/numerics/block-quant.js';
import { fr, refActQuant, refBf16, refE4m3 } from './harness.js';

/** float32 value → bf16 bits, round to nearest even, by comparing the two neighbouring bf16 values. */
export function refBf16Encode(x: number): number {
  const f = fr(x);
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, f);
  const lo = dv.getUint32(0) >>> 16; // truncation toward zero
  const hi = lo + 1; // next bf16 away from zero (same sign)
  const dLo = Math.abs(f - refBf16(lo));
  const dHi = Math.abs(refBf16(hi) - f);
  if (dLo < dHi) return lo;
  if (dHi < dLo) return hi;
  return (lo & 1) === 0 ? lo : hi;
}

/**
 * Reference packer for one latent row (see LatentFormat in backend.ts): f32 → the values; bf16 →
 * RNE bits; fp8 → bytes: r e4m3 codes (128-blocks, ue8m0 scales, as numerics' actQuantRow), r/128
 * little-endian float32 scales, dr little-endian bf16 k_rope values.
 */
export function refPackRow(ckv: Float32Array, kPe: Float32Array, format: 'f32' | 'bf16' | 'fp8'): number[] {
  const r = ckv.length;
  if (format === 'f32') return [...ckv, ...kPe];
  if (format === 'bf16') return [...ckv, ...kPe].map(refBf16Encode);
  const { q, s } = refActQuant(ckv, 1, r, 128, 'ue8m0');
  const q2 = new Uint8Array(r);
  const s2 = new Float32Array(r / 128);
  actQuantRow(ckv, 0, r, 128, 'ue8m0', q2, 0, s2, 0);
  assert.deepEqual(Array.from(q), Array.from(q2), 'naive and numerics quantizers agree on the codes');
  assert.deepEqual(Array.from(s), Array.from(s2), 'naive and numerics quantizers agree on the scales');
  const out = new Uint8Array(r + 4 * s.length + 2 * kPe.length);
  const dv = new DataView(out.buffer);
  out.set(q, 0);
  s.forEach((v, b) => {
    assert.equal(2 ** Math.round(Math.log2(v)), v, `scale ${v} is a power of two`);
    dv.setFloat32(r + 4 * b, v, true);
  });
  kPe.forEach((v, c) => dv.setUint16(r + 4 * s.length + 2 * c, refBf16Encode(v), true));
  return Array.from(out);
}

/** The float32 values [c_kv | k_rope] a packed row stands for. */
export function refUnpackRow(row: ArrayLike<number>, format: 'f32' | 'bf16' | 'fp8', r: number, dr: number): number[] {
  if (format === 'f32') return Array.from(row);
  if (format === 'bf16') return Array.from(row, refBf16);
  const bytes = Uint8Array.from(row);
  const dv = new DataView(bytes.buffer);
  const out: number[] = [];
  for (let c = 0; c < r; c++) out.push(refE4m3(bytes[c]!) * dv.getFloat32(r + 4 * Math.floor(c / 128), true));
  for (let c = 0; c < dr; c++) out.push(refBf16(dv.getUint16(r + (4 * r) / 128 + 2 * c, true)));
  return out;
}
