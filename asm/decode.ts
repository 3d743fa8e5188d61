/**
 * Element decoding of the WebAssembly SIMD kernels (asm/kernels.ts is the entry): FP8 e4m3 and bf16
 * decode helpers (scalar and in-register SIMD), the fused e4m3 dot of the row kernels, the
 * activation permutation those row kernels read, and the exported decode_e4m3 / decode_bf16 /
 * encode_bf16 kernels.
 *
 * FP8 e4m3 codes are decoded in SIMD registers without ever forming a subnormal float (x86 cores
 * take a ~100-cycle assist on subnormal operands; measured 15× slower on the Xeon we target): codes
 * with |code| ≥ 16 map linearly to the bf16 bit pattern (|code| << 4) + (120 << 7), whose high byte
 * comes from a 16-entry in-register table (i8x16.swizzle) on code >> 4 (sign included); the 16
 * smallest magnitudes (exactly |code| · 2^-9) add corrections from two more in-register tables. The
 * bf16 bytes are then interleaved into f32 lanes. No memory lookup table is involved.
 */

/** The f32 value of one e4m3fn code (scalar; used for tails). */
// @ts-ignore: decorator
@inline export function e4m3Scalar(c: u32): f32 {
  const a = c & 0x7f;
  let v: f32;
  if (a == 0x7f) v = reinterpret<f32>(<u32>0x7fc00000);
  else if (a < 16) v = <f32>a * <f32>0.001953125;
  else v = reinterpret<f32>((a << 20) + (<u32>120 << 23));
  return c & 0x80 ? -v : v;
}

// @ts-ignore: decorator
@inline export function bf16Scalar(b: u32): f32 {
  return reinterpret<f32>(b << 16);
}

/**
 * High bytes of the bf16 patterns of 16 e4m3 codes (raw; a = raw & 0x7f; nan = a == 0x7f).
 * Normal codes: sign | (0x3c + (a >> 4)), a table lookup on raw >> 4; the 16 smallest magnitudes
 * add a correction from a second table (indices ≥ 16 give 0), NaN codes become 0xff.
 */
// @ts-ignore: decorator
@inline export function e4Hi(raw: v128, a: v128, nan: v128): v128 {
  const norm = v128.swizzle(
    i8x16(0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43, -68, -67, -66, -65, -64, -63, -62, -61),
    i8x16.shr_u(raw, 4),
  );
  const fix = v128.swizzle(i8x16(-60, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), a);
  return v128.or(i8x16.add(norm, fix), nan);
}

/** Low bytes of the bf16 patterns: (raw << 4) & 0xff, corrected for the 16 smallest magnitudes. */
// @ts-ignore: decorator
@inline export function e4Lo(raw: v128, a: v128, nan: v128): v128 {
  const fix = v128.swizzle(i8x16(0, -16, 96, -112, -64, -48, -32, -16, 0, 0, 0, 0, 0, 0, 0, 0), a);
  return v128.or(i8x16.add(i8x16.shl(raw, 4), fix), nan);
}

/** bf16 lanes 0..3 of b (eight u16) as f32x4. */
// @ts-ignore: decorator
@inline export function bfLow(b: v128): v128 {
  return i16x8.shuffle(i32x4.splat(0), b, 0, 8, 1, 9, 2, 10, 3, 11);
}

/** bf16 lanes 4..7 of b as f32x4. */
// @ts-ignore: decorator
@inline export function bfHigh(b: v128): v128 {
  return i16x8.shuffle(i32x4.splat(0), b, 4, 12, 5, 13, 6, 14, 7, 15);
}

