/**
 * MLA attention in MHA form over key sets: q [T, H, dn + dr] (nope first, roped part last),
 * kv [T, H, dn + dv] (per head: k_nope then v, i.e. kv_b_proj's rows), kPe [T, dr] shared by every
 * head. Dense causal attention passes every earlier position as keys, DSA the indexer's top-k.
 * Returns out [T, H·dv] and the attention probabilities ([nnz, H], parallel to keys.keys) — data,
 * not part of the graph (the indexer's KL target reads them).
 */
import type { AttentionDims } from '../backend.js';
import type { KeySets } from '../keysets.js';
import type { Tape, Var } from '../var.js';

export function attention(g: Tape, q: Var, kv: Var, kPe: Var, keys: KeySets, d: AttentionDims): { out: Var; probs: Float32Array } {
  const rows = keys.offsets.length - 1;
  if (q.size !== rows * d.heads * (d.dn + d.dr)) throw new RangeError('attention: q does not match [T, H, dn + dr]');
  if (kv.size !== rows * d.heads * (d.dn + d.dv)) throw new RangeError('attention: kv does not match [T, H, dn + dv]');
  if (kPe.size !== rows * d.dr) throw new RangeError('attention: kPe does not match [T, dr]');
  const { out, probs } = g.backend.attentionForward(q.data, kv.data, kPe.data, keys, d);
  const y = g.output(out, [rows, d.heads * d.dv], q, kv, kPe);
  g.record(y, (dy) => {
    g.backend.attentionBackward(
      q.data,
      kv.data,
      kPe.data,
      keys,
      d,
      probs,
      dy,
      q.requiresGrad ? q.gradBuffer() : null,
      kv.requiresGrad ? kv.gradBuffer() : null,
      kPe.requiresGrad ? kPe.gradBuffer() : null,
    );
  });
  return { out: y, probs };
}
