/**
 * Indexer recall: the share of the dense attention mass (summed over heads, normalized per query)
 * that falls on the indexer's top-k keys, per layer, averaged over the queries that have more than
 * k keys (the others select everything: recall 1 by construction, left out).
 */
import type { TrainBackend } from '../autograd/backend.js';
import { forward } from './forward.js';
import type { TrainModel } from './model.js';
import { selectTopk } from './topk.js';

export interface RecallResult {
  /** Mean recall per layer. */
  perLayer: number[];
  /** Mean over layers. */
  mean: number;
  /** The ceiling per layer: the mass of the target's own k largest entries (what a perfect indexer would reach). */
  oraclePerLayer: number[];
  /** Queries counted per layer. */
  queries: number;
}

/** Recall over one batch of `batch` sequences of `seqLen` tokens at top-k `k`. */
export function indexerRecall(model: TrainModel, backend: TrainBackend, ids: Int32Array, batch: number, seqLen: number, k: number): RecallResult {
  const fwd = forward(model, backend, ids, new Int32Array(ids.length).fill(-1), batch, seqLen, {
    attention: 'dense',
    indexerLoss: 'none',
    trainable: () => false,
    trace: true,
  });
  let queries = 0;
  const oraclePerLayer: number[] = [];
  const perLayer = fwd.traces.map((tr) => {
    let oracle = 0;
    const sel = selectTopk(tr.causal, tr.indexScores!, k);
    let sum = 0;
    queries = 0;
    const rows = tr.causal.offsets.length - 1;
    for (let r = 0; r < rows; r++) {
      if (tr.causal.offsets[r + 1]! - tr.causal.offsets[r]! <= k) continue;
      // Both key lists ascend: walk them together, summing the target on the selected keys.
      let i = tr.causal.offsets[r]!;
      let mass = 0;
      for (let o = sel.offsets[r]!; o < sel.offsets[r + 1]!; o++) {
        while (tr.causal.keys[i]! < sel.keys[o]!) i++;
        mass += tr.target[i]!;
      }
      sum += mass;
      const best = Array.from(tr.target.subarray(tr.causal.offsets[r]!, tr.causal.offsets[r + 1]!)).sort((a, b) => b - a);
      oracle += best.slice(0, k).reduce((a, b) => a + b, 0);
      queries++;
    }
    oraclePerLayer.push(queries > 0 ? oracle / queries : 1);
    return queries > 0 ? sum / queries : 1;
  });
  return { perLayer, mean: perLayer.reduce((a, b) => a + b, 0) / perLayer.length, queries, oraclePerLayer };
}
