/** linear: y = x · wᵀ for x [.., K] and a weight w [N, K] (the checkpoint's [out, in] layout). */
import type { Tape, Var } from '../var.js';

export function linear(g: Tape, x: Var, w: Var): Var {
  const [n, k] = w.shape as [number, number];
  if (x.cols !== k) throw new RangeError(`linear: input width ${x.cols} ≠ weight in-dim ${k}`);
  const m = x.rows;
  const y = g.output(g.backend.matmulNT(x.data, w.data, m, k, n), [...x.shape.slice(0, -1), n], x, w);
  g.record(y, (dy) => {
    if (x.requiresGrad) g.backend.matmulNNAcc(dy, w.data, m, n, k, x.gradBuffer());
    if (w.requiresGrad) g.backend.matmulTNAcc(dy, x.data, m, n, k, w.gradBuffer());
  });
  return y;
}
