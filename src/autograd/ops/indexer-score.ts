/**
 * The lightning indexer's scores over key sets: I(t, s) = Σ_h w[t, h] · ReLU(q[t, h] · k[s]) with
 * q [T, H_I, d_I], k [T, d_I], w [T, H_I] → a Var of the scores, parallel to keys.keys.
 */
import type { IndexerDims } from '../backend.js';
import type { KeySets } from '../keysets.js';
import type { Tape, Var } from '../var.js';

export function indexerScore(g: Tape, q: Var, k: Var, w: Var, keys: KeySets, d: IndexerDims): Var {
  const rows = keys.offsets.length - 1;
  if (q.size !== rows * d.heads * d.dim || k.size !== rows * d.dim || w.size !== rows * d.heads) {
    throw new RangeError('indexerScore: q, k, w do not match [T, H_I, d_I], [T, d_I], [T, H_I]');
  }
  const { scores, dots } = g.backend.indexerForward(q.data, k.data, w.data, keys, d);
  const y = g.output(scores, [scores.length], q, k, w);
  g.record(y, (dy) => {
    g.backend.indexerBackward(
      q.data,
      k.data,
      w.data,
      keys,
      d,
      dots,
      dy,
      q.requiresGrad ? q.gradBuffer() : null,
      k.requiresGrad ? k.gradBuffer() : null,
      w.requiresGrad ? w.gradBuffer() : null,
    );
  });
  return y;
}
