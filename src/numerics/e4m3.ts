/**
 * FP8 E4M3 "fn" (float8_e4m3fn) <-> float32 conversion.
 *
 * 1 sign, 4 exponent (bias 7), 3 mantissa bits. No infinities; 0x7f and 0xff are NaN.
 * Largest finite magnitude 448 (code 0x7e); subnormals are k * 2^-9 for k = 1..7.
 */

/** Largest finite e4m3fn magnitude. */
export const E4M3_MAX = 448;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Decode one code (0..255) arithmetically. */
function decodeCode(code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const exp = (code >>> 3) & 0xf;
  const mant = code & 0x7;
  if (exp === 0xf && mant === 0x7) {
    // NaN, built from float32 bits so that 0xff decodes to a negative NaN.
    scratchU32[0] = code & 0x80 ? 0xffc00000 : 0x7fc00000;
    return scratchF32[0];
  }
  if (exp === 0) {
    return sign * mant * 2 ** -9;
  }
  return sign * (8 + mant) * 2 ** (exp - 10);
}

function buildTable(): Float32Array {
  const table = new Float32Array(256);
  for (let i = 0; i < 256; i++) {
    table[i] = decodeCode(i);
  }
  return table;
}

/** Decode lookup table: E4M3_TABLE[code] is the float32 value of that code. */
export const E4M3_TABLE: Float32Array = buildTable();

/** Decode one e4m3fn code (0..255). */
export function e4m3ToF32(code: number): number {
  return E4M3_TABLE[code & 0xff];
}

/**
 * Round the float32 with bit pattern `bits` (a uint32) to an e4m3fn code, round-to-nearest-even.
 * Magnitudes that round above 448 give ±448 when `saturate`, else NaN (0x7f | sign).
 */
export function f32BitsToE4m3(bits: number, saturate: boolean): number {
  const sign = (bits >>> 24) & 0x80;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) {
    if (mant !== 0) {
      return sign | 0x7f; // NaN
    }
    return sign | (saturate ? 0x7e : 0x7f); // ±Inf
  }
  const overflow = sign | (saturate ? 0x7e : 0x7f);
  const e = exp - 127 + 7; // biased e4m3 exponent
  if (e >= 16) {
    return overflow; // |x| >= 512
  }
  if (e >= 1) {
    // Normal: keep the top 3 mantissa bits, round on the 20 dropped ones.
    let result = (e << 3) | (mant >>> 20);
    const rem = mant & 0xfffff;
    if (rem > 0x80000 || (rem === 0x80000 && (result & 1) !== 0)) {
      result += 1;
    }
    // 0x7f would be 480 (the NaN code), 0x80 would be 512: both overflow.
    if (result >= 0x7f) {
      return overflow;
    }
    return sign | result;
  }
  // Subnormal or zero: values below 2^-10 (half of 2^-9) round to zero, 2^-10 itself is a tie to 0.
  if (e < -3) {
    return sign;
  }
  const m = mant | 0x800000;
  const shift = 21 - e; // 21..24
  let result = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (result & 1) !== 0)) {
    result += 1; // may reach 0x08, the smallest normal: correct
  }
  return sign | result;
}

/**
 * Encode x (first rounded to float32) to an e4m3fn code, round-to-nearest-even.
 * saturate=true: out-of-range values and ±Inf give ±448; otherwise NaN (0x7f | sign).
 * NaN input gives 0x7f (0xff for a negative NaN).
 */
export function f32ToE4m3(x: number, saturate = true): number {
  scratchF32[0] = x;
  return f32BitsToE4m3(scratchU32[0], saturate);
}

/** Decode a whole array of e4m3fn codes to float32. */
export function decodeE4m3(src: Uint8Array, dst?: Float32Array): Float32Array {
  const out = dst ?? new Float32Array(src.length);
  if (out.length < src.length) {
    throw new Error(`decodeE4m3: destination too short (${out.length} < ${src.length})`);
  }
  for (let i = 0; i < src.length; i++) {
    out[i] = E4M3_TABLE[src[i]];
  }
  return out;
}

/** Encode a whole float32 array to e4m3fn codes, round-to-nearest-even. */
export function encodeE4m3(src: Float32Array, dst?: Uint8Array, saturate = true): Uint8Array {
  const out = dst ?? new Uint8Array(src.length);
  if (out.length < src.length) {
    throw new Error(`encodeE4m3: destination too short (${out.length} < ${src.length})`);
  }
  const srcBits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    out[i] = f32BitsToE4m3(srcBits[i], saturate);
  }
  return out;
}
