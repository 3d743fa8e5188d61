/**
 * Block FP8 (e4m3fn) quantization as the DeepSeek-V3.2 reference kernels do it.
 *
 * Activations: per row, per block of `blockSize` values along the last dim,
 *   amax = max(max|x|, float32(1e-4)); s = float32(amax * float32(1/448));
 *   optionally s = 2^ceil(log2(s)) ("ue8m0", computed exactly from the bits);
 *   y = e4m3(clamp(float32(x / s), -448, 448)).
 * Weights: 128x128 blocks of e4m3 codes with one float32 scale ("weight_scale_inv") each.
 */

import { E4M3_MAX, E4M3_TABLE, f32ToE4m3 } from './e4m3.js';

/** How a block scale is stored: a plain float32, or rounded up to a power of two (ue8m0). */
export type ScaleFormat = 'none' | 'ue8m0';

/** float32(1/448): the reference multiplies by this instead of dividing by 448. */
export const FP8_INV_MAX: number = Math.fround(1 / 448);

/** float32(1e-4): the lower bound on a block's amax. */
const AMAX_MIN = Math.fround(1e-4);

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** 2^k as a float32 value built from its bits (k in -149..127), Infinity above, 0 below. */
function pow2F32(k: number): number {
  if (k > 127) {
    return Infinity;
  }
  if (k < -149) {
    return 0;
  }
  if (k >= -126) {
    scratchU32[0] = (k + 127) << 23;
  } else {
    scratchU32[0] = 1 << (k + 149); // subnormal
  }
  return scratchF32[0];
}

/**
 * 2^ceil(log2(s)) for a positive float32 s, computed exactly from its bits: the unbiased
 * exponent, plus one if any mantissa bit is set. Subnormal s is handled too.
 * s = 0 gives 0; Infinity and NaN are returned unchanged.
 */
export function ue8m0Ceil(s: number): number {
  scratchF32[0] = s;
  const bits = scratchU32[0];
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if ((bits & 0x80000000) !== 0 && (bits & 0x7fffffff) !== 0) {
    throw new Error(`ue8m0Ceil: scale must be positive, got ${s}`);
  }
  if (exp === 0xff) {
    return scratchF32[0]; // Inf or NaN
  }
  if (exp === 0) {
    if (mant === 0) {
      return 0;
    }
    // Subnormal: s = mant * 2^-149. floor(log2(mant)) is the index of its top bit.
    const top = 31 - Math.clz32(mant);
    const isPow2 = (mant & (mant - 1)) === 0;
    return pow2F32(top - 149 + (isPow2 ? 0 : 1));
  }
  return pow2F32(exp - 127 + (mant !== 0 ? 1 : 0));
}

/** The block scale for a block whose max |x| is amax (see the file comment). */
export function blockScale(amax: number, fmt: ScaleFormat): number {
  const a = Math.max(Math.fround(amax), AMAX_MIN);
  const s = Math.fround(a * FP8_INV_MAX);
  if (fmt === 'ue8m0') {
    return ue8m0Ceil(s);
  }
  return s;
}

/** Quantize one value with a given block scale: e4m3(clamp(float32(x / s), -448, 448)). */
function quantValue(x: number, scale: number): number {
  let y = Math.fround(x / scale); // correctly rounded float32 division
  if (y > E4M3_MAX) {
    y = E4M3_MAX;
  } else if (y < -E4M3_MAX) {
    y = -E4M3_MAX;
  }
  return f32ToE4m3(y, true);
}

/**
 * Quantize one row x[xOff .. xOff+n) in blocks of blockSize (the last block may be partial).
 * Writes n codes to q[qOff ..] and ceil(n / blockSize) scales to s[sOff ..].
 */
export function actQuantRow(
  x: Float32Array,
  xOff: number,
  n: number,
  blockSize: number,
  fmt: ScaleFormat,
  q: Uint8Array,
  qOff: number,
  s: Float32Array,
  sOff: number,
): void {
  let b = 0;
  for (let start = 0; start < n; start += blockSize) {
    const end = Math.min(start + blockSize, n);
    let amax = 0;
    for (let i = start; i < end; i++) {
      const a = Math.abs(x[xOff + i]);
      if (a > amax) {
        amax = a;
      }
    }
    const scale = blockScale(amax, fmt);
    s[sOff + b] = scale;
    for (let i = start; i < end; i++) {
      q[qOff + i] = quantValue(x[xOff + i], scale);
    }
    b++;
  }
}

