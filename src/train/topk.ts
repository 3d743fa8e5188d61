/**
 * DSA's selection in training: each query keeps the top min(k, t + 1) keys by index score. The
 * full scores are computed outside the graph (plain kernel call): the selection is not
 * differentiable, so the language-modeling loss sends no gradient to the indexer through it.
 */
import type { IndexerDims } from '../autograd/backend.js';
import { topkKeys, type KeySets } from '../autograd/keysets.js';
import type { TrainBackend } from '../autograd/backend.js';
import type { IndexerInputs } from './indexer.js';

/** Index scores of every causal key (data, no graph), parallel to `causal.keys`. */
export function fullIndexScores(backend: TrainBackend, ix: IndexerInputs, causal: KeySets, d: IndexerDims): Float32Array {
  return backend.indexerForward(ix.q.data, ix.k.data, ix.w.data, causal, d).scores;
}

/** The keys each query attends to under DSA. */
export function selectTopk(causal: KeySets, scores: Float32Array, k: number): KeySets {
  return topkKeys(causal, scores, k);
}
