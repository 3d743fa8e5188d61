/** Losses: token cross-entropy (mean over rows) and KL(p ‖ q) of fixed targets p against log q (mean over rows). */
import type { Tape, Var } from '../var.js';

/** mean_t −log softmax(logits[t])[target[t]]; rows whose target is negative are skipped. */
export function crossEntropy(g: Tape, logits: Var, targets: Int32Array): Var {
  const v = logits.cols;
  const rows = logits.rows;
  if (targets.length !== rows) throw new RangeError(`crossEntropy: ${targets.length} targets for ${rows} rows`);
  const probs = new Float32Array(logits.size);
  let total = 0;
  let counted = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * v;
    let max = -Infinity;
    for (let j = 0; j < v; j++) max = Math.max(max, logits.data[o + j]!);
    let sum = 0;
    for (let j = 0; j < v; j++) {
      const e = Math.exp(logits.data[o + j]! - max);
      probs[o + j] = e;
      sum += e;
    }
    for (let j = 0; j < v; j++) probs[o + j] /= sum;
    const tgt = targets[r]!;
    if (tgt < 0) continue;
    if (tgt >= v) throw new RangeError(`crossEntropy: target ${tgt} outside the vocabulary (${v})`);
    total += max + Math.log(sum) - logits.data[o + tgt]!;
    counted++;
  }
  const n = Math.max(counted, 1);
  const y = g.output(Float32Array.of(total / n), [1], logits);
  g.record(y, (dy) => {
    const gl = logits.gradBuffer();
    const c = dy[0]! / n;
    for (let r = 0; r < rows; r++) {
      const tgt = targets[r]!;
      if (tgt < 0) continue;
      const o = r * v;
      for (let j = 0; j < v; j++) gl[o + j] += c * (probs[o + j]! - (j === tgt ? 1 : 0));
    }
  });
  return y;
}

/**
 * (1/rows) Σ_r Σ_i p_i (log p_i − logq_i) over rows laid out by `offsets`; p is a constant target
 * (each row sums to 1), logq a Var of log-probabilities (from logSoftmaxRows).
 */
export function klDivergence(g: Tape, p: Float32Array, logq: Var, offsets: Int32Array): Var {
  if (p.length !== logq.size) throw new RangeError(`klDivergence: ${p.length} targets for ${logq.size} log-probabilities`);
  const rows = Math.max(offsets.length - 1, 1);
  let total = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i]!;
    if (pi > 0) total += pi * (Math.log(pi) - logq.data[i]!);
  }
  const y = g.output(Float32Array.of(total / rows), [1], logq);
  g.record(y, (dy) => {
    const gq = logq.gradBuffer();
    const c = dy[0]! / rows;
    for (let i = 0; i < p.length; i++) gq[i] -= c * p[i]!;
  });
  return y;
}
