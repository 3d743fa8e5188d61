/** Element-wise, normalization, rotary and quantization kernels of the CPU backend (plain TypeScript). */
import { actQuantRow, type ScaleFormat } from '../../../numerics/block-quant.js';
import { E4M3_TABLE } from '../../../numerics/e4m3.js';
import { hadamardRows } from '../../../numerics/hadamard.js';
import { ShapeError } from '../../backend.js';

export function rmsNorm(x: Float32Array, rows: number, n: number, w: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const off = r * n;
    let ss = 0;
    for (let j = 0; j < n; j++) ss += x[off + j] * x[off + j];
    const inv = 1 / Math.sqrt(Math.fround(ss / n) + eps);
    for (let j = 0; j < n; j++) out[off + j] = w[j] * Math.fround(x[off + j] * inv);
  }
  return out;
}

export function layerNorm(x: Float32Array, rows: number, n: number, w: Float32Array, b: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const off = r * n;
    let mean = 0;
    for (let j = 0; j < n; j++) mean += x[off + j];
    mean /= n;
    let v = 0;
    for (let j = 0; j < n; j++) v += (x[off + j] - mean) * (x[off + j] - mean);
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let j = 0; j < n; j++) out[off + j] = (x[off + j] - mean) * inv * w[j] + b[j];
  }
  return out;
}

export function swiglu(g: Float32Array, u: Float32Array): Float32Array {
  const out = new Float32Array(g.length);
  for (let i = 0; i < g.length; i++) out[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
  return out;
}

/**
 * Rotary embedding in place on a copy of x [rows, heads, dim]: dims [offset, offset + 2·half)
 * rotated by angle table row positions[r], pairs interleaved or half-split.
 */
export function rope(
  x: Float32Array,
  rows: number,
  heads: number,
  dim: number,
  positions: Int32Array,
  cos: Float32Array,
  sin: Float32Array,
  maxPos: number,
  half: number,
  offset: number,
  interleaved: boolean,
): Float32Array {
  if (offset + 2 * half > dim) throw new ShapeError('rope', `rotary dims [${offset}, ${offset + 2 * half}) exceed the head size ${dim}`);
  const out = Float32Array.from(x);
  for (let r = 0; r < rows; r++) {
    const p = positions[r];
    if (p < 0 || p >= maxPos) throw new ShapeError('rope', `position ${p} is outside the rotary table (0..${maxPos - 1})`);
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * dim + offset;
      for (let i = 0; i < half; i++) {
        const c = cos[p * half + i];
        const s = sin[p * half + i];
        const i0 = interleaved ? base + 2 * i : base + i;
        const i1 = interleaved ? i0 + 1 : i0 + half;
        const a = x[i0];
        const b = x[i1];
        // One product of each pair fused into the add, as the reference's GPU complex multiply does
        // (bit-exact against the fp8-kernels fixture).
        out[i0] = a * c - Math.fround(b * s);
        out[i1] = a * s + Math.fround(b * c);
      }
    }
  }
  return out;
}

export function hadamard(x: Float32Array, rows: number, n: number): Float32Array {
  if ((n & (n - 1)) !== 0) throw new ShapeError('hadamard', `last dimension ${n} is not a power of two`);
  const out = Float32Array.from(x);
  hadamardRows(out, rows, n);
  return out;
}

export function quantFp8(
  x: Float32Array,
  rows: number,
  n: number,
  block: number,
  fmt: ScaleFormat,
): { q: Uint8Array; s: Float32Array; blocks: number } {
  const blocks = Math.ceil(n / block);
  const q = new Uint8Array(rows * n);
  const s = new Float32Array(rows * blocks);
  for (let r = 0; r < rows; r++) actQuantRow(x, r * n, n, block, fmt, q, r * n, s, r * blocks);
  return { q, s, blocks };
}

export function dequantFp8(q: Uint8Array, s: Float32Array, rows: number, n: number, block: number): Float32Array {
  const blocks = Math.ceil(n / block);
  if (s.length !== rows * blocks) throw new ShapeError('dequantFp8', `expected ${rows * blocks} scales, got ${s.length}`);
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) out[r * n + j] = E4M3_TABLE[q[r * n + j]] * s[r * blocks + Math.floor(j / block)];
  }
  return out;
}

export function argmaxRows(x: Float32Array, rows: number, n: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    let bv = -Infinity;
    for (let j = 0; j < n; j++) {
      const v = x[r * n + j];
      if (v > bv) {
        bv = v;
        best = j;
      }
    }
    out[r] = best;
  }
  return out;
}
