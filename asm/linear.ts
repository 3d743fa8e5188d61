/**
 * Linear layers of the WebAssembly SIMD kernels (asm/kernels.ts is the entry): out = x · Wᵀ with
 * f32, bf16 or FP8 e4m3 (block-scaled) weights, and the FP8 GEMM on activation-quantized inputs.
 * Exports linear_f32, linear_bf16, linear_fp8, linear_fp8_aq and their scratch sizes
 * linear_scratch_bytes, linear_fp8_aq_scratch_bytes.
 *
 * Two paths: several activation rows go through a K-chunked tiled path (weights decoded into a
 * scratch tile, register-blocked 2 rows × 4 outputs); one row (decode) reads bf16 / e4m3 weights
 * decoded on the fly in registers.
 */

import { FMT_BF16, FMT_F32, FMT_FP8, hsum4, loadLanes, storeLanes } from './common';
import { bf16Scalar, decodeBf16Run, decodeE4m3Run, dot16E4m3, e4m3Scalar, permuteFp8X, permuteX } from './decode';

/** K chunk (floats) of the tiled linear path: the activation chunk [rows, KC] stays in L2. */
const KC: i32 = 256;

const MODE_STORE: i32 = 0;
const MODE_ADD: i32 = 1;
/** out = 0 + r · (sx · sw) (first K block of the FP8 activation-quantized GEMM) */
const MODE_AQ_FIRST: i32 = 2;
/** out = out + r · (sx · sw) */
const MODE_AQ: i32 = 3;

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
