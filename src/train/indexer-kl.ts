/**
 * The indexer's training loss (paper §2.1). Target for query t: the main attention probabilities
 * summed over heads and L1-normalized over the keys, p(t, :). Loss: KL(p(t, :) ‖ softmax(I(t, :))),
 * averaged over queries. Dense warm-up (Eq. 3) uses every causal key; sparse training (Eq. 4) only
 * the selected set S_t — there the main attention itself runs over S_t, so p is already a
 * distribution over S_t. The target is data (no graph), so this loss never reaches the main model.
 */
import type { IndexerDims } from '../autograd/backend.js';
import type { KeySets } from '../autograd/keysets.js';
import { indexerScore } from '../autograd/ops/indexer-score.js';
import { klDivergence } from '../autograd/ops/loss.js';
import { logSoftmaxRows } from '../autograd/ops/softmax.js';
import type { Tape, Var } from '../autograd/var.js';
import type { IndexerInputs } from './indexer.js';

/** p(t, s) = Σ_h P_h(t, s), L1-normalized per row; probs is [nnz, H] parallel to keys. */
export function attentionTarget(probs: Float32Array, heads: number, keys: KeySets): Float32Array {
  const nnz = keys.keys.length;
  const p = new Float32Array(nnz);
  const rows = keys.offsets.length - 1;
  for (let r = 0; r < rows; r++) {
    let total = 0;
    for (let i = keys.offsets[r]!; i < keys.offsets[r + 1]!; i++) {
      let s = 0;
      for (let h = 0; h < heads; h++) s += probs[i * heads + h]!;
      p[i] = s;
      total += s;
    }
    if (total > 0) for (let i = keys.offsets[r]!; i < keys.offsets[r + 1]!; i++) p[i] /= total;
  }
  return p;
}

/** KL(p ‖ softmax(I)) over `keys` (all causal keys: Eq. 3; the selection: Eq. 4), mean over queries. */
export function indexerKl(g: Tape, ix: IndexerInputs, keys: KeySets, target: Float32Array, d: IndexerDims): Var {
  const scores = indexerScore(g, ix.q, ix.k, ix.w, keys, d);
  return klDivergence(g, target, logSoftmaxRows(g, scores, keys.offsets), keys.offsets);
}