/** Quantize a row-major [rows, cols] matrix; s is [rows, ceil(cols / blockSize)] row-major. */
export function actQuant(
  x: Float32Array,
  rows: number,
  cols: number,
  blockSize: number,
  fmt: ScaleFormat,
): { q: Uint8Array; s: Float32Array } {
  if (x.length < rows * cols) {
    throw new Error(`actQuant: input has ${x.length} values, need ${rows}x${cols}`);
  }
  const nBlocks = Math.ceil(cols / blockSize);
  const q = new Uint8Array(rows * cols);
  const s = new Float32Array(rows * nBlocks);
  for (let r = 0; r < rows; r++) {
    actQuantRow(x, r * cols, cols, blockSize, fmt, q, r * cols, s, r * nBlocks);
  }
  return { q, s };
}

/**
 * Dequantize a block-scaled FP8 weight [outDim, inDim]: e4m3(w8[i][j]) * scaleInv[i/block][j/block],
 * with scaleInv [ceil(outDim/block), ceil(inDim/block)] row-major. Each product is rounded to
 * float32 once (the double product of an e4m3 value and a float32 is exact).
 */
export function dequantBlockWeight(
  w8: Uint8Array,
  scaleInv: Float32Array,
  outDim: number,
  inDim: number,
  block = 128,
): Float32Array {
  const colBlocks = Math.ceil(inDim / block);
  const rowBlocks = Math.ceil(outDim / block);
  if (w8.length < outDim * inDim) {
    throw new Error(`dequantBlockWeight: weight has ${w8.length} codes, need ${outDim}x${inDim}`);
  }
  if (scaleInv.length < rowBlocks * colBlocks) {
    throw new Error(`dequantBlockWeight: scale_inv has ${scaleInv.length} values, need ${rowBlocks}x${colBlocks}`);
  }
  const out = new Float32Array(outDim * inDim);
  for (let i = 0; i < outDim; i++) {
    const scaleRow = Math.floor(i / block) * colBlocks;
    const rowOff = i * inDim;
    for (let j = 0; j < inDim; j++) {
      const scale = scaleInv[scaleRow + Math.floor(j / block)];
      out[rowOff + j] = E4M3_TABLE[w8[rowOff + j]] * scale;
    }
  }
  return out;
}

/**
 * Quantize a float32 weight [outDim, inDim] to e4m3 codes with one scale per block x block tile
 * (the inverse of dequantBlockWeight; used to build FP8 test checkpoints).
 */
export function quantizeBlockWeight(
  w: Float32Array,
  outDim: number,
  inDim: number,
  fmt: ScaleFormat,
  block = 128,
): { w8: Uint8Array; scaleInv: Float32Array } {
  if (w.length < outDim * inDim) {
    throw new Error(`quantizeBlockWeight: weight has ${w.length} values, need ${outDim}x${inDim}`);
  }
  const colBlocks = Math.ceil(inDim / block);
  const rowBlocks = Math.ceil(outDim / block);
  const w8 = new Uint8Array(outDim * inDim);
  const scaleInv = new Float32Array(rowBlocks * colBlocks);
  for (let bi = 0; bi < rowBlocks; bi++) {
    const i0 = bi * block;
    const i1 = Math.min(i0 + block, outDim);
    for (let bj = 0; bj < colBlocks; bj++) {
      const j0 = bj * block;
      const j1 = Math.min(j0 + block, inDim);
      let amax = 0;
      for (let i = i0; i < i1; i++) {
        for (let j = j0; j < j1; j++) {
          const a = Math.abs(w[i * inDim + j]);
          if (a > amax) {
            amax = a;
          }
        }
      }
      const scale = blockScale(amax, fmt);
      scaleInv[bi * colBlocks + bj] = scale;
      for (let i = i0; i < i1; i++) {
        for (let j = j0; j < j1; j++) {
          w8[i * inDim + j] = quantValue(w[i * inDim + j], scale);
        }
      }
    }
  }
  return { w8, scaleInv };
}
