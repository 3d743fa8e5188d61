/**
 * The lightning indexer of the WebAssembly SIMD kernels (asm/kernels.ts is the entry): exports
 * indexer_scores (per-key index scores over an e4m3 key cache, causally masked),
 * indexer_scores_multi (the same over several sequences' rows in one call) and indexer_scratch_bytes.
 */

import { hsum4, storeLanes } from './common';
import { decodeE4m3Run } from './decode';

/** Keys decoded per tile in indexer_scores. */
const KT: i32 = 32;

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
  const maxPos = maxPosition(positions, 0, T);
  for (let s0 = begin; s0 < end; s0 += KT) {
    scoreTile(q, w, kCache, kScale, slots, positions, out, 0, T, H, D, nKeys, scratch, s0, min(KT, end - s0), maxPos);
  }
}

/**
 * indexer_scores over several sequences in one call: the query rows are grouped by sequence, group
 * g holding rows [groupStart[g], groupStart[g + 1]) whose key s lives at slot slots[g · nKeys + s]
 * (entries past a group's keys must be valid slots; they are decoded at most, never used).
 * Each row's scores are computed exactly as indexer_scores computes them for its sequence alone.
 * Parallel over keys s in [begin, end), tiles of 32 keys decoded once per group.
 * Scratch: indexer_scratch_bytes(D).
 */
export function indexer_scores_multi(
  q: usize, w: usize, kCache: usize, kScale: usize, slots: usize, groupStart: usize, G: i32, positions: usize, out: usize,
  T: i32, H: i32, D: i32, nKeys: i32, scratch: usize, begin: i32, end: i32,
): void {
  for (let s0 = begin; s0 < end; s0 += KT) {
    for (let g = 0; g < G; g++) {
      const t0 = load<i32>(groupStart + (<usize>g << 2));
      const t1 = load<i32>(groupStart + (<usize>(g + 1) << 2));
      const gSlots = slots + ((<usize>g * <usize>nKeys) << 2);
      scoreTile(q, w, kCache, kScale, gSlots, positions, out, t0, t1, H, D, nKeys, scratch, s0, min(KT, end - s0), maxPosition(positions, t0, t1));
    }
  }
}

/** The largest of positions[t0..t1) (−1 when empty). */
function maxPosition(positions: usize, t0: i32, t1: i32): i32 {
  let maxPos = -1;
  for (let t = t0; t < t1; t++) maxPos = max(maxPos, load<i32>(positions + (<usize>t << 2)));
  return maxPos;
}

/**
 * One tile: the scores of query rows [t0, t1) against keys [s0, s0 + nk) (nk ≤ 32), each key
 * decoded once from slots[s] (only when some row reaches the tile: s0 ≤ maxPos).
 */
function scoreTile(
  q: usize, w: usize, kCache: usize, kScale: usize, slots: usize, positions: usize, out: usize,
  t0: i32, t1: i32, H: i32, D: i32, nKeys: i32, scratch: usize, s0: i32, nk: i32, maxPos: i32,
): void {
  const rowBytes = <usize>D << 2;
  const kd = scratch;
  const ksc = scratch + <usize>KT * rowBytes;
  const outStride = <usize>nKeys << 2;
  const headsBytes = <usize>H * rowBytes;
  const negInf = f32x4.splat(-Infinity);
  const zero = f32x4.splat(0);
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
  for (let t = t0; t < t1; t++) {
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