/** bf16 patterns (eight u16) of codes 0..7 from the low/high byte vectors. */
// @ts-ignore: decorator
@inline export function e4Bf0(lo: v128, hi: v128): v128 {
  return i8x16.shuffle(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}

/** bf16 patterns of codes 8..15. */
// @ts-ignore: decorator
@inline export function e4Bf1(lo: v128, hi: v128): v128 {
  return i8x16.shuffle(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}

/** Decodes 16 e4m3 codes at src to 16 floats at dst, times sc when scaled. */
// @ts-ignore: decorator
@inline export function dec16E4m3(src: usize, dst: usize, sc: v128, scaled: bool): void {
  const raw = v128.load(src);
  const a = v128.and(raw, i8x16.splat(0x7f));
  const nan = i8x16.eq(a, i8x16.splat(0x7f));
  const hi = e4Hi(raw, a, nan);
  const lo = e4Lo(raw, a, nan);
  const b0 = e4Bf0(lo, hi);
  const b1 = e4Bf1(lo, hi);
  if (scaled) {
    v128.store(dst, f32x4.mul(bfLow(b0), sc));
    v128.store(dst, f32x4.mul(bfHigh(b0), sc), 16);
    v128.store(dst, f32x4.mul(bfLow(b1), sc), 32);
    v128.store(dst, f32x4.mul(bfHigh(b1), sc), 48);
  } else {
    v128.store(dst, bfLow(b0));
    v128.store(dst, bfHigh(b0), 16);
    v128.store(dst, bfLow(b1), 32);
    v128.store(dst, bfHigh(b1), 48);
  }
}

/**
 * acc + Σ over 16 columns of x · e4m3(w codes at wp), with the activations pre-permuted (see
 * permuteX): xe0/xo0 hold x[0, 2, 4, 6] / x[1, 3, 5, 7], xe1/xo1 the same for columns 8..15. The
 * bf16 words of the codes are then split into f32 lanes by shl 16 (even) and and 0xffff0000 (odd),
 * integer ops rather than shuffles.
 */
// @ts-ignore: decorator
@inline export function dot16E4m3(acc: v128, wp: usize, xe0: v128, xo0: v128, xe1: v128, xo1: v128): v128 {
  const raw = v128.load(wp);
  const a = v128.and(raw, i8x16.splat(0x7f));
  const nan = i8x16.eq(a, i8x16.splat(0x7f));
  const hi = e4Hi(raw, a, nan);
  const lo = e4Lo(raw, a, nan);
  const w0 = e4Bf0(lo, hi);
  const w1 = e4Bf1(lo, hi);
  const oddMask = i32x4.splat(0xffff0000);
  const p0 = f32x4.add(f32x4.mul(xe0, i32x4.shl(w0, 16)), f32x4.mul(xo0, v128.and(w0, oddMask)));
  const p1 = f32x4.add(f32x4.mul(xe1, i32x4.shl(w1, 16)), f32x4.mul(xo1, v128.and(w1, oddMask)));
  return f32x4.add(acc, f32x4.add(p0, p1));
}

/**
 * dst = x[0..n) with every group of 8 columns (starting at 0, 8, ...; a tail shorter than 8 is
 * copied as is) reordered to [0, 2, 4, 6, 1, 3, 5, 7]: the order in which a 16-byte load of eight
 * bf16 words yields its values as (shl 16, and 0xffff0000).
 */
export function permuteX(x: usize, dst: usize, n: i32): void {
  let k = 0;
  for (; k + 8 <= n; k += 8) {
    const p = x + (<usize>k << 2);
    const v0 = v128.load(p);
    const v1 = v128.load(p, 16);
    const d = dst + (<usize>k << 2);
    v128.store(d, v128.shuffle<f32>(v0, v1, 0, 2, 4, 6));
    v128.store(d, v128.shuffle<f32>(v0, v1, 1, 3, 5, 7), 16);
  }
  for (; k < n; k++) store<f32>(dst + (<usize>k << 2), load<f32>(x + (<usize>k << 2)));
}

/**
 * The activation order linearFp8Row reads: per block of bi columns, permuteX on the whole groups of
 * 16 (those the SIMD loop covers), the rest in natural order for the scalar tail.
 */
export function permuteFp8X(x: usize, dst: usize, K: i32, bi: i32): void {
  for (let k0 = 0; k0 < K; k0 += bi) {
    const len = min(bi, K - k0);
    const l16 = len & ~15;
    permuteX(x + (<usize>k0 << 2), dst + (<usize>k0 << 2), l16);
    for (let k = k0 + l16; k < k0 + len; k++) store<f32>(dst + (<usize>k << 2), load<f32>(x + (<usize>k << 2)));
  }
}

/** dst[0..n) = e4m3(src[0..n)) (· scale when scaled). */
export function decodeE4m3Run(src: usize, dst: usize, n: i32, scale: f32, scaled: bool): void {
  const sc = f32x4.splat(scale);
  let i = 0;
  if (scaled) {
    for (; i + 16 <= n; i += 16) dec16E4m3(src + <usize>i, dst + (<usize>i << 2), sc, true);
    for (; i < n; i++) store<f32>(dst + (<usize>i << 2), e4m3Scalar(load<u8>(src + <usize>i)) * scale);
  } else {
    for (; i + 16 <= n; i += 16) dec16E4m3(src + <usize>i, dst + (<usize>i << 2), sc, false);
    for (; i < n; i++) store<f32>(dst + (<usize>i << 2), e4m3Scalar(load<u8>(src + <usize>i)));
  }
}

/** dst[0..n) = bf16(src[0..n)). */
export function decodeBf16Run(src: usize, dst: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const b = v128.load(src + (<usize>i << 1));
    const d = dst + (<usize>i << 2);
    v128.store(d, bfLow(b));
    v128.store(d, bfHigh(b), 16);
  }
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), bf16Scalar(load<u16>(src + (<usize>i << 1))));
}

