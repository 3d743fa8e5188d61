/**
 * IEEE 754 binary16 (half precision) <-> float32 conversion.
 *
 * 1 sign, 5 exponent (bias 15), 10 mantissa bits; subnormals are k * 2^-24; max finite 65504.
 * Encoding rounds the float32 value directly to nearest, ties to even (a single rounding).
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Lazily built decode table for all 65536 codes (256 KiB). */
let decodeTable: Float32Array | null = null;

/** Decode one f16 bit pattern (0..65535) to a number (exactly representable as float32). */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) {
    return sign * mant * 2 ** -24;
  }
  if (exp === 31) {
    if (mant === 0) {
      return sign * Infinity;
    }
    // NaN: build the float32 pattern so the sign and payload survive (quiet bit set).
    scratchU32[0] = ((bits & 0x8000) << 16) | 0x7fc00000 | (mant << 13);
    return scratchF32[0];
  }
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/**
 * Round the float32 with bit pattern `bits` (a uint32) to f16 bits, round-to-nearest-even.
 * NaN becomes the quiet NaN 0x7e00 with the input's sign; overflow goes to Inf.
 */
export function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) {
    return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  }
  const e = exp - 127 + 15; // biased f16 exponent
  if (e >= 31) {
    return sign | 0x7c00;
  }
  if (e >= 1) {
    // Normal: keep the top 10 mantissa bits, round on the 13 dropped ones.
    let result = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (result & 1) !== 0)) {
      result += 1; // a carry into the exponent is correct, up to Inf (0x7c00)
    }
    return sign | result;
  }
  // Subnormal or zero. Values below 2^-25 (half the smallest subnormal) round to zero.
  if (e < -10) {
    return sign;
  }
  // Full significand (implicit 1 only for normal float32 input; exp 0 inputs are far below range).
  const m = mant | 0x800000;
  const shift = 14 - e; // 14..24
  let result = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (result & 1) !== 0)) {
    result += 1; // may reach 0x400, the smallest normal: correct
  }
  return sign | result;
}

/** Encode x (first rounded to float32) to f16 bits, round-to-nearest-even. */
export function f32ToF16(x: number): number {
  scratchF32[0] = x;
  return f32BitsToF16(scratchU32[0]);
}

function getDecodeTable(): Float32Array {
  if (decodeTable === null) {
    const table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) {
      table[i] = f16ToF32(i);
    }
    decodeTable = table;
  }
  return decodeTable;
}

/** Decode a whole array of f16 bit patterns to float32. */
export function decodeF16(src: Uint16Array, dst?: Float32Array): Float32Array {
  const out = dst ?? new Float32Array(src.length);
  if (out.length < src.length) {
    throw new Error(`decodeF16: destination too short (${out.length} < ${src.length})`);
  }
  const table = getDecodeTable();
  for (let i = 0; i < src.length; i++) {
    out[i] = table[src[i]];
  }
  return out;
}

/** Encode a whole float32 array to f16 bit patterns, round-to-nearest-even. */
export function encodeF16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const out = dst ?? new Uint16Array(src.length);
  if (out.length < src.length) {
    throw new Error(`encodeF16: destination too short (${out.length} < ${src.length})`);
  }
  const srcBits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    out[i] = f32BitsToF16(srcBits[i]);
  }
  return out;
}
