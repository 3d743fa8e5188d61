/**
 * WebAssembly SIMD kernels of the CPU backend, in AssemblyScript (built by `npm run build:wasm`
 * into src/backend/cpu/wasm/kernels-wasm.ts; typed and documented in src/backend/cpu/wasm/module.ts).
 *
 * Rules every kernel follows, because one shared WebAssembly.Memory is used by the main thread and
 * by every worker:
 *  - no allocation and no static data: arguments are byte offsets into the memory plus sizes; any
 *    scratch space is an argument too, sized by the matching *_scratch_bytes export;
 *  - the last two parameters are `begin, end`, the sub-range of the parallel dimension this call
 *    computes, so that a pool can split one operation over threads;
 *  - float math is float32 (f32x4), accumulation in float32.
 *
 * FP8 e4m3 codes are decoded in SIMD registers without ever forming a subnormal float (x86 cores
 * take a ~100-cycle assist on subnormal operands; measured 15× slower on the Xeon we target): codes
 * with |code| ≥ 16 map linearly to the bf16 bit pattern (|code| << 4) + (120 << 7), whose high byte
 * comes from a 16-entry in-register table (i8x16.swizzle) on code >> 4 (sign included); the 16
 * smallest magnitudes (exactly |code| · 2^-9) add corrections from two more in-register tables. The
 * bf16 bytes are then interleaved into f32 lanes. No memory lookup table is involved.
 */

// ------------------------------------------------------------------------------------------------
// Tunables
// ------------------------------------------------------------------------------------------------

/** K chunk (floats) of the tiled linear path: the activation chunk [rows, KC] stays in L2. */
const KC: i32 = 256;
/** Keys decoded per tile in indexer_scores. */
const KT: i32 = 32;
/** Cached entries per block in MLA attention. */
const MB: i32 = 16;

const FMT_F32: i32 = 0;
const FMT_BF16: i32 = 1;
const FMT_FP8: i32 = 2;

const MODE_STORE: i32 = 0;
const MODE_ADD: i32 = 1;
/** out = 0 + r · (sx · sw) (first K block of the FP8 activation-quantized GEMM) */
const MODE_AQ_FIRST: i32 = 2;
/** out = out + r · (sx · sw) */
const MODE_AQ: i32 = 3;

// ------------------------------------------------------------------------------------------------
// Small helpers
// ------------------------------------------------------------------------------------------------

/** [Σ a0, Σ a1, Σ a2, Σ a3]: the four horizontal sums in one vector. */
// @ts-ignore: decorator
@inline function hsum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = f32x4.add(v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), v128.shuffle<f32>(a0, a1, 2, 6, 3, 7));
  const s23 = f32x4.add(v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), v128.shuffle<f32>(a2, a3, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(s01, s23, 0, 1, 4, 5), v128.shuffle<f32>(s01, s23, 2, 3, 6, 7));
}

/** Σ of the four lanes. */
// @ts-ignore: decorator
@inline function hsum(a: v128): f32 {
  const b = f32x4.add(a, v128.shuffle<f32>(a, a, 2, 3, 0, 1));
  return f32x4.extract_lane(b, 0) + f32x4.extract_lane(b, 1);
}

// @ts-ignore: decorator
@inline function lane(v: v128, i: i32): f32 {
  if (i == 0) return f32x4.extract_lane(v, 0);
  if (i == 1) return f32x4.extract_lane(v, 1);
  if (i == 2) return f32x4.extract_lane(v, 2);
  return f32x4.extract_lane(v, 3);
}

/** Stores the first n (1..4) lanes of v at p. */
// @ts-ignore: decorator
@inline function storeLanes(p: usize, v: v128, n: i32): void {
  if (n >= 4) {
    v128.store(p, v);
    return;
  }
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/** Loads n (1..4) floats from p into the first lanes, zeros in the rest. */
// @ts-ignore: decorator
@inline function loadLanes(p: usize, n: i32): v128 {
  if (n >= 4) return v128.load(p);
  let v = f32x4.splat(0);
  v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

/** e^x for x ≤ 0 (lanes below -80 give e^-80 ≈ 1.8e-35, never a subnormal); ~2 ulp. */
// @ts-ignore: decorator
@inline function expv(x0: v128): v128 {
  const x = f32x4.min(f32x4.max(x0, f32x4.splat(-80.0)), f32x4.splat(88.0));
  const fx = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(fx, f32x4.splat(0.693359375))), f32x4.mul(fx, f32x4.splat(-2.12194440e-4)));
  const z = f32x4.mul(r, r);
  let y = f32x4.add(f32x4.mul(f32x4.splat(1.9875691500e-4), r), f32x4.splat(1.3981999507e-3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(8.3334519073e-3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(4.1665795894e-2));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(1.6666665459e-1));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(y, z), r), f32x4.splat(1.0));
  const n = i32x4.trunc_sat_f32x4_s(fx);
  return f32x4.mul(y, i32x4.shl(i32x4.add(n, i32x4.splat(127)), 23));
}

/** Scalar e^x through expv (x = -∞ gives exactly 0). */
// @ts-ignore: decorator
@inline function exps(x: f32): f32 {
  if (x == -Infinity) return 0;
  return f32x4.extract_lane(expv(f32x4.splat(x)), 0);
}

// ------------------------------------------------------------------------------------------------
// Element decoding
// ------------------------------------------------------------------------------------------------

/** The f32 value of one e4m3fn code (scalar; used for tails). */
// @ts-ignore: decorator
@inline function e4m3Scalar(c: u32): f32 {
  const a = c & 0x7f;
  let v: f32;
  if (a == 0x7f) v = reinterpret<f32>(<u32>0x7fc00000);
  else if (a < 16) v = <f32>a * <f32>0.001953125;
  else v = reinterpret<f32>((a << 20) + (<u32>120 << 23));
  return c & 0x80 ? -v : v;
}

// @ts-ignore: decorator
@inline function bf16Scalar(b: u32): f32 {
  return reinterpret<f32>(b << 16);
}

/**
 * High bytes of the bf16 patterns of 16 e4m3 codes (raw; a = raw & 0x7f; nan = a == 0x7f).
 * Normal codes: sign | (0x3c + (a >> 4)), a table lookup on raw >> 4; the 16 smallest magnitudes
 * add a correction from a second table (indices ≥ 16 give 0), NaN codes become 0xff.
 */
// @ts-ignore: decorator
@inline function e4Hi(raw: v128, a: v128, nan: v128): v128 {
  const norm = v128.swizzle(
    i8x16(0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43, -68, -67, -66, -65, -64, -63, -62, -61),
    i8x16.shr_u(raw, 4),
  );
  const fix = v128.swizzle(i8x16(-60, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), a);
  return v128.or(i8x16.add(norm, fix), nan);
}

