/**
 * The op harness's naive reference numerics (independent of src/numerics and the kernels): float64,
 * re-derived from the formats' definitions. Re-exported by harness.ts.
 */
import assert from 'node:assert/strict';
import type { HostWeight, ScaleFormat } from '../../../src/backend/backend.js';
import type { Arr } from './harness.js';

export const fr = Math.fround;

/** e4m3fn code → value, from the format's definition (1 sign, 4 exponent bits bias 7, 3 mantissa bits). */
export function refE4m3(code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const e = (code >> 3) & 15;
  const m = code & 7;
  if (e === 15 && m === 7) return NaN;
  return e === 0 ? sign * (m / 8) * 2 ** -6 : sign * (1 + m / 8) * 2 ** (e - 7);
}

export const E4M3_POSITIVE = Array.from({ length: 0x7f }, (_, c) => refE4m3(c)); // codes 0..126 (0x7f is NaN)

/** Value (|y| ≤ 448) → nearest e4m3fn code, ties to the even code, by scanning every code. */
export function refE4m3Encode(y: number): number {
  const sign = y < 0 ? 0x80 : 0;
  const a = Math.abs(y);
  let best = 0;
  let bestErr = Infinity;
  for (let c = 0; c < E4M3_POSITIVE.length; c++) {
    const err = Math.abs(E4M3_POSITIVE[c]! - a);
    if (err < bestErr || (err === bestErr && (c & 1) === 0)) {
      best = c;
      bestErr = err;
    }
  }
  return sign | best;
}

/** bf16 bits → value: the top half of a float32. */
export function refBf16(bits: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, (bits & 0xffff) << 16);
  return dv.getFloat32(0);
}

/** DSA.md step 3: amax = max(max|x|, 1e-4); s = amax · float32(1/448); ue8m0: s = 2^ceil(log2 s). */
export function refBlockScale(amax: number, fmt: ScaleFormat): number {
  const a = Math.max(amax, fr(1e-4));
  let s = fr(a * fr(1 / 448));
  if (fmt === 'ue8m0') {
    let k = Math.ceil(Math.log2(s));
    while (2 ** (k - 1) >= s) k--;
    while (2 ** k < s) k++;
    s = 2 ** k;
  }
  return s;
}

/** Per-row block quantization: codes [rows, n] and scales [rows, ceil(n / block)]. */
export function refActQuant(x: Arr, rows: number, n: number, block: number, fmt: ScaleFormat): { q: Uint8Array; s: Float64Array } {
  const nb = Math.ceil(n / block);
  const q = new Uint8Array(rows * n);
  const s = new Float64Array(rows * nb);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < nb; b++) {
      const lo = b * block;
      const hi = Math.min(n, lo + block);
      let amax = 0;
      for (let j = lo; j < hi; j++) amax = Math.max(amax, Math.abs(x[r * n + j]!));
      const sc = refBlockScale(amax, fmt);
      s[r * nb + b] = sc;
      for (let j = lo; j < hi; j++) {
        const y = Math.min(448, Math.max(-448, fr(x[r * n + j]! / sc)));
        q[r * n + j] = refE4m3Encode(y);
      }
    }
  }
  return { q, s };
}

/** A weight's real values [out, in] in float64 (fp8: e4m3(code) · scaleInv of its block). */
export function refDequant(w: HostWeight): Float64Array {
  const out = new Float64Array(w.outDim * w.inDim);
  for (let o = 0; o < w.outDim; o++) {
    for (let i = 0; i < w.inDim; i++) {
      const k = o * w.inDim + i;
      if (w.format === 'f32') out[k] = w.data[k]!;
      else if (w.format === 'bf16') out[k] = refBf16(w.data[k]!);
      else {
        const [bo, bi] = w.block;
        const sc = w.scaleInv[Math.floor(o / bo) * Math.ceil(w.inDim / bi) + Math.floor(i / bi)]!;
        out[k] = refE4m3(w.data[k]!) * sc;
      }
    }
  }
  return out;
}

/**
 * x [rows, in] · wᵀ. FP8 weight with actQuant: the reference FP8 GEMM, activations quantized per
 * 128-block, out = Σ_blocks (x8 · w8) · (sx · sw). Otherwise the real-valued product.
 */
