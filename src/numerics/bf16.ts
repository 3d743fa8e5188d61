/**
 * bfloat16 <-> float32 conversion.
 *
 * bf16 is the upper 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits).
 * Encoding rounds to nearest, ties to even, exactly as IEEE / PyTorch do.
 */

/** Shared scratch view used to reinterpret a float32 value as its bit pattern. */
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Decode one bf16 bit pattern (0..65535) to a number (exactly representable as float32). */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

/**
 * Round the float32 with bit pattern `bits` (a uint32) to bf16 bits, round-to-nearest-even.
 * NaN becomes the quiet NaN 0x7fc0 with the input's sign.
 */
export function f32BitsToBf16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  if ((bits & 0x7fffffff) > 0x7f800000) {
    return sign | 0x7fc0;
  }
  // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even. A carry out of
  // the mantissa bumps the exponent, which turns the largest finite values into Inf as IEEE does.
  const lsb = (bits >>> 16) & 1;
  // The sum stays below 2^32 because NaN patterns were handled above.
  return (bits + 0x7fff + lsb) >>> 16;
}

/** Encode x (first rounded to float32) to bf16 bits, round-to-nearest-even. */
export function f32ToBf16(x: number): number {
  scratchF32[0] = x;
  return f32BitsToBf16(scratchU32[0]);
}

/** Decode a whole array of bf16 bit patterns to float32 (no per-element allocation). */
export function decodeBf16(src: Uint16Array, dst?: Float32Array): Float32Array {
  const out = dst ?? new Float32Array(src.length);
  if (out.length < src.length) {
    throw new Error(`decodeBf16: destination too short (${out.length} < ${src.length})`);
  }
  const outBits = new Uint32Array(out.buffer, out.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    outBits[i] = src[i] << 16;
  }
  return out;
}

/** Encode a whole float32 array to bf16 bit patterns, round-to-nearest-even. */
export function encodeBf16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const out = dst ?? new Uint16Array(src.length);
  if (out.length < src.length) {
    throw new Error(`encodeBf16: destination too short (${out.length} < ${src.length})`);
  }
  const srcBits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    out[i] = f32BitsToBf16(srcBits[i]);
  }
  return out;
}