// ------------------------------------------------------------------------------------------------
// Kernels (re-exported by asm/kernels.ts)
// ------------------------------------------------------------------------------------------------

/** dst f32[i] = e4m3(src u8[i]) for i in [begin, end). */
export function decode_e4m3(src: usize, dst: usize, begin: i32, end: i32): void {
  if (end <= begin) return;
  decodeE4m3Run(src + <usize>begin, dst + (<usize>begin << 2), end - begin, 1, false);
}

/** dst f32[i] = bf16(src u16[i]) for i in [begin, end). */
export function decode_bf16(src: usize, dst: usize, begin: i32, end: i32): void {
  if (end <= begin) return;
  decodeBf16Run(src + (<usize>begin << 1), dst + (<usize>begin << 2), end - begin);
}

/** dst u16[i] = bf16 of src f32[i], round to nearest even (NaN → quiet NaN with the sign), for i in [begin, end). */
export function encode_bf16(src: usize, dst: usize, begin: i32, end: i32): void {
  let i = begin;
  for (; i + 8 <= end; i += 8) {
    const p = src + (<usize>i << 2);
    const b0 = encBf16x4(v128.load(p));
    const b1 = encBf16x4(v128.load(p, 16));
    v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(b0, b1));
  }
  for (; i < end; i++) {
    const bits = load<u32>(src + (<usize>i << 2));
    let r: u32;
    if ((bits & 0x7fffffff) > 0x7f800000) r = ((bits >>> 16) & 0x8000) | 0x7fc0;
    else r = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
    store<u16>(dst + (<usize>i << 1), <u16>r);
  }
}

/** Four f32 bit patterns → their bf16 patterns (in the low halves of i32 lanes). */
// @ts-ignore: decorator
@inline function encBf16x4(v: v128): v128 {
  const lsb = v128.and(i32x4.shr_u(v, 16), i32x4.splat(1));
  const rounded = i32x4.shr_u(i32x4.add(i32x4.add(v, i32x4.splat(0x7fff)), lsb), 16);
  const isNan = i32x4.gt_u(v128.and(v, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  const nanBits = v128.or(v128.and(i32x4.shr_u(v, 16), i32x4.splat(0x8000)), i32x4.splat(0x7fc0));
  return v128.bitselect(nanBits, rounded, isNan);
}
