/**
 * Exact top-k of indexer scores by radix selection, in O(S) per row with counting only (the
 * TileLang / vLLM top-k selector, on the CPU): every float32 score becomes an order-preserving
 * integer key, histograms over 8 or 11 key bits at a time narrow down the k-th largest key, and one
 * pass collects the winners. Same contract and output as `topkRows` (topk.ts, the quickselect
 * reference): keys 0..min(positions[t], S-1), the selected positions ascending, then -1; ties at the
 * threshold go to the lowest positions; -0 and +0 are equal (as they are to `>` and `===`).
 * Inputs are assumed NaN-free.
 */

/** Digit passes, most significant first: shifts and widths. Short rows use 256-bin passes. */
const SHIFTS_SHORT = Int32Array.from([24, 16, 8, 0]);
const WIDTHS_SHORT = Int32Array.from([8, 8, 8, 8]);
const SHIFTS_LONG = Int32Array.from([21, 10, 0]);
const WIDTHS_LONG = Int32Array.from([11, 11, 10]);
/** Rows at least this long use the 2048-bin passes (clearing and scanning 2048 bins pays off). */
const LONG_ROW = 4096;
const SIGN = -0x80000000;

// Scratch reused across rows and calls (grown on demand): keys of the row, candidates of the
// current digit, and the histogram. Keys are signed int32 (so every value stays a small integer
// for the JIT); the digits are those of the unsigned form, key xor 2³¹.
let keysBuf = new Int32Array(0);
let candBuf = new Int32Array(0);
const histBuf = new Int32Array(2048);

/**
 * The order-preserving signed key of a float32's bits (read as int32): non-negative floats keep
 * their bits; negative ones flip all but the sign and add one, which maps -0 onto +0 (key 0).
 * Larger float ⇔ larger key; equal floats (-0 = +0) ⇔ equal keys. Branch-free: the sign of random
 * scores is unpredictable.
 */
export function orderKey(bits: number): number {
  const m = bits >> 31;
  return ((bits ^ (m & 0x7fffffff)) - m) | 0;
}

/** keys[0..n) = orderKey(bits[off + s]); hist = counts of the top digit (shift, 2^width bins). */
function keysAndHistogram(bits: Int32Array, off: number, n: number, keys: Int32Array, hist: Int32Array, shift: number, width: number): void {
  hist.fill(0, 0, 1 << width);
  for (let s = 0; s < n; s++) {
    const b = bits[off + s];
    const m = b >> 31;
    const key = ((b ^ (m & 0x7fffffff)) - m) | 0;
    keys[s] = key;
    hist[(key ^ SIGN) >>> shift]++;
  }
}

/**
 * Keeps the keys of src[0..n) in [lo, hi] (copied to dst, which may be src) and counts their digit
 * at `shift`; returns how many were kept.
 */
function refine(src: Int32Array, n: number, dst: Int32Array, lo: number, hi: number, hist: Int32Array, shift: number, width: number): number {
  const mask = (1 << width) - 1;
  hist.fill(0, 0, 1 << width);
  let c = 0;
  for (let i = 0; i < n; i++) {
    const key = src[i];
    if (key >= lo && key <= hi) {
      hist[(key >>> shift) & mask]++;
      dst[c++] = key;
    }
  }
  return c;
}

/** out[dst ..] = positions s < n with keys[s] > hi, or in [lo, hi] for the first `ties` of them. */
function collect(keys: Int32Array, n: number, lo: number, hi: number, ties: number, take: number, out: Int32Array, dst: number): void {
  let c = 0;
  for (let s = 0; s < n && c < take; s++) {
    const key = keys[s];
    if (key > hi || (key >= lo && ties-- > 0)) out[dst + c++] = s;
  }
}

/**
 * scores [rows, S]; row t considers keys 0..min(positions[t], S-1). Returns i32 [rows, width]
 * with width = min(k, S): the selected positions ascending, then -1. Identical to topkRows.
 */
export function topkRowsRadix(scores: Float32Array, rows: number, nKeys: number, k: number, positions: Int32Array): Int32Array {
  const width = Math.min(k, nKeys);
  const out = new Int32Array(rows * width).fill(-1);
  if (keysBuf.length < nKeys) {
    keysBuf = new Int32Array(nKeys);
    candBuf = new Int32Array(nKeys);
  }
  const keys = keysBuf;
  const cand = candBuf;
  const hist = histBuf;
  // The raw bits of the scores (a Float32Array's byteOffset is always 4-aligned).
  const bits = new Int32Array(scores.buffer, scores.byteOffset, scores.length);
  for (let t = 0; t < rows; t++) {
    const valid = Math.min(positions[t] + 1, nKeys);
    const take = Math.min(k, valid);
    const dst = t * width;
    if (take === valid) {
      for (let s = 0; s < valid; s++) out[dst + s] = s;
      continue;
    }
    if (take <= 0) continue;
    const long = valid >= LONG_ROW;
    const shifts = long ? SHIFTS_LONG : SHIFTS_SHORT;
    const widths = long ? WIDTHS_LONG : WIDTHS_SHORT;

    keysAndHistogram(bits, t * nKeys, valid, keys, hist, shifts[0], widths[0]);
    // The k-th largest key lies in the signed range [lo, hi] (its known high digits); `remaining`
    // counts the keys of that range still to be taken; the range holds `inRange` keys.
    let remaining = take;
    let b = (1 << widths[0]) - 1;
    while (hist[b] < remaining) remaining -= hist[b--];
    let lo = (b << shifts[0]) ^ SIGN;
    let hi = (lo + ((1 << shifts[0]) - 1)) | 0;
    let inRange = hist[b];
    let nCand = 0;
    for (let p = 1; p < shifts.length && inRange !== remaining; p++) {
      const sh = shifts[p];
      const w = widths[p];
      // The first refinement filters the whole row; later ones compact the candidates in place.
      nCand = p === 1 ? refine(keys, valid, cand, lo, hi, hist, sh, w) : refine(cand, nCand, cand, lo, hi, hist, sh, w);
      b = (1 << w) - 1;
      while (hist[b] < remaining) remaining -= hist[b--];
      lo = (lo + (b << sh)) | 0;
      hi = (lo + ((1 << sh) - 1)) | 0;
      inRange = hist[b];
    }
    // Keys above the range are taken; keys in it (all equal after the last digit, or all taken when
    // the range fits whole) are taken lowest positions first.
    collect(keys, valid, lo, hi, remaining, take, out, dst);
  }
  return out;
}
