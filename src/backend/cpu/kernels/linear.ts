/**
 * Matrix products of the CPU backend, in plain TypeScript: the reference every faster kernel is
 * checked against. Accumulation is in float64 (JavaScript numbers), rounded to float32 on store,
 * except the FP8 GEMM, which follows the reference kernel's float32 block accumulation.
 */
import { actQuantRow, type ScaleFormat } from '../../../numerics/block-quant.js';
import { E4M3_TABLE } from '../../../numerics/e4m3.js';
import { ShapeError } from '../../backend.js';
import { CpuWeight, decodeFp8Codes, decodeRow } from '../weight.js';

/** dot(a[aOff ..], b[bOff ..]) over n elements, float64 accumulation. */
export function dot(a: Float32Array, aOff: number, b: Float32Array, bOff: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    s0 += a[aOff + j] * b[bOff + j];
    s1 += a[aOff + j + 1] * b[bOff + j + 1];
    s2 += a[aOff + j + 2] * b[bOff + j + 2];
    s3 += a[aOff + j + 3] * b[bOff + j + 3];
  }
  for (; j < n; j++) s0 += a[aOff + j] * b[bOff + j];
  return s0 + s1 + s2 + s3;
}

/**
 * Four dot products of a[aOff ..] with b[b0 ..], b[b1 ..], b[b2 ..], b[b3 ..] (n elements each),
 * sharing the loads of a; float64 accumulation. Results in out[0..3].
 */
export function dot4(
  a: Float32Array,
  aOff: number,
  b: Float32Array,
  b0: number,
  b1: number,
  b2: number,
  b3: number,
  n: number,
  out: Float64Array,
): void {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  for (let j = 0; j < n; j++) {
    const x = a[aOff + j];
    s0 += x * b[b0 + j];
    s1 += x * b[b1 + j];
    s2 += x * b[b2 + j];
    s3 += x * b[b3 + j];
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

/**
 * Dot product of e4m3 values summed in float32 in k order: every product is exact in float32, and
 * this order reproduces the reference FP8 GEMM bit for bit (fp8-kernels fixture).
 */
function blockDotF32(a: Float32Array, aOff: number, b: Float32Array, bOff: number, n: number): number {
  const f = Math.fround;
  let s = 0;
  for (let j = 0; j < n; j++) s = f(s + a[aOff + j] * b[bOff + j]);
  return s;
}

/** out[t, n] = Σ_k x[t, k] · W[n, k] with W at its real (dequantized) value. */
export function linearPlain(x: Float32Array, rows: number, w: CpuWeight): Float32Array {
  const k = w.inDim;
  const n = w.outDim;
  const out = new Float32Array(rows * n);
  // Four output features at a time share each activation load.
  const w4 = new Float32Array(4 * k);
  const wrow = new Float32Array(k);
  const acc = new Float64Array(4);
  let o = 0;
  for (; o + 4 <= n; o += 4) {
    for (let i = 0; i < 4; i++) {
      decodeRow(w, o + i, wrow);
      w4.set(wrow, i * k);
    }
    for (let t = 0; t < rows; t++) {
      dot4(x, t * k, w4, 0, k, 2 * k, 3 * k, k, acc);
      out.set(acc, t * n + o);
    }
  }
  for (; o < n; o++) {
    decodeRow(w, o, wrow);
    for (let t = 0; t < rows; t++) out[t * n + o] = dot(x, t * k, wrow, 0, k);
  }
  return out;
}

/**
 * The reference FP8 linear: activation rows quantized to e4m3 in blocks of the weight's input block
 * size, then for every K block j: acc += (x8_j · w8_j) · (sx_j · sw_j), in float32.
 */
export function linearFp8(x: Float32Array, rows: number, w: CpuWeight, fmt: ScaleFormat): Float32Array {
  const h = w.host;
  if (h.format !== 'fp8') throw new ShapeError('linear', 'linearFp8 needs an fp8 weight');
  const k = h.inDim;
  const n = h.outDim;
  const [bo, bi] = h.block;
  const kb = Math.ceil(k / bi);
  // Quantize activations, then decode the codes to their exact float32 values once.
  const xq = new Uint8Array(rows * k);
  const sx = new Float32Array(rows * kb);
  for (let t = 0; t < rows; t++) actQuantRow(x, t * k, k, bi, fmt, xq, t * k, sx, t * kb);
  const xv = new Float32Array(rows * k);
  for (let i = 0; i < xq.length; i++) xv[i] = E4M3_TABLE[xq[i]];

  const out = new Float32Array(rows * n);
  const wv = new Float32Array(k);
  const f = Math.fround;
  for (let o = 0; o < n; o++) {
    decodeFp8Codes(w, o, wv);
    const sw = Math.floor(o / bo) * kb;
    for (let t = 0; t < rows; t++) {
      let acc = 0;
      for (let b = 0; b < kb; b++) {
        const start = b * bi;
        const len = Math.min(bi, k - start);
        const blockDot = blockDotF32(xv, t * k + start, wv, start, len);
        acc = f(acc + f(blockDot * f(sx[t * kb + b] * h.scaleInv[sw + b])));
      }
      out[t * n + o] = acc;
    }
  }
  return out;
}

/** Per head h: out[t, h] = x[t, h] · w[h] (w [H, n, m]) or x[t, h] · w[h]ᵀ (w [H, m, n], transposeW). */
export function headMatmul(
  x: Float32Array,
  rows: number,
  heads: number,
  n: number,
  w: Float32Array,
  m: number,
  transposeW: boolean,
): Float32Array {
  const out = new Float32Array(rows * heads * m);
  if (transposeW) {
    for (let t = 0; t < rows; t++) {
      for (let h = 0; h < heads; h++) {
        const xOff = (t * heads + h) * n;
        const oOff = (t * heads + h) * m;
        for (let j = 0; j < m; j++) out[oOff + j] = dot(x, xOff, w, (h * m + j) * n, n);
      }
    }
    return out;
  }
  const acc = new Float64Array(m);
  for (let t = 0; t < rows; t++) {
    for (let h = 0; h < heads; h++) {
      acc.fill(0);
      const xOff = (t * heads + h) * n;
      for (let i = 0; i < n; i++) {
        const xi = x[xOff + i];
        const wOff = (h * n + i) * m;
        for (let j = 0; j < m; j++) acc[j] += xi * w[wOff + j];
      }
      out.set(acc, (t * heads + h) * m);
    }
  }
  return out;
}