/** Low bytes of the bf16 patterns: (raw << 4) & 0xff, corrected for the 16 smallest magnitudes. */
// @ts-ignore: decorator
@inline function e4Lo(raw: v128, a: v128, nan: v128): v128 {
  const fix = v128.swizzle(i8x16(0, -16, 96, -112, -64, -48, -32, -16, 0, 0, 0, 0, 0, 0, 0, 0), a);
  return v128.or(i8x16.add(i8x16.shl(raw, 4), fix), nan);
}

/** bf16 lanes 0..3 of b (eight u16) as f32x4. */
// @ts-ignore: decorator
@inline function bfLow(b: v128): v128 {
  return i16x8.shuffle(i32x4.splat(0), b, 0, 8, 1, 9, 2, 10, 3, 11);
}

/** bf16 lanes 4..7 of b as f32x4. */
// @ts-ignore: decorator
@inline function bfHigh(b: v128): v128 {
  return i16x8.shuffle(i32x4.splat(0), b, 4, 12, 5, 13, 6, 14, 7, 15);
}

/** bf16 patterns (eight u16) of codes 0..7 from the low/high byte vectors. */
// @ts-ignore: decorator
@inline function e4Bf0(lo: v128, hi: v128): v128 {
  return i8x16.shuffle(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}

/** bf16 patterns of codes 8..15. */
// @ts-ignore: decorator
@inline function e4Bf1(lo: v128, hi: v128): v128 {
  return i8x16.shuffle(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}

/** Decodes 16 e4m3 codes at src to 16 floats at dst, times sc when scaled. */
// @ts-ignore: decorator
@inline function dec16E4m3(src: usize, dst: usize, sc: v128, scaled: bool): void {
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
@inline function dot16E4m3(acc: v128, wp: usize, xe0: v128, xo0: v128, xe1: v128, xo1: v128): v128 {
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
function permuteX(x: usize, dst: usize, n: i32): void {
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
function permuteFp8X(x: usize, dst: usize, K: i32, bi: i32): void {
  for (let k0 = 0; k0 < K; k0 += bi) {
    const len = min(bi, K - k0);
    const l16 = len & ~15;
    permuteX(x + (<usize>k0 << 2), dst + (<usize>k0 << 2), l16);
    for (let k = k0 + l16; k < k0 + len; k++) store<f32>(dst + (<usize>k << 2), load<f32>(x + (<usize>k << 2)));
  }
}

/** dst[0..n) = e4m3(src[0..n)) (· scale when scaled). */
function decodeE4m3Run(src: usize, dst: usize, n: i32, scale: f32, scaled: bool): void {
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
function decodeBf16Run(src: usize, dst: usize, n: i32): void {
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
// Helpers exported for the backend
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

// ------------------------------------------------------------------------------------------------
// Linear layers
// ------------------------------------------------------------------------------------------------

/**
 * The register-blocked core: for t in [0, rows), the four dots of x[t, 0..len) with w0..w3
 * (f32 rows, 16-byte aligned or not), combined into out[t, 0..nq) by `mode`:
 * STORE / ADD the dots, or with the FP8 block scales out = out + dot · (sx[t] · swv).
 * Two activation rows at a time: per 4 columns 6 loads and 8 multiply-adds.
 */
function tile4(
  x: usize, xStride: usize, rows: i32,
  w0: usize, w1: usize, w2: usize, w3: usize, len: i32,
  out: usize, outStride: usize, nq: i32, mode: i32,
  sx: usize, sxStride: usize, swv: v128,
): void {
  const lv = <usize>(len & ~3) << 2;
  const lb = <usize>len << 2;
  let t = 0;
  for (; t + 2 <= rows; t += 2) {
    const xa = x + <usize>t * xStride;
    const xb = xa + xStride;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (let j: usize = 0; j < lv; j += 16) {
      const va = v128.load(xa + j);
      const vb = v128.load(xb + j);
      const u0 = v128.load(w0 + j);
      a0 = f32x4.add(a0, f32x4.mul(va, u0));
      b0 = f32x4.add(b0, f32x4.mul(vb, u0));
      const u1 = v128.load(w1 + j);
      a1 = f32x4.add(a1, f32x4.mul(va, u1));
      b1 = f32x4.add(b1, f32x4.mul(vb, u1));
      const u2 = v128.load(w2 + j);
      a2 = f32x4.add(a2, f32x4.mul(va, u2));
      b2 = f32x4.add(b2, f32x4.mul(vb, u2));
      const u3 = v128.load(w3 + j);
      a3 = f32x4.add(a3, f32x4.mul(va, u3));
      b3 = f32x4.add(b3, f32x4.mul(vb, u3));
    }
    let ra = hsum4(a0, a1, a2, a3);
    let rb = hsum4(b0, b1, b2, b3);
    if (lv < lb) {
      let ta0: f32 = 0, ta1: f32 = 0, ta2: f32 = 0, ta3: f32 = 0;
      let tb0: f32 = 0, tb1: f32 = 0, tb2: f32 = 0, tb3: f32 = 0;
      for (let j = lv; j < lb; j += 4) {
        const xa_ = load<f32>(xa + j);
        const xb_ = load<f32>(xb + j);
        const v0 = load<f32>(w0 + j), v1 = load<f32>(w1 + j), v2 = load<f32>(w2 + j), v3 = load<f32>(w3 + j);
        ta0 += xa_ * v0; ta1 += xa_ * v1; ta2 += xa_ * v2; ta3 += xa_ * v3;
        tb0 += xb_ * v0; tb1 += xb_ * v1; tb2 += xb_ * v2; tb3 += xb_ * v3;
      }
      ra = f32x4.add(ra, f32x4(ta0, ta1, ta2, ta3));
      rb = f32x4.add(rb, f32x4(tb0, tb1, tb2, tb3));
    }
    const oa = out + <usize>t * outStride;
    emit(oa, ra, nq, mode, sx + <usize>t * sxStride, swv);
    emit(oa + outStride, rb, nq, mode, sx + <usize>(t + 1) * sxStride, swv);
  }
  if (t < rows) {
    const xa = x + <usize>t * xStride;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let j: usize = 0; j < lv; j += 16) {
      const va = v128.load(xa + j);
      a0 = f32x4.add(a0, f32x4.mul(va, v128.load(w0 + j)));
      a1 = f32x4.add(a1, f32x4.mul(va, v128.load(w1 + j)));
      a2 = f32x4.add(a2, f32x4.mul(va, v128.load(w2 + j)));
      a3 = f32x4.add(a3, f32x4.mul(va, v128.load(w3 + j)));
    }
    let ra = hsum4(a0, a1, a2, a3);
    if (lv < lb) {
      let ta0: f32 = 0, ta1: f32 = 0, ta2: f32 = 0, ta3: f32 = 0;
      for (let j = lv; j < lb; j += 4) {
        const xa_ = load<f32>(xa + j);
        ta0 += xa_ * load<f32>(w0 + j);
        ta1 += xa_ * load<f32>(w1 + j);
        ta2 += xa_ * load<f32>(w2 + j);
        ta3 += xa_ * load<f32>(w3 + j);
      }
      ra = f32x4.add(ra, f32x4(ta0, ta1, ta2, ta3));
    }
    emit(out + <usize>t * outStride, ra, nq, mode, sx + <usize>t * sxStride, swv);
  }
}

/** Combines four dots r into out[0..nq) according to mode (see tile4). */
// @ts-ignore: decorator
@inline function emit(o: usize, r: v128, nq: i32, mode: i32, sxp: usize, swv: v128): void {
  let v = r;
  if (mode == MODE_ADD) {
    v = f32x4.add(loadLanes(o, nq), r);
  } else if (mode >= MODE_AQ_FIRST) {
    const prod = f32x4.mul(r, f32x4.mul(f32x4.splat(load<f32>(sxp)), swv));
    v = f32x4.add(mode == MODE_AQ ? loadLanes(o, nq) : f32x4.splat(0), prod);
  }
  storeLanes(o, v, nq);
}

/** Decodes W[o, k0 .. k0+len) to real f32 values (block scales applied for fp8). */
function decodeWeightChunk(fmt: i32, w: usize, sInv: usize, bo: i32, bi: i32, K: i32, o: i32, k0: i32, len: i32, dst: usize): void {
  const rowBase = <usize>o * <usize>K;
  if (fmt == FMT_BF16) {
    decodeBf16Run(w + ((rowBase + <usize>k0) << 1), dst, len);
    return;
  }
  // fp8: run by run of constant scale
  const kb = (K + bi - 1) / bi;
  const sRow = sInv + ((<usize>(o / bo) * <usize>kb) << 2);
  let k = k0;
  const kEnd = k0 + len;
  while (k < kEnd) {
    const blk = k / bi;
    const runEnd = min(kEnd, (blk + 1) * bi);
    decodeE4m3Run(w + rowBase + <usize>k, dst + (<usize>(k - k0) << 2), runEnd - k, load<f32>(sRow + (<usize>blk << 2)), true);
    k = runEnd;
  }
}

/** Row stride (bytes) of the packed activation chunk: KC floats plus 64 bytes, off the 4 KiB grid. */
const XS_STRIDE: usize = <usize>(KC * 4 + 64);

/**
 * The tiled path: K in chunks of KC; per chunk the activation chunk [rows, KC] is packed into
 * scratch (contiguous rows at a stride off the 4 KiB grid, so rows do not alias in L1), and weight
 * rows are decoded (or, for f32, copied) four at a time into a scratch tile reused by every row.
 * Rows == 1 with f32 weights reads x and W in place over the whole K.
 */
function linearTiled(fmt: i32, x: usize, w: usize, sInv: usize, bo: i32, bi: i32, out: usize, rows: i32, K: i32, N: i32, scratch: usize, begin: i32, end: i32): void {
  const kRowBytes = <usize>K << 2;
  const outStride = <usize>N << 2;
  const direct = fmt == FMT_F32 && rows == 1;
  const kc = direct ? K : KC;
  const tileStride = <usize>KC << 2;
  const xs = scratch + 4 * tileStride;
  for (let k0 = 0; k0 < K; k0 += kc) {
    const len = min(kc, K - k0);
    let xc = x + (<usize>k0 << 2);
    let xStride = kRowBytes;
    if (!direct) {
      for (let t = 0; t < rows; t++) memory.copy(xs + <usize>t * XS_STRIDE, xc + <usize>t * kRowBytes, <usize>len << 2);
      xc = xs;
      xStride = XS_STRIDE;
    }
    for (let o = begin; o < end; o += 4) {
      const nq = min(4, end - o);
      let w0: usize, w1: usize, w2: usize, w3: usize;
      if (direct) {
        w0 = w + ((<usize>o * <usize>K + <usize>k0) << 2);
        w1 = nq > 1 ? w0 + kRowBytes : w0;
        w2 = nq > 2 ? w1 + kRowBytes : w0;
        w3 = nq > 3 ? w2 + kRowBytes : w0;
      } else {
        for (let i = 0; i < nq; i++) {
          const dst = scratch + <usize>i * tileStride;
          if (fmt == FMT_F32) memory.copy(dst, w + ((<usize>(o + i) * <usize>K + <usize>k0) << 2), <usize>len << 2);
          else decodeWeightChunk(fmt, w, sInv, bo, bi, K, o + i, k0, len, dst);
        }
        w0 = scratch;
        w1 = nq > 1 ? scratch + tileStride : w0;
        w2 = nq > 2 ? scratch + 2 * tileStride : w0;
        w3 = nq > 3 ? scratch + 3 * tileStride : w0;
      }
      tile4(xc, xStride, rows, w0, w1, w2, w3, len, out + (<usize>o << 2), outStride, nq, k0 == 0 ? MODE_STORE : MODE_ADD, 0, 0, f32x4.splat(0));
    }
  }
}

/**
 * One activation row (decode, M = 1) against bf16 weights decoded on the fly, four outputs at a
 * time. xp is the row permuted by permuteX (so each bf16 word pair splits without shuffles).
 */
function linearBf16Row(xp: usize, w: usize, out: usize, K: i32, begin: i32, end: i32): void {
  const rowBytes = <usize>K << 1;
  const k8 = K & ~7;
  const oddMask = i32x4.splat(0xffff0000);
  for (let o = begin; o < end; o += 4) {
    const nq = min(4, end - o);
    const p0 = w + <usize>o * rowBytes;
    const p1 = nq > 1 ? p0 + rowBytes : p0;
    const p2 = nq > 2 ? p1 + rowBytes : p0;
    const p3 = nq > 3 ? p2 + rowBytes : p0;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
    for (let k = 0; k < k8; k += 8) {
      const xq = xp + (<usize>k << 2);
      const xe = v128.load(xq);
      const xo = v128.load(xq, 16);
      const wo = <usize>k << 1;
      const b0 = v128.load(p0 + wo);
      a0 = f32x4.add(a0, f32x4.mul(xe, i32x4.shl(b0, 16)));
      c0 = f32x4.add(c0, f32x4.mul(xo, v128.and(b0, oddMask)));
      const b1 = v128.load(p1 + wo);
      a1 = f32x4.add(a1, f32x4.mul(xe, i32x4.shl(b1, 16)));
      c1 = f32x4.add(c1, f32x4.mul(xo, v128.and(b1, oddMask)));
      const b2 = v128.load(p2 + wo);
      a2 = f32x4.add(a2, f32x4.mul(xe, i32x4.shl(b2, 16)));
      c2 = f32x4.add(c2, f32x4.mul(xo, v128.and(b2, oddMask)));
      const b3 = v128.load(p3 + wo);
      a3 = f32x4.add(a3, f32x4.mul(xe, i32x4.shl(b3, 16)));
      c3 = f32x4.add(c3, f32x4.mul(xo, v128.and(b3, oddMask)));
    }
    let r = hsum4(f32x4.add(a0, c0), f32x4.add(a1, c1), f32x4.add(a2, c2), f32x4.add(a3, c3));
    if (k8 < K) {
      let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
      for (let k = k8; k < K; k++) {
        const xv = load<f32>(xp + (<usize>k << 2));
        const wo = <usize>k << 1;
        t0 += xv * bf16Scalar(load<u16>(p0 + wo));
        t1 += xv * bf16Scalar(load<u16>(p1 + wo));
        t2 += xv * bf16Scalar(load<u16>(p2 + wo));
        t3 += xv * bf16Scalar(load<u16>(p3 + wo));
      }
      r = f32x4.add(r, f32x4(t0, t1, t2, t3));
    }
    storeLanes(out + (<usize>o << 2), r, nq);
  }
}

/**
 * One f32 activation row against e4m3 weights decoded on the fly, four outputs at a time, K block by
 * K block: out += (x_blk · e4m3_blk) · swv. x is permuted by permuteFp8X. With sxp ≠ 0 (activation-quantized GEMM) the block
 * factor is sx[blk] · sw and accumulation follows the reference: out = out + dot · (sx · sw).
 */
function linearFp8Row(x: usize, w: usize, sw: usize, bo: i32, bi: i32, sxp: usize, out: usize, K: i32, begin: i32, end: i32): void {
  const rowBytes = <usize>K;
  const kb = (K + bi - 1) / bi;
  for (let o = begin; o < end; o += 4) {
    const nq = min(4, end - o);
    const p0 = w + <usize>o * rowBytes;
    const p1 = nq > 1 ? p0 + rowBytes : p0;
    const p2 = nq > 2 ? p1 + rowBytes : p0;
    const p3 = nq > 3 ? p2 + rowBytes : p0;
    const s0 = sw + ((<usize>(o / bo) * <usize>kb) << 2);
    const s1 = sw + ((<usize>((o + min(1, nq - 1)) / bo) * <usize>kb) << 2);
    const s2 = sw + ((<usize>((o + min(2, nq - 1)) / bo) * <usize>kb) << 2);
    const s3 = sw + ((<usize>((o + min(3, nq - 1)) / bo) * <usize>kb) << 2);
    let total = f32x4.splat(0);
    for (let b = 0; b < kb; b++) {
      const k0 = b * bi;
      const kEnd = min(K, k0 + bi);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let k = k0;
      for (; k + 16 <= kEnd; k += 16) {
        const xp = x + (<usize>k << 2);
        const xe0 = v128.load(xp);
        const xo0 = v128.load(xp, 16);
        const xe1 = v128.load(xp, 32);
        const xo1 = v128.load(xp, 48);
        const wo = <usize>k;
        a0 = dot16E4m3(a0, p0 + wo, xe0, xo0, xe1, xo1);
        a1 = dot16E4m3(a1, p1 + wo, xe0, xo0, xe1, xo1);
        a2 = dot16E4m3(a2, p2 + wo, xe0, xo0, xe1, xo1);
        a3 = dot16E4m3(a3, p3 + wo, xe0, xo0, xe1, xo1);
      }
      let r = hsum4(a0, a1, a2, a3);
      if (k < kEnd) {
        let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
        for (; k < kEnd; k++) {
          const xv = load<f32>(x + (<usize>k << 2));
          const wo = <usize>k;
          t0 += xv * e4m3Scalar(load<u8>(p0 + wo));
          t1 += xv * e4m3Scalar(load<u8>(p1 + wo));
          t2 += xv * e4m3Scalar(load<u8>(p2 + wo));
          t3 += xv * e4m3Scalar(load<u8>(p3 + wo));
        }
        r = f32x4.add(r, f32x4(t0, t1, t2, t3));
      }
      const bo4 = <usize>b << 2;
      let f = f32x4(load<f32>(s0 + bo4), load<f32>(s1 + bo4), load<f32>(s2 + bo4), load<f32>(s3 + bo4));
      if (sxp != 0) f = f32x4.mul(f32x4.splat(load<f32>(sxp + bo4)), f);
      total = f32x4.add(total, f32x4.mul(r, f));
    }
    storeLanes(out + (<usize>o << 2), total, nq);
  }
}

/** Bytes of scratch the linear kernels need (any rows, K, format). */
export function linear_scratch_bytes(rows: i32, K: i32): i32 {
  if (rows <= 1) return max(4 * KC * 4, ((K + 3) & ~3) * 4);
  return 4 * KC * 4 + rows * <i32>XS_STRIDE;
}

/**
 * out[t, o] = Σ_k x[t, k] · W[o, k] with f32 weights, for t < rows and o in [begin, end).
 * x f32 [rows, K], W f32 [N, K], out f32 [rows, N]. Scratch: linear_scratch_bytes (unused when rows == 1).
 */
export function linear_f32(x: usize, w: usize, out: usize, rows: i32, K: i32, N: i32, scratch: usize, begin: i32, end: i32): void {
  if (end <= begin || rows <= 0) return;
  linearTiled(FMT_F32, x, w, 0, 1, 1, out, rows, K, N, scratch, begin, end);
}

/** As linear_f32 with W bf16 (u16) [N, K]. Scratch: linear_scratch_bytes. */
export function linear_bf16(x: usize, w: usize, out: usize, rows: i32, K: i32, N: i32, scratch: usize, begin: i32, end: i32): void {
  if (end <= begin || rows <= 0) return;
  if (rows == 1) {
    permuteX(x, scratch, K);
    linearBf16Row(scratch, w, out, K, begin, end);
  }
  else linearTiled(FMT_BF16, x, w, 0, 1, 1, out, rows, K, N, scratch, begin, end);
}

/**
 * As linear_f32 with W e4m3 (u8) [N, K] and block scales scaleInv f32 [ceil(N/bo), ceil(K/bi)]:
 * W_real[o, k] = e4m3(W[o, k]) · scaleInv[o / bo][k / bi]. Scratch: linear_scratch_bytes.
 */
export function linear_fp8(x: usize, w: usize, scaleInv: usize, bo: i32, bi: i32, out: usize, rows: i32, K: i32, N: i32, scratch: usize, begin: i32, end: i32): void {
  if (end <= begin || rows <= 0) return;
  if (rows == 1) {
    permuteFp8X(x, scratch, K, bi);
    linearFp8Row(scratch, w, scaleInv, bo, bi, 0, out, K, begin, end);
  }
  else linearTiled(FMT_FP8, x, w, scaleInv, bo, bi, out, rows, K, N, scratch, begin, end);
}

/** Bytes of scratch linear_fp8_aq needs. */
export function linear_fp8_aq_scratch_bytes(rows: i32, K: i32, bi: i32): i32 {
  if (rows <= 1) return ((K + 3) & ~3) * 8;
  const stride = ((bi + 3) & ~3) * 4 + 64;
  return (rows + 4) * stride;
}

/**
 * The reference FP8 GEMM on activations already quantized to e4m3 in blocks of bi:
 * out[t, o] = Σ_b (x8[t, blk b] · w8[o, blk b]) · (sx[t, b] · sw[o / bo, b]), block dots and the
 * sum over blocks in f32, for t < rows and o in [begin, end). xq u8 [rows, K], sx f32
 * [rows, ceil(K/bi)], W u8 [N, K], sw f32 [ceil(N/bo), ceil(K/bi)], out f32 [rows, N].
 * Scratch: linear_fp8_aq_scratch_bytes(rows, K, bi).
 */
export function linear_fp8_aq(xq: usize, sx: usize, w: usize, sw: usize, bo: i32, bi: i32, out: usize, rows: i32, K: i32, N: i32, scratch: usize, begin: i32, end: i32): void {
  if (end <= begin || rows <= 0) return;
  const kb = (K + bi - 1) / bi;
  if (rows == 1) {
    const xp = scratch + (<usize>((K + 3) & ~3) << 2);
    decodeE4m3Run(xq, scratch, K, 1, false);
    permuteFp8X(scratch, xp, K, bi);
    linearFp8Row(xp, w, sw, bo, bi, sx, out, K, begin, end);
    return;
  }
  const biP = (bi + 3) & ~3;
  const xStride = (<usize>biP << 2) + 64; // off the 4 KiB grid
  const xdec = scratch;
  const wt = scratch + <usize>rows * xStride;
  const outStride = <usize>N << 2;
  const sxStride = <usize>kb << 2;
  for (let b = 0; b < kb; b++) {
    const k0 = b * bi;
    const len = min(bi, K - k0);
    for (let t = 0; t < rows; t++) decodeE4m3Run(xq + <usize>t * <usize>K + <usize>k0, xdec + <usize>t * xStride, len, 1, false);
    for (let o = begin; o < end; o += 4) {
      const nq = min(4, end - o);
      for (let i = 0; i < nq; i++) decodeE4m3Run(w + <usize>(o + i) * <usize>K + <usize>k0, wt + <usize>i * xStride, len, 1, false);
      const w0 = wt;
      const w1 = nq > 1 ? wt + xStride : w0;
      const w2 = nq > 2 ? wt + 2 * xStride : w0;
      const w3 = nq > 3 ? wt + 3 * xStride : w0;
      const bo4 = <usize>b << 2;
      const swv = f32x4(
        load<f32>(sw + ((<usize>(o / bo) * <usize>kb) << 2) + bo4),
        load<f32>(sw + ((<usize>((o + min(1, nq - 1)) / bo) * <usize>kb) << 2) + bo4),
        load<f32>(sw + ((<usize>((o + min(2, nq - 1)) / bo) * <usize>kb) << 2) + bo4),
        load<f32>(sw + ((<usize>((o + min(3, nq - 1)) / bo) * <usize>kb) << 2) + bo4),
      );
      tile4(xdec, xStride, rows, w0, w1, w2, w3, len, out + (<usize>o << 2), outStride, nq, b == 0 ? MODE_AQ_FIRST : MODE_AQ, sx + bo4, sxStride, swv);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Lightning indexer
// ------------------------------------------------------------------------------------------------

/** Bytes of scratch indexer_scores needs for head dim D. */
export function indexer_scratch_bytes(D: i32): i32 {
  return KT * D * 4 + KT * 4;
}

/**
 * out[t, s] = kScale[slot] · Σ_h w[t, h] · ReLU(q[t, h, :] · e4m3(kCache[slot, :])) with
 * slot = slots[s], for every query t < T and keys s in [begin, end); −∞ where s > positions[t].
 * q f32 [T, H, D] (decoded query values, any per-head scale folded into w), w f32 [T, H],
 * kCache u8 [*, D], kScale f32 [*], slots i32 [nKeys], positions i32 [T], out f32 [T, nKeys].
 * D % 16 == 0. Keys are decoded once per tile of 32 and reused for all queries and heads.
 * Scratch: indexer_scratch_bytes(D).
 */
export function indexer_scores(
  q: usize, w: usize, kCache: usize, kScale: usize, slots: usize, positions: usize, out: usize,
  T: i32, H: i32, D: i32, nKeys: i32, scratch: usize, begin: i32, end: i32,
): void {
  const rowBytes = <usize>D << 2;
  const kd = scratch;
  const ksc = scratch + <usize>KT * rowBytes;
  const outStride = <usize>nKeys << 2;
  const headsBytes = <usize>H * rowBytes;
  const negInf = f32x4.splat(-Infinity);
  const zero = f32x4.splat(0);
  let maxPos = -1;
  for (let t = 0; t < T; t++) maxPos = max(maxPos, load<i32>(positions + (<usize>t << 2)));
  for (let s0 = begin; s0 < end; s0 += KT) {
    const nk = min(KT, end - s0);
    if (s0 <= maxPos) {
      const nkp = (nk + 3) & ~3;
      for (let j = 0; j < nkp; j++) {
        const dst = kd + <usize>j * rowBytes;
        if (j < nk) {
          const slot = load<i32>(slots + (<usize>(s0 + j) << 2));
          decodeE4m3Run(kCache + <usize>slot * <usize>D, dst, D, 1, false);
          store<f32>(ksc + (<usize>j << 2), load<f32>(kScale + (<usize>slot << 2)));
        } else {
          memory.fill(dst, 0, rowBytes);
          store<f32>(ksc + (<usize>j << 2), 0);
        }
      }
    }
    for (let t = 0; t < T; t++) {
      const lim = load<i32>(positions + (<usize>t << 2));
      const orow = out + <usize>t * outStride + (<usize>s0 << 2);
      const qt = q + <usize>t * headsBytes;
      const wt = w + ((<usize>t * <usize>H) << 2);
      for (let j0 = 0; j0 < nk; j0 += 4) {
        const nv = min(4, nk - j0);
        let res = negInf;
        if (s0 + j0 <= lim) {
          const k0 = kd + <usize>j0 * rowBytes;
          const k1 = k0 + rowBytes;
          const k2 = k1 + rowBytes;
          const k3 = k2 + rowBytes;
          let acc = zero;
          let h = 0;
          for (; h + 2 <= H; h += 2) {
            const qa = qt + <usize>h * rowBytes;
            const qb = qa + rowBytes;
            let a0 = zero, a1 = zero, a2 = zero, a3 = zero;
            let b0 = zero, b1 = zero, b2 = zero, b3 = zero;
            for (let d: usize = 0; d < rowBytes; d += 16) {
              const va = v128.load(qa + d);
              const vb = v128.load(qb + d);
              const u0 = v128.load(k0 + d);
              a0 = f32x4.add(a0, f32x4.mul(va, u0));
              b0 = f32x4.add(b0, f32x4.mul(vb, u0));
              const u1 = v128.load(k1 + d);
              a1 = f32x4.add(a1, f32x4.mul(va, u1));
              b1 = f32x4.add(b1, f32x4.mul(vb, u1));
              const u2 = v128.load(k2 + d);
              a2 = f32x4.add(a2, f32x4.mul(va, u2));
              b2 = f32x4.add(b2, f32x4.mul(vb, u2));
              const u3 = v128.load(k3 + d);
              a3 = f32x4.add(a3, f32x4.mul(va, u3));
              b3 = f32x4.add(b3, f32x4.mul(vb, u3));
            }
            const ra = f32x4.pmax(zero, hsum4(a0, a1, a2, a3));
            const rb = f32x4.pmax(zero, hsum4(b0, b1, b2, b3));
            const wp = wt + (<usize>h << 2);
            acc = f32x4.add(acc, f32x4.add(f32x4.mul(ra, v128.load32_splat(wp)), f32x4.mul(rb, v128.load32_splat(wp, 4))));
          }
          if (h < H) {
            const qa = qt + <usize>h * rowBytes;
            let a0 = zero, a1 = zero, a2 = zero, a3 = zero;
            for (let d: usize = 0; d < rowBytes; d += 16) {
              const va = v128.load(qa + d);
              a0 = f32x4.add(a0, f32x4.mul(va, v128.load(k0 + d)));
              a1 = f32x4.add(a1, f32x4.mul(va, v128.load(k1 + d)));
              a2 = f32x4.add(a2, f32x4.mul(va, v128.load(k2 + d)));
              a3 = f32x4.add(a3, f32x4.mul(va, v128.load(k3 + d)));
            }
            const ra = f32x4.pmax(zero, hsum4(a0, a1, a2, a3));
            acc = f32x4.add(acc, f32x4.mul(ra, v128.load32_splat(wt + (<usize>h << 2))));
          }
          res = f32x4.mul(acc, v128.load(ksc + (<usize>j0 << 2)));
          if (s0 + j0 + 3 > lim) {
            const idx = i32x4.add(i32x4.splat(s0 + j0), i32x4(0, 1, 2, 3));
            res = v128.bitselect(negInf, res, i32x4.gt_s(idx, i32x4.splat(lim)));
          }
        }
        storeLanes(orow + (<usize>j0 << 2), res, nv);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------
// MLA attention (absorbed / MQA form), split-KV flash decoding
// ------------------------------------------------------------------------------------------------

/** Bytes per cached latent row: f32 / bf16 [r + dr], or FlashMLA's fp8 row (r + 4·r/128 + 2·dr). */
// @ts-ignore: decorator
@inline function latentRowBytes(fmt: i32, r: i32, dr: i32): i32 {
  if (fmt == FMT_F32) return (r + dr) << 2;
  if (fmt == FMT_BF16) return (r + dr) << 1;
  return r + (r >> 5) + (dr << 1);
}

/** Bytes of scratch mla_partial and mla_attention need. */
export function mla_scratch_bytes(H: i32, r: i32, dr: i32): i32 {
  return H * MB * 4 + MB * 4 + MB * (r + dr) * 4 + 2 * ((H + 3) & ~3) * 4;
}

/**
 * Online-softmax attention of one query row over list entries [eBegin, eEnd): writes the unnormalized
 * state acc [H, r] (Σ e^(s - m) · c_kv), m [H] (running max) and l [H] (Σ e^(s - m)).
 * qL f32 [H, r] and qP f32 [H, dr] of the row; latent rows in f32, bf16 or fp8 (fmt 0, 1, 2; see
 * latentRowBytes); list i32 (slots, −1 skipped). Non-f32 rows are decoded once per block into scratch.
 */
function mlaRow(
  qL: usize, qP: usize, latent: usize, fmt: i32, list: usize, eBegin: i32, eEnd: i32,
  H: i32, r: i32, dr: i32, scale: f32, acc: usize, mArr: usize, lArr: usize, scratch: usize,
): void {
  const S = scratch;
  const ptrs = S + <usize>(H * MB * 4);
  const dec = ptrs + <usize>(MB * 4);
  const rowE = r + dr;
  const rowIn = <usize>latentRowBytes(fmt, r, dr);
  const rB = <usize>r << 2;
  const drB = <usize>dr << 2;
  const r16 = <usize>(r & ~15) << 2;
  const sRowB = <usize>(MB * 4);
  const zero = f32x4.splat(0);
  const negInf = f32x4.splat(-Infinity);
  const vscale = f32x4.splat(scale);
  for (let h = 0; h < H; h++) {
    store<f32>(mArr + (<usize>h << 2), -Infinity);
    store<f32>(lArr + (<usize>h << 2), 0);
  }
  memory.fill(acc, 0, <usize>H * rB);
  let e = eBegin;
  while (e < eEnd) {
    // Gather the next block of up to MB attended entries.
    let nb = 0;
    while (e < eEnd && nb < MB) {
      const slot = load<i32>(list + (<usize>e << 2));
      e++;
      if (slot < 0) continue;
      const src = latent + <usize>slot * rowIn;
      let p = src;
      if (fmt != FMT_F32) {
        p = dec + <usize>nb * (<usize>rowE << 2);
        if (fmt == FMT_BF16) {
          decodeBf16Run(src, p, rowE);
        } else {
          // FlashMLA fp8 row: r e4m3 codes, r/128 f32 scales, dr bf16
          const nBlk = r >> 7;
          for (let b = 0; b < nBlk; b++) {
            decodeE4m3Run(src + (<usize>b << 7), p + (<usize>b << 9), 128, load<f32>(src + <usize>r + (<usize>b << 2)), true);
          }
          decodeBf16Run(src + <usize>r + (<usize>nBlk << 2), p + (<usize>r << 2), dr);
        }
      }
      store<u32>(ptrs + (<usize>nb << 2), <u32>p);
      nb++;
    }
    if (nb == 0) break;
    const nbp = (nb + 3) & ~3;
    for (let j = nb; j < nbp; j++) store<u32>(ptrs + (<usize>j << 2), load<u32>(ptrs));

    // Scores S[h, j] = (qL_h · c_j + qP_h · k_j) · scale, two heads × four entries at a time.
    for (let j0 = 0; j0 < nbp; j0 += 4) {
      const c0 = <usize>load<u32>(ptrs + (<usize>j0 << 2));
      const c1 = <usize>load<u32>(ptrs + (<usize>j0 << 2), 4);
      const c2 = <usize>load<u32>(ptrs + (<usize>j0 << 2), 8);
      const c3 = <usize>load<u32>(ptrs + (<usize>j0 << 2), 12);
      const e0 = c0 + rB, e1 = c1 + rB, e2 = c2 + rB, e3 = c3 + rB;
      let h = 0;
      for (; h + 2 <= H; h += 2) {
        const qa = qL + <usize>h * rB;
        const qb = qa + rB;
        let a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        let b0 = zero, b1 = zero, b2 = zero, b3 = zero;
        for (let d: usize = 0; d < rB; d += 16) {
          const va = v128.load(qa + d);
          const vb = v128.load(qb + d);
          const u0 = v128.load(c0 + d);
          a0 = f32x4.add(a0, f32x4.mul(va, u0));
          b0 = f32x4.add(b0, f32x4.mul(vb, u0));
          const u1 = v128.load(c1 + d);
          a1 = f32x4.add(a1, f32x4.mul(va, u1));
          b1 = f32x4.add(b1, f32x4.mul(vb, u1));
          const u2 = v128.load(c2 + d);
          a2 = f32x4.add(a2, f32x4.mul(va, u2));
          b2 = f32x4.add(b2, f32x4.mul(vb, u2));
          const u3 = v128.load(c3 + d);
          a3 = f32x4.add(a3, f32x4.mul(va, u3));
          b3 = f32x4.add(b3, f32x4.mul(vb, u3));
        }
        const pa = qP + <usize>h * drB;
        const pb = pa + drB;
        for (let d: usize = 0; d < drB; d += 16) {
          const va = v128.load(pa + d);
          const vb = v128.load(pb + d);
          const u0 = v128.load(e0 + d);
          a0 = f32x4.add(a0, f32x4.mul(va, u0));
          b0 = f32x4.add(b0, f32x4.mul(vb, u0));
          const u1 = v128.load(e1 + d);
          a1 = f32x4.add(a1, f32x4.mul(va, u1));
          b1 = f32x4.add(b1, f32x4.mul(vb, u1));
          const u2 = v128.load(e2 + d);
          a2 = f32x4.add(a2, f32x4.mul(va, u2));
          b2 = f32x4.add(b2, f32x4.mul(vb, u2));
          const u3 = v128.load(e3 + d);
          a3 = f32x4.add(a3, f32x4.mul(va, u3));
          b3 = f32x4.add(b3, f32x4.mul(vb, u3));
        }
        const sp = S + <usize>h * sRowB + (<usize>j0 << 2);
        v128.store(sp, f32x4.mul(hsum4(a0, a1, a2, a3), vscale));
        v128.store(sp + sRowB, f32x4.mul(hsum4(b0, b1, b2, b3), vscale));
      }
      if (h < H) {
        const qa = qL + <usize>h * rB;
        let a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        for (let d: usize = 0; d < rB; d += 16) {
          const va = v128.load(qa + d);
          a0 = f32x4.add(a0, f32x4.mul(va, v128.load(c0 + d)));
          a1 = f32x4.add(a1, f32x4.mul(va, v128.load(c1 + d)));
          a2 = f32x4.add(a2, f32x4.mul(va, v128.load(c2 + d)));
          a3 = f32x4.add(a3, f32x4.mul(va, v128.load(c3 + d)));
        }
        const pa = qP + <usize>h * drB;
        for (let d: usize = 0; d < drB; d += 16) {
          const va = v128.load(pa + d);
          a0 = f32x4.add(a0, f32x4.mul(va, v128.load(e0 + d)));
          a1 = f32x4.add(a1, f32x4.mul(va, v128.load(e1 + d)));
          a2 = f32x4.add(a2, f32x4.mul(va, v128.load(e2 + d)));
          a3 = f32x4.add(a3, f32x4.mul(va, v128.load(e3 + d)));
        }
        v128.store(S + <usize>h * sRowB + (<usize>j0 << 2), f32x4.mul(hsum4(a0, a1, a2, a3), vscale));
      }
    }

    // Online softmax and accumulation, two heads at a time:
    // acc_h = acc_h · e^(m_old - m_new) + Σ_j e^(S[h, j] - m_new) · c_j.
    const lastMask = i32x4.ge_s(i32x4.add(i32x4.splat(nbp - 4), i32x4(0, 1, 2, 3)), i32x4.splat(nb));
    for (let h = 0; h < H; h += 2) {
      const two = h + 1 < H;
      const shA = S + <usize>h * sRowB;
      const shB = shA + sRowB;
      const corrA = softmaxStep(shA, nb, nbp, lastMask, mArr + (<usize>h << 2), lArr + (<usize>h << 2));
      const accA = acc + <usize>h * rB;
      if (two) {
        const corrB = softmaxStep(shB, nb, nbp, lastMask, mArr + (<usize>(h + 1) << 2), lArr + (<usize>(h + 1) << 2));
        const accB = accA + rB;
        const ca = f32x4.splat(corrA);
        const cb = f32x4.splat(corrB);
        let d: usize = 0;
        for (; d < r16; d += 64) {
          const qa = accA + d;
          const qb = accB + d;
          let x0 = f32x4.mul(v128.load(qa), ca), x1 = f32x4.mul(v128.load(qa, 16), ca);
          let x2 = f32x4.mul(v128.load(qa, 32), ca), x3 = f32x4.mul(v128.load(qa, 48), ca);
          let y0 = f32x4.mul(v128.load(qb), cb), y1 = f32x4.mul(v128.load(qb, 16), cb);
          let y2 = f32x4.mul(v128.load(qb, 32), cb), y3 = f32x4.mul(v128.load(qb, 48), cb);
          for (let j = 0; j < nb; j++) {
            const cp = <usize>load<u32>(ptrs + (<usize>j << 2)) + d;
            const pa = v128.load32_splat(shA + (<usize>j << 2));
            const pb = v128.load32_splat(shB + (<usize>j << 2));
            const u0 = v128.load(cp);
            x0 = f32x4.add(x0, f32x4.mul(pa, u0));
            y0 = f32x4.add(y0, f32x4.mul(pb, u0));
            const u1 = v128.load(cp, 16);
            x1 = f32x4.add(x1, f32x4.mul(pa, u1));
            y1 = f32x4.add(y1, f32x4.mul(pb, u1));
            const u2 = v128.load(cp, 32);
            x2 = f32x4.add(x2, f32x4.mul(pa, u2));
            y2 = f32x4.add(y2, f32x4.mul(pb, u2));
            const u3 = v128.load(cp, 48);
            x3 = f32x4.add(x3, f32x4.mul(pa, u3));
            y3 = f32x4.add(y3, f32x4.mul(pb, u3));
          }
          v128.store(qa, x0);
          v128.store(qa, x1, 16);
          v128.store(qa, x2, 32);
          v128.store(qa, x3, 48);
          v128.store(qb, y0);
          v128.store(qb, y1, 16);
          v128.store(qb, y2, 32);
          v128.store(qb, y3, 48);
        }
        for (; d < rB; d += 16) {
          let x0 = f32x4.mul(v128.load(accA + d), ca);
          let y0 = f32x4.mul(v128.load(accB + d), cb);
          for (let j = 0; j < nb; j++) {
            const u0 = v128.load(<usize>load<u32>(ptrs + (<usize>j << 2)) + d);
            x0 = f32x4.add(x0, f32x4.mul(v128.load32_splat(shA + (<usize>j << 2)), u0));
            y0 = f32x4.add(y0, f32x4.mul(v128.load32_splat(shB + (<usize>j << 2)), u0));
          }
          v128.store(accA + d, x0);
          v128.store(accB + d, y0);
        }
      } else {
        const ca = f32x4.splat(corrA);
        for (let d: usize = 0; d < rB; d += 16) {
          let x0 = f32x4.mul(v128.load(accA + d), ca);
          for (let j = 0; j < nb; j++) {
            const u0 = v128.load(<usize>load<u32>(ptrs + (<usize>j << 2)) + d);
            x0 = f32x4.add(x0, f32x4.mul(v128.load32_splat(shA + (<usize>j << 2)), u0));
          }
          v128.store(accA + d, x0);
        }
      }
    }
  }
}

/**
 * One head's online-softmax step over a block of scores sh[0..nb) (padded to nbp, lanes past nb
 * masked by lastMask in the last quad): updates m and l, turns the scores into e^(s - m_new) in
 * place (0 in padded lanes) and returns the rescale factor e^(m_old - m_new) of the accumulator.
 */
// @ts-ignore: decorator
@inline function softmaxStep(sh: usize, nb: i32, nbp: i32, lastMask: v128, mp: usize, lp: usize): f32 {
  const negInf = f32x4.splat(-Infinity);
  const lastP = sh + (<usize>(nbp - 4) << 2);
  v128.store(lastP, v128.bitselect(negInf, v128.load(lastP), lastMask));
  let mv = negInf;
  for (let j0 = 0; j0 < nbp; j0 += 4) mv = f32x4.pmax(mv, v128.load(sh + (<usize>j0 << 2)));
  mv = f32x4.pmax(mv, v128.shuffle<f32>(mv, mv, 2, 3, 0, 1));
  const bmax = max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1));
  const mOld = load<f32>(mp);
  const mNew = max(mOld, bmax);
  const corr = exps(mOld - mNew);
  const mNewV = f32x4.splat(mNew);
  let sum = f32x4.splat(0);
  for (let j0 = 0; j0 < nbp; j0 += 4) {
    const pp = sh + (<usize>j0 << 2);
    let p = expv(f32x4.sub(v128.load(pp), mNewV));
    if (j0 + 4 > nb) p = v128.andnot(p, lastMask);
    v128.store(pp, p);
    sum = f32x4.add(sum, p);
  }
  store<f32>(mp, mNew);
  store<f32>(lp, load<f32>(lp) * corr + hsum(sum));
  return corr;
}

/**
 * Partial attention of query row t over entries [begin, end) of its list, for merging with
 * mla_merge: accOut f32 [H, r] = Σ_j e^(s_j - m) · c_kv[j], mOut f32 [H] = max_j s_j (−∞ if no
 * entry), lOut f32 [H] = Σ_j e^(s_j - m), where s_j = (qLat[t, h] · c_kv[j] + qPe[t, h] · k_rope[j]) · scale.
 * qLat f32 [T, H, r], qPe f32 [T, H, dr], latent rows [*, r + dr] f32 (fmt 0) or bf16 (fmt 1), or
 * FlashMLA fp8 rows (fmt 2: r e4m3 codes, r/128 f32 scales, dr bf16; r % 128 == 0),
 * list i32 [T, n] of cache slots (−1 = skip). r % 4 == 0, dr % 4 == 0. Scratch: mla_scratch_bytes.
 */
export function mla_partial(
  qLat: usize, qPe: usize, latent: usize, fmt: i32, list: usize, n: i32,
  H: i32, r: i32, dr: i32, scale: f32, t: i32,
  accOut: usize, mOut: usize, lOut: usize, scratch: usize, begin: i32, end: i32,
): void {
  const rowList = list + ((<usize>t * <usize>n) << 2);
  const qL = qLat + ((<usize>t * <usize>H * <usize>r) << 2);
  const qP = qPe + ((<usize>t * <usize>H * <usize>dr) << 2);
  mlaRow(qL, qP, latent, fmt, rowList, max(begin, 0), min(end, n), H, r, dr, scale, accOut, mOut, lOut, scratch);
}

/**
 * Merges nParts partial states (laid out one after another: acc f32 [nParts, H, r], m and l f32
 * [nParts, H]) into out f32 [H, r] = Σ_p e^(m_p - M) acc_p / Σ_p e^(m_p - M) l_p, for heads
 * [begin, end). Heads without any entry give 0.
 */
export function mla_merge(acc: usize, m: usize, l: usize, nParts: i32, H: i32, r: i32, out: usize, begin: i32, end: i32): void {
  const rB = <usize>r << 2;
  const partAcc = <usize>H * rB;
  const partMl = <usize>H << 2;
  for (let h = begin; h < end; h++) {
    const hOff = <usize>h << 2;
    const o = out + <usize>h * rB;
    let M: f32 = -Infinity;
    for (let p = 0; p < nParts; p++) M = max(M, load<f32>(m + <usize>p * partMl + hOff));
    let L: f32 = 0;
    memory.fill(o, 0, rB);
    if (M == -Infinity) continue;
    for (let p = 0; p < nParts; p++) {
      const wgt = exps(load<f32>(m + <usize>p * partMl + hOff) - M);
      const lp = load<f32>(l + <usize>p * partMl + hOff);
      if (lp == 0) continue;
      L += lp * wgt;
      const wv = f32x4.splat(wgt);
      const a = acc + <usize>p * partAcc + <usize>h * rB;
      for (let d: usize = 0; d < rB; d += 16) v128.store(o + d, f32x4.add(v128.load(o + d), f32x4.mul(v128.load(a + d), wv)));
    }
    const inv = f32x4.splat(L);
    for (let d: usize = 0; d < rB; d += 16) v128.store(o + d, f32x4.div(v128.load(o + d), inv));
  }
}

/**
 * The common case in one call: out f32 [T, H, r] for query rows t in [begin, end), each over all n
 * entries of its list (arguments as in mla_partial); rows without any entry give 0.
 * Scratch: mla_scratch_bytes(H, r, dr).
 */
export function mla_attention(
  qLat: usize, qPe: usize, latent: usize, fmt: i32, list: usize, n: i32,
  H: i32, r: i32, dr: i32, scale: f32, out: usize, scratch: usize, begin: i32, end: i32,
): void {
  const rB = <usize>r << 2;
  const mArr = scratch + <usize>mla_scratch_bytes(H, r, dr) - <usize>(2 * ((H + 3) & ~3) * 4);
  const lArr = mArr + <usize>(((H + 3) & ~3) * 4);
  for (let t = begin; t < end; t++) {
    const o = out + <usize>t * <usize>H * rB;
    mlaRow(
      qLat + ((<usize>t * <usize>H * <usize>r) << 2), qPe + ((<usize>t * <usize>H * <usize>dr) << 2),
      latent, fmt, list + ((<usize>t * <usize>n) << 2), 0, n, H, r, dr, scale, o, mArr, lArr, scratch,
    );
    for (let h = 0; h < H; h++) {
      const lh = load<f32>(lArr + (<usize>h << 2));
      const oh = o + <usize>h * rB;
      if (lh == 0) {
        memory.fill(oh, 0, rB);
        continue;
      }
      const inv = f32x4.splat(lh);
      for (let d: usize = 0; d < rB; d += 16) v128.store(oh + d, f32x4.div(v128.load(oh + d), inv));
    }
  }
}