export function refLinear(x: Arr, rows: number, w: HostWeight, aq: ScaleFormat | null): Float64Array {
  const K = w.inDim;
  const N = w.outDim;
  const out = new Float64Array(rows * N);
  if (w.format === 'fp8' && aq !== null) {
    assert.deepEqual(w.block, [128, 128], 'reference FP8 GEMM: 128×128 weight blocks');
    const nb = Math.ceil(K / 128);
    const { q, s } = refActQuant(x, rows, K, 128, aq);
    for (let t = 0; t < rows; t++) {
      for (let o = 0; o < N; o++) {
        let acc = 0;
        for (let b = 0; b < nb; b++) {
          let blockDot = 0;
          for (let j = b * 128; j < Math.min(K, b * 128 + 128); j++) blockDot += refE4m3(q[t * K + j]!) * refE4m3(w.data[o * K + j]!);
          acc += blockDot * s[t * nb + b]! * w.scaleInv[Math.floor(o / 128) * nb + b]!;
        }
        out[t * N + o] = acc;
      }
    }
    return out;
  }
  const wr = refDequant(w);
  for (let t = 0; t < rows; t++) {
    for (let o = 0; o < N; o++) {
      let acc = 0;
      for (let j = 0; j < K; j++) acc += x[t * K + j]! * wr[o * K + j]!;
      out[t * N + o] = acc;
    }
  }
  return out;
}

/**
 * Where an activation row h [n] is act-quantized before an FP8 linear w [out, n]: for each element
 * whose scaled value h/s lies within a float32 rounding margin of an e4m3 rounding boundary (the
 * midpoint of two neighbouring codes), another correct implementation may round it to the other
 * code. Returns, per output, the largest effect of all such one-step flips: Σ step·s·|w[o, i]|.
 * Also asserts that no block's scale itself is that close to a ue8m0 power-of-two boundary.
 */
export function flipAllowance(h: Float32Array, fmt: ScaleFormat, w: HostWeight): Float64Array {
  const n = h.length;
  const real = refDequant(w);
  const out = new Float64Array(w.outDim);
  for (let lo = 0; lo < n; lo += 128) {
    const hi = Math.min(n, lo + 128);
    let amax = 0;
    for (let i = lo; i < hi; i++) amax = Math.max(amax, Math.abs(h[i]!));
    const raw = fr(Math.max(amax, fr(1e-4)) * fr(1 / 448));
    if (fmt === 'ue8m0') {
      const frac = Math.log2(raw) - Math.round(Math.log2(raw));
      assert.ok(Math.abs(frac) > 1e-5, 'reference data: a block scale sits on a ue8m0 boundary; change the seed');
    }
    const s = refBlockScale(amax, fmt);
    for (let i = lo; i < hi; i++) {
      const v = Math.min(448, Math.abs(h[i]! / s));
      // Neighbouring e4m3 values around v and the rounding boundary between them.
      let c = 0;
      while (c + 1 < E4M3_POSITIVE.length && E4M3_POSITIVE[c + 1]! <= v) c++;
      if (c + 1 >= E4M3_POSITIVE.length) continue;
      const a = E4M3_POSITIVE[c]!;
      const b = E4M3_POSITIVE[c + 1]!;
      const mid = (a + b) / 2;
      // h carries float32 rounding from the chained linears (~1e-7 of its terms, ~1e-6 absolute);
      // in code units that is 1e-6 / s, plus a relative 1e-5 for the scale and the division.
      const margin = 1e-6 / s + 1e-5 * v;
      if (Math.abs(v - mid) > margin) continue;
      for (let o = 0; o < w.outDim; o++) out[o]! += (b - a) * s * Math.abs(real[o * n + i]!);
    }
  }
  return out;
}

/** slot(p) = blockTable[p / pageSize] · pageSize + p % pageSize. */
export function refSlot(table: readonly number[], pageSize: number, p: number): number {
  return table[Math.floor(p / pageSize)]! * pageSize + (p % pageSize);
}

export const silu = (g: number): number => g / (1 + Math.exp(-g));

