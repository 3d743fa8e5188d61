/**
 * Rotary position embedding on dims [offset, offset + len) of every vector of x [T, n, d]: pairs
 * (x[2i], x[2i+1]) when interleaved (MLA), (x[i], x[i + len/2]) when half-split (the indexer),
 * rotated by position(t) · f_i. cos/sin tables are [positions, len/2]. The backward rotates back.
 */
import type { Tape, Var } from '../var.js';

export interface RopeTables {
  cos: Float32Array;
  sin: Float32Array;
  half: number;
}

function rotate(src: Float32Array, dst: Float32Array, shape: readonly number[], offset: number, positions: Int32Array, tab: RopeTables, interleave: boolean, sign: number): void {
  const [t, n, d] = shape as [number, number, number];
  const half = tab.half;
  for (let r = 0; r < t; r++) {
    const p = positions[r]! * half;
    for (let h = 0; h < n; h++) {
      const base = (r * n + h) * d + offset;
      for (let i = 0; i < half; i++) {
        const a = interleave ? base + 2 * i : base + i;
        const b = interleave ? a + 1 : a + half;
        const c = tab.cos[p + i]!;
        const s = sign * tab.sin[p + i]!;
        const x0 = src[a]!;
        const x1 = src[b]!;
        dst[a] = x0 * c - x1 * s;
        dst[b] = x0 * s + x1 * c;
      }
    }
  }
}

export function rope(g: Tape, x: Var, offset: number, positions: Int32Array, tab: RopeTables, interleave: boolean): Var {
  if (x.shape.length !== 3) throw new RangeError(`rope: expected [T, n, d], got [${x.shape.join(', ')}]`);
  if (positions.length !== x.shape[0]) throw new RangeError(`rope: ${positions.length} positions for ${x.shape[0]} rows`);
  if (offset + 2 * tab.half > x.shape[2]!) throw new RangeError('rope: rotated dims exceed the vector');
  const out = Float32Array.from(x.data);
  rotate(x.data, out, x.shape, offset, positions, tab, interleave, 1);
  const y = g.output(out, x.shape, x);
  g.record(y, (dy) => {
    const back = Float32Array.from(dy);
    rotate(dy, back, x.shape, offset, positions, tab, interleave, -1);
    const gx = x.gradBuffer();
    for (let i = 0; i < back.length; i++) gx[i] += back[i]!;
  });
  return y;
}
