/**
 * Which keys each query row attends to, in compressed-row form: row t's keys are
 * keys[offsets[t] .. offsets[t+1]), global row indices of the same flattened batch. Dense causal
 * attention lists every earlier position of the row's own sequence; DSA lists the indexer's top-k.
 * Per-key values (attention probabilities, index scores) live in arrays parallel to `keys`.
 */
export interface KeySets {
  readonly offsets: Int32Array;
  readonly keys: Int32Array;
}

/** Every position s ≤ t of the same sequence, for `batch` sequences of `seqLen` rows each. */
export function causalKeys(batch: number, seqLen: number): KeySets {
  const rows = batch * seqLen;
  const offsets = new Int32Array(rows + 1);
  for (let r = 0; r < rows; r++) offsets[r + 1] = offsets[r]! + (r % seqLen) + 1;
  const keys = new Int32Array(offsets[rows]!);
  for (let r = 0; r < rows; r++) {
    const first = r - (r % seqLen);
    let o = offsets[r]!;
    for (let s = first; s <= r; s++) keys[o++] = s;
  }
  return { offsets, keys };
}

/**
 * The top min(k, |keys of t|) entries of each row by `scores` (parallel to `from.keys`), in
 * ascending key order. Ties keep the earlier key. The selection is a plain function of the scores:
 * nothing flows back through it.
 */
export function topkKeys(from: KeySets, scores: Float32Array, k: number): KeySets {
  const rows = from.offsets.length - 1;
  const offsets = new Int32Array(rows + 1);
  for (let r = 0; r < rows; r++) offsets[r + 1] = offsets[r]! + Math.min(k, from.offsets[r + 1]! - from.offsets[r]!);
  const keys = new Int32Array(offsets[rows]!);
  const order: number[] = [];
  for (let r = 0; r < rows; r++) {
    const b = from.offsets[r]!;
    const n = from.offsets[r + 1]! - b;
    const take = offsets[r + 1]! - offsets[r]!;
    let out = offsets[r]!;
    if (take === n) {
      keys.set(from.keys.subarray(b, b + n), out);
      continue;
    }
    order.length = 0;
    for (let i = 0; i < n; i++) order.push(i);
    order.sort((x, y) => scores[b + y]! - scores[b + x]! || x - y);
    const chosen = order.slice(0, take).sort((x, y) => x - y);
    for (const i of chosen) keys[out++] = from.keys[b + i]!;
  }
  return { offsets, keys };
}

/** Values of `from` (parallel to its keys) at the keys of `sub` (a subset of `from` per row, both ascending). */
export function gatherByKeys(from: KeySets, values: Float32Array, sub: KeySets): Float32Array {
  const out = new Float32Array(sub.keys.length);
  const rows = sub.offsets.length - 1;
  for (let r = 0; r < rows; r++) {
    let i = from.offsets[r]!;
    const end = from.offsets[r + 1]!;
    for (let o = sub.offsets[r]!; o < sub.offsets[r + 1]!; o++) {
      const key = sub.keys[o]!;
      while (i < end && from.keys[i]! < key) i++;
      if (i === end || from.keys[i] !== key) throw new RangeError(`gatherByKeys: key ${key} of row ${r} is not in the source set`);
      out[o] = values[i]!;
    }
  }
  return out;
}
