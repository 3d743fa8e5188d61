/**
 * log-softmax over variable-length rows: x holds the rows back to back, row r is
 * x[offsets[r] .. offsets[r+1]) (the key sets' layout). Empty rows are allowed.
 */
import type { Tape, Var } from '../var.js';

export function logSoftmaxRows(g: Tape, x: Var, offsets: Int32Array): Var {
  const rows = offsets.length - 1;
  if (offsets[rows] !== x.size) throw new RangeError(`logSoftmaxRows: offsets end at ${offsets[rows]}, x has ${x.size} values`);
  const out = new Float32Array(x.size);
  for (let r = 0; r < rows; r++) {
    const b = offsets[r]!;
    const e = offsets[r + 1]!;
    let max = -Infinity;
    for (let i = b; i < e; i++) max = Math.max(max, x.data[i]!);
    let sum = 0;
    for (let i = b; i < e; i++) sum += Math.exp(x.data[i]! - max);
    const lse = max + Math.log(sum);
    for (let i = b; i < e; i++) out[i] = x.data[i]! - lse;
  }
  const y = g.output(out, x.shape, x);
  g.record(y, (dy) => {
    const gx = x.gradBuffer();
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let i = offsets[r]!; i < offsets[r + 1]!; i++) s += dy[i]!;
      for (let i = offsets[r]!; i < offsets[r + 1]!; i++) gx[i] += dy[i]! - Math.exp(out[i]!) * s;
    }
  });
  return y;
}
