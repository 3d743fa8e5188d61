/** Shape ops: a new view of the same values (reshape) and a column slice of each row. */
import type { Tape, Var } from '../var.js';

export function reshape(g: Tape, x: Var, shape: readonly number[]): Var {
  const y = g.output(x.data, shape, x);
  g.record(y, (dy) => {
    const gx = x.gradBuffer();
    for (let i = 0; i < dy.length; i++) gx[i] += dy[i]!;
  });
  return y;
}

/** Columns [start, start + len) of every row of x [.., C] → [.., len]. */
export function sliceCols(g: Tape, x: Var, start: number, len: number): Var {
  const c = x.cols;
  if (start < 0 || len <= 0 || start + len > c) throw new RangeError(`sliceCols: [${start}, ${start + len}) outside ${c} columns`);
  const rows = x.rows;
  const out = new Float32Array(rows * len);
  for (let r = 0; r < rows; r++) out.set(x.data.subarray(r * c + start, r * c + start + len), r * len);
  const y = g.output(out, [...x.shape.slice(0, -1), len], x);
  g.record(y, (dy) => {
    const gx = x.gradBuffer();
    for (let r = 0; r < rows; r++) for (let j = 0; j < len; j++) gx[r * c + start + j] += dy[r * len + j]!;
  });
  return y;
}
