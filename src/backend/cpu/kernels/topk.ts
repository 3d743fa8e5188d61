/**
 * Exact top-k of indexer scores on the CPU: quickselect finds the k-th largest score in O(S) on
 * average, then one pass collects the winners (ties at the threshold: lowest positions first).
 */

/** Rearranges v[lo..hi] so that v[k] holds the value a full descending sort would put there. */
function selectDescending(v: Float64Array, lo: number, hi: number, k: number): number {
  while (hi > lo) {
    // Median of three as the pivot.
    const mid = (lo + hi) >> 1;
    const a = v[lo];
    const b = v[mid];
    const c = v[hi];
    const pivot = a > b ? (b > c ? b : a > c ? c : a) : a > c ? a : b > c ? c : b;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (v[i] > pivot) i++;
      while (v[j] < pivot) j--;
      if (i <= j) {
        const tmp = v[i];
        v[i] = v[j];
        v[j] = tmp;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return v[k];
  }
  return v[k];
}

/**
 * scores [rows, S]; row t considers keys 0..min(positions[t], S-1). Returns i32 [rows, width]
 * with width = min(k, S): the selected positions ascending, then -1.
 */
export function topkRows(scores: Float32Array, rows: number, nKeys: number, k: number, positions: Int32Array): Int32Array {
  const width = Math.min(k, nKeys);
  const out = new Int32Array(rows * width).fill(-1);
  const work = new Float64Array(nKeys);
  for (let t = 0; t < rows; t++) {
    const valid = Math.min(positions[t] + 1, nKeys);
    const take = Math.min(k, valid);
    const row = t * nKeys;
    const dst = t * width;
    if (take === valid) {
      for (let s = 0; s < valid; s++) out[dst + s] = s;
      continue;
    }
    for (let s = 0; s < valid; s++) work[s] = scores[row + s];
    const threshold = selectDescending(work, 0, valid - 1, take - 1);
    let above = 0;
    for (let s = 0; s < valid; s++) if (scores[row + s] > threshold) above++;
    let ties = take - above;
    let n = 0;
    for (let s = 0; s < valid && n < take; s++) {
      const v = scores[row + s];
      if (v > threshold || (v === threshold && ties-- > 0)) out[dst + n++] = s;
    }
  }
  return out;
}
