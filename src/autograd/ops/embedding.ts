/** Embedding lookup: rows of a table [V, d] by token id → [T, d]; the backward scatters into the table. */
import type { Tape, Var } from '../var.js';

export function embedding(g: Tape, table: Var, ids: Int32Array): Var {
  const [v, d] = table.shape as [number, number];
  const out = new Float32Array(ids.length * d);
  ids.forEach((id, t) => {
    if (!(id >= 0 && id < v)) throw new RangeError(`embedding: token id ${id} outside the vocabulary (${v})`);
    out.set(table.data.subarray(id * d, id * d + d), t * d);
  });
  const y = g.output(out, [ids.length, d], table);
  g.record(y, (dy) => {
    const gt = table.gradBuffer();
    ids.forEach((id, t) => {
      for (let j = 0; j < d; j++) gt[id * d + j] += dy[t * d + j]!;
    });
  });
  return y;
}
