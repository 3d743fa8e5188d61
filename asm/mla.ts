/**
 * MLA attention (absorbed / MQA form, split-KV flash decoding) of the WebAssembly SIMD kernels
 * (asm/kernels.ts is the entry): exports mla_partial, mla_merge, mla_attention and
 * mla_scratch_bytes. Holds the SIMD e^x of the online softmax, and the per-row core mlaRow over
 * f32, bf16 or FlashMLA fp8 latent cache rows.
 */

import { FMT_BF16, FMT_F32, hsum, hsum4 } from './common';
import { decodeBf16Run, decodeE4m3Run } from './decode';

/** Cached entries per block in MLA attention. */
const MB: i32 = 16;

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
