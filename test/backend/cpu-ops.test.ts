/**
 * Every op of the Backend interface against an independent, deliberately naive reference.
 *
 * Each reference below is written from the contracts in src/backend/backend.ts and the semantics
 * in shared/spec/DSA.md: float64, straightforward loops, no code shared with the kernels (the
 * e4m3 and bf16 decoders, the activation quantizer and the Sylvester matrix are re-derived here).
 * Inputs are small and random, from a seeded generator, so every run sees the same numbers.
 *
 * The file is a list of cases, each { name, run(backend) → output arrays, reference() → expected
 * arrays, tol }, plus error cases { name, run(backend), error }. They are run for every entry of
 * `backends`: today the CPU backend; a GPU backend is checked against the same references by adding
 * an entry. `run` reads its outputs back (a GPU may only raise an error when it is read).
 *
 * Tolerances are per op (see TOL): |got − want| ≤ abs + rel·|want| element-wise, with ±∞ matched
 * exactly. Set OPS_TEST_VERBOSE=1 to print, per case, the worst error as a fraction of its allowance.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, HostArray, HostWeight, RouteOptions, ScaleFormat, SeqPages, Tensor } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu.js';
import { actQuant, actQuantRow, quantizeBlockWeight } from '../../src/numerics/block-quant.js';

// ================================================================================================
// Backends under test
// ================================================================================================

interface BackendUnderTest {
  name: string;
  make(): Backend | Promise<Backend>;
}

const backends: BackendUnderTest[] = [
  { name: 'cpu-js', make: () => new CpuBackend({ kernels: 'js' }) },
  // The WASM kernels, single-threaded and split over two threads (the pool's partial ranges).
  { name: 'cpu-wasm', make: () => new CpuBackend({ kernels: 'wasm', threads: 1 }) },
  { name: 'cpu-wasm-2threads', make: () => new CpuBackend({ kernels: 'wasm', threads: 2, minParallelWork: 0 }) },
];

// ================================================================================================
// Case structure and comparison
// ================================================================================================

type Arr = ArrayLike<number>;

/** Element-wise allowance: |got − want| ≤ abs + rel·|want|. */
interface Tol {
  abs: number;
  rel: number;
}

interface OpCase {
  name: string;
  /** Runs the op(s) on a backend and reads the outputs back. */
  run(b: Backend): Promise<Arr[]>;
  /** The expected outputs, from the naive float64 reference. */
  reference(): Arr[];
  /** One tolerance for all outputs, or one per output. */
  tol: Tol | readonly Tol[];
  /** Replaces the element-wise comparison where the contract allows several answers (ties, order). */
  check?(got: Arr[], want: Arr[], tol: readonly Tol[]): void;
}

interface ErrorCase {
  name: string;
  run(b: Backend): Promise<unknown>;
  /** The error message must match (every backend's errors name the op). */
  error: RegExp;
}

/**
 * Per-op tolerances. The CPU kernels accumulate in float64 (or in float32 where the reference
 * kernel does) and store float32, so they sit at ~1e-7 relative; the allowances leave room for a GPU
 * kernel's float32 accumulation and fast transcendentals while still catching any real mistake
 * (a wrong index, scale or block moves results by ≥1e-3 here).
 */
const TOL = {
  exact: { abs: 0, rel: 0 },
  /** add, mul, scale: one float32 rounding (≤ 6e-8 relative). */
  elementwise: { abs: 0, rel: 1e-6 },
  /** swiglu: float32 exp. */
  swiglu: { abs: 1e-7, rel: 2e-6 },
  /** rmsNorm / layerNorm over ≤ 48 values of magnitude ~1–3. */
  norm: { abs: 1e-6, rel: 2e-6 },
  /** float32 dot products of ≤ 40 terms, outputs ~1–10 (linear f32/bf16, headMatmul, embedding). */
  matmul: { abs: 2e-6, rel: 2e-6 },
  /**
   * fp8 weights over 320 inputs (real-valued or the block-scaled FP8 GEMM): outputs ~1, up to ~150
   * in the row with a ×100 block, whose terms (~5 each) set the float32 rounding scale.
   */
  fp8Gemm: { abs: 5e-5, rel: 1e-5 },
  /** rope: two products and a sum per output, float32 tables. */
  rope: { abs: 1e-6, rel: 1e-6 },
  /** hadamard: sums of 128 ± terms, scaled by n^-0.5. */
  hadamard: { abs: 1e-6, rel: 2e-6 },
  /** indexer scores: exact e4m3 dot products, float32 sums over heads; scores up to ~4, terms ~10. */
  indexer: { abs: 1e-5, rel: 2e-6 },
  /** MLA: float32 scores, softmax, convex combination of latent rows ~1. */
  attention: { abs: 2e-6, rel: 1e-5 },
  /** moeRoute weights: float32 sigmoid/softmax and normalization. */
  route: { abs: 1e-7, rel: 2e-6 },
  /** moeExperts with bf16 weights: three chained float32 linears. */
  expertsBf16: { abs: 2e-6, rel: 1e-5 },
  /**
   * moeExperts with FP8 weights and act-quant, outputs ~1. The intermediate activation is
   * re-quantized to e4m3, so where it lies within rounding distance of an e4m3 rounding boundary,
   * two correct implementations may pick neighbouring codes: the reference finds those elements and
   * adds the effect of that one-step flip to the allowance of the outputs they feed (see
   * flipAllowance); everywhere else this tight bound applies.
   */
  expertsFp8: { abs: 1e-5, rel: 1e-5 },
} as const satisfies Record<string, Tol>;

const verbose = process.env.OPS_TEST_VERBOSE === '1';

/** Compares element-wise; returns the worst error as a fraction of its allowance. */
function assertClose(got: Arr, want: Arr, tol: Tol, what: string): number {
  assert.equal(got.length, want.length, `${what}: got ${got.length} values, want ${want.length}`);
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (g !== w) assert.fail(`${what}[${i}]: got ${g}, want ${w}`);
      continue;
    }
    const err = Math.abs(g - w);
    const lim = tol.abs + tol.rel * Math.abs(w);
    const ratio = lim === 0 ? (err === 0 ? 0 : Infinity) : err / lim;
    if (ratio > worstRatio) {
      worstRatio = ratio;
      worst = i;
    }
  }
  if (worstRatio > 1) {
    const g = got[worst];
    const w = want[worst];
    assert.fail(`${what}[${worst}]: got ${g}, want ${w} (|err| ${Math.abs(g - w)}, allowed ${tol.abs + tol.rel * Math.abs(w)})`);
  }
  return worstRatio;
}

function tolsOf(c: OpCase, n: number): Tol[] {
  if (Array.isArray(c.tol)) {
    assert.equal(c.tol.length, n, `${c.name}: ${c.tol.length} tolerances for ${n} outputs`);
    return [...(c.tol as readonly Tol[])];
  }
  return Array.from({ length: n }, () => c.tol as Tol);
}

function compareAll(name: string, got: Arr[], want: Arr[], tols: readonly Tol[]): number {
  assert.equal(got.length, want.length, `${name}: ${got.length} outputs, want ${want.length}`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, assertClose(got[i], want[i], tols[i], `${name} output ${i}`));
  return worst;
}

// ================================================================================================
// Seeded random numbers
// ================================================================================================

/** mulberry32: a tiny deterministic PRNG. */
class Rng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  normal(): number {
    return Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next());
  }
  normals(n: number, std = 1, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }
  uniforms(n: number, lo: number, hi: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniform(lo, hi);
    return out;
  }
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }
}

// ================================================================================================
// Naive reference numerics (independent of src/numerics and the kernels)
// ================================================================================================

const fr = Math.fround;

/** e4m3fn code → value, from the format's definition (1 sign, 4 exponent bits bias 7, 3 mantissa bits). */
function refE4m3(code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const e = (code >> 3) & 15;
  const m = code & 7;
  if (e === 15 && m === 7) return NaN;
  return e === 0 ? sign * (m / 8) * 2 ** -6 : sign * (1 + m / 8) * 2 ** (e - 7);
}

const E4M3_POSITIVE = Array.from({ length: 0x7f }, (_, c) => refE4m3(c)); // codes 0..126 (0x7f is NaN)

/** Value (|y| ≤ 448) → nearest e4m3fn code, ties to the even code, by scanning every code. */
function refE4m3Encode(y: number): number {
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
function refBf16(bits: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, (bits & 0xffff) << 16);
  return dv.getFloat32(0);
}

/** DSA.md step 3: amax = max(max|x|, 1e-4); s = amax · float32(1/448); ue8m0: s = 2^ceil(log2 s). */
function refBlockScale(amax: number, fmt: ScaleFormat): number {
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
function refActQuant(x: Arr, rows: number, n: number, block: number, fmt: ScaleFormat): { q: Uint8Array; s: Float64Array } {
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
function refDequant(w: HostWeight): Float64Array {
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
function refLinear(x: Arr, rows: number, w: HostWeight, aq: ScaleFormat | null): Float64Array {
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
function flipAllowance(h: Float32Array, fmt: ScaleFormat, w: HostWeight): Float64Array {
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
function refSlot(table: readonly number[], pageSize: number, p: number): number {
  return table[Math.floor(p / pageSize)]! * pageSize + (p % pageSize);
}

const silu = (g: number): number => g / (1 + Math.exp(-g));

// ---- test-data helpers ----

/** Random non-NaN e4m3 codes of values ~N(0, std²) (saturated at ±448). */
function randomCodes(r: Rng, n: number, std: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = refE4m3Encode(Math.max(-448, Math.min(448, fr(std * r.normal()))));
  return out;
}

/** Random bf16 bit patterns, both signs, magnitudes in [2^lo, 2^hi). */
function randomBf16(r: Rng, n: number, lo = -7, hi = 3): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = (r.int(2) << 15) | ((127 + lo + r.int(hi - lo)) << 7) | r.int(128);
  return out;
}

function fp8Weight(r: Rng, outDim: number, inDim: number, std: number, fmt: ScaleFormat): HostWeight {
  const { w8, scaleInv } = quantizeBlockWeight(r.normals(outDim * inDim, std), outDim, inDim, fmt, 128);
  return { format: 'fp8', outDim, inDim, data: w8, scaleInv, block: [128, 128] };
}

function pagesOf(b: Backend, table: readonly number[], pageSize: number): SeqPages {
  return { blockTable: b.upload(Int32Array.from(table), [table.length]), pageSize };
}

async function readAll(b: Backend, ...ts: Tensor[]): Promise<HostArray[]> {
  const out: HostArray[] = [];
  for (const t of ts) out.push(await b.read(t));
  return out;
}

const DTYPE_CODE = { f32: 0, i32: 1, u8: 2, bf16: 3 } as const;
function arrayKind(a: HostArray): number {
  return a instanceof Float32Array ? 0 : a instanceof Int32Array ? 1 : a instanceof Uint8Array ? 2 : a instanceof Uint16Array ? 3 : -1;
}
/** A tensor's metadata as numbers: [dtype code, size, ...shape]. */
function meta(t: Tensor): number[] {
  return [DTYPE_CODE[t.dtype], t.size, ...t.shape];
}

// ================================================================================================
// Cases
// ================================================================================================

const cases: OpCase[] = [];
const errorCases: ErrorCase[] = [];

// ---- memory ----------------------------------------------------------------------------------

{
  const r = new Rng(101);
  const f = r.normals(12);
  const i = Int32Array.from({ length: 5 }, () => r.int(2000) - 1000);
  const u = Uint8Array.from({ length: 8 }, () => r.int(256));
  cases.push({
    name: 'upload/read: f32, i32, u8 round trip with shape, dtype and size; upload copies its input',
    async run(b) {
      const fc = f.slice();
      const tf = b.upload(fc, [3, 4]);
      const ti = b.upload(i, [5]);
      const tu = b.upload(u, [2, 2, 2]);
      fc.fill(0); // the tensor must not alias the host array
      const [rf, ri, ru] = await readAll(b, tf, ti, tu);
      return [rf!, ri!, ru!, [...meta(tf), ...meta(ti), ...meta(tu)], [arrayKind(rf!), arrayKind(ri!), arrayKind(ru!)]];
    },
    reference: () => [f, i, u, [0, 12, 3, 4, 1, 5, 5, 2, 8, 2, 2, 2], [0, 1, 2]],
    tol: TOL.exact,
  });
  cases.push({
    name: 'zeros: f32, i32, u8',
    async run(b) {
      const a = b.zeros([2, 3], 'f32');
      const c = b.zeros([4], 'i32');
      const d = b.zeros([3, 5], 'u8');
      const [ra, rc, rd] = await readAll(b, a, c, d);
      return [ra!, rc!, rd!, [...meta(a), ...meta(c), ...meta(d)], [arrayKind(ra!), arrayKind(rc!), arrayKind(rd!)]];
    },
    reference: () => [new Float64Array(6), new Float64Array(4), new Float64Array(15), [0, 6, 2, 3, 1, 4, 4, 2, 15, 3, 5], [0, 1, 2]],
    tol: TOL.exact,
  });
  cases.push({
    name: 'reshape: same data, new shape, usable by other ops; scope and dispose',
    async run(b) {
      const x = b.upload(f, [2, 6]);
      const v = b.reshape(x, [3, 4]);
      const flat = b.reshape(v, [12]);
      const doubled = b.add(v, v);
      const kept = b.scope(() => {
        const tmp = b.scale(x, 2);
        return b.add(tmp, x);
      });
      const scratch = b.scale(x, 5);
      b.dispose(scratch);
      const [rv, rflat, rd, rk, rx] = await readAll(b, v, flat, doubled, kept, x);
      return [rv!, rflat!, rd!, rk!, rx!, [...meta(v), ...meta(flat), ...meta(doubled), ...meta(kept)]];
    },
    reference: () => [f, f, Array.from(f, (v) => 2 * v), Array.from(f, (v) => 3 * v), f, [0, 12, 3, 4, 0, 12, 12, 0, 12, 3, 4, 0, 12, 2, 6]],
    tol: [TOL.exact, TOL.exact, TOL.elementwise, TOL.elementwise, TOL.exact, TOL.exact],
  });
  errorCases.push({
    name: 'reshape: element count mismatch throws',
    run: async (b) => b.read(b.reshape(b.upload(f, [2, 6]), [5, 2])),
    error: /reshape/,
  });
}

// ---- element-wise --------------------------------------------------------------------------

{
  const r = new Rng(202);
  const shape = [3, 5, 7];
  const n = 105;
  const a = r.normals(n, 2);
  const c = r.normals(n, 2);
  const g = r.normals(n, 3);
  // A few large gates: silu saturates to 0 and to the identity.
  g[0] = 40;
  g[1] = -40;
  g[2] = 15;
  g[3] = -15;
  const k = -0.37;
  cases.push({
    name: 'add, mul, scale',
    async run(b) {
      const ta = b.upload(a, shape);
      const tc = b.upload(c, shape);
      const [s, p, q] = await readAll(b, b.add(ta, tc), b.mul(ta, tc), b.scale(ta, k));
      return [s!, p!, q!];
    },
    reference: () => [Array.from(a, (v, i) => v + c[i]!), Array.from(a, (v, i) => v * c[i]!), Array.from(a, (v) => v * k)],
    tol: TOL.elementwise,
  });
  cases.push({
    name: 'swiglu: silu(gate) · up',
    async run(b) {
      return readAll(b, b.swiglu(b.upload(g, shape), b.upload(c, shape)));
    },
    reference: () => [Array.from(g, (v, i) => silu(v) * c[i]!)],
    tol: TOL.swiglu,
  });
  cases.push({
    name: 'sliceLast: [2, 3, 10] → [..., 3:7] and the whole row',
    async run(b) {
      const x = b.upload(a.subarray(0, 60), [2, 3, 10]);
      const s = b.sliceLast(x, 3, 4);
      const w = b.sliceLast(x, 0, 10);
      const [rs, rw] = await readAll(b, s, w);
      return [rs!, rw!, [...s.shape, ...w.shape]];
    },
    reference() {
      const out: number[] = [];
      for (let row = 0; row < 6; row++) for (let j = 3; j < 7; j++) out.push(a[row * 10 + j]!);
      return [out, a.subarray(0, 60), [2, 3, 4, 2, 3, 10]];
    },
    tol: TOL.exact,
  });
  const rows = [3, 0, 3, 5];
  cases.push({
    name: 'gatherRows: repeated and reordered rows',
    async run(b) {
      const t = b.gatherRows(b.upload(a.subarray(0, 30), [6, 5]), b.upload(Int32Array.from(rows), [4]));
      const [rt] = await readAll(b, t);
      return [rt!, t.shape];
    },
    reference() {
      const out: number[] = [];
      for (const row of rows) for (let j = 0; j < 5; j++) out.push(a[row * 5 + j]!);
      return [out, [4, 5]];
    },
    tol: TOL.exact,
  });
  cases.push({
    name: 'sliceRows and concatRows: a [6, 5] split into rows 1..2 and 4..5, then stacked',
    async run(b) {
      const x = b.upload(a.subarray(0, 30), [6, 5]);
      const t = b.concatRows([b.sliceRows(x, 1, 2), b.sliceRows(x, 4, 2)]);
      const [rt] = await readAll(b, t);
      return [rt!, t.shape];
    },
    reference() {
      const out: number[] = [];
      for (const row of [1, 2, 4, 5]) for (let j = 0; j < 5; j++) out.push(a[row * 5 + j]!);
      return [out, [4, 5]];
    },
    tol: TOL.exact,
  });
  errorCases.push({
    name: 'sliceRows beyond the first dimension throws',
    run: async (b) => b.read(b.sliceRows(b.upload(a.subarray(0, 30), [6, 5]), 5, 2)),
    error: /sliceRows/,
  });
  errorCases.push({
    name: 'concatRows of tensors with different trailing dims throws',
    run: async (b) => b.read(b.concatRows([b.upload(a.subarray(0, 10), [2, 5]), b.upload(a.subarray(0, 8), [2, 4])])),
    error: /concatRows/,
  });
  for (const bad of [6, -1]) {
    errorCases.push({
      name: `gatherRows: row index ${bad} outside 0..5 throws`,
      run: async (b) => b.read(b.gatherRows(b.upload(a.subarray(0, 30), [6, 5]), b.upload(Int32Array.of(0, bad), [2]))),
      error: /gatherRows/,
    });
  }
  const am = r.normals(4 * 9);
  for (let j = 0; j < 9; j++) am[9 + j] = -10 - Math.abs(am[9 + j]!); // all negative
  for (let j = 0; j < 9; j++) am[18 + j] = j === 6 ? -1e30 : -Infinity; // -inf except one
  cases.push({
    name: 'argmax over the last dim (all-negative and mostly −∞ rows)',
    run: async (b) => readAll(b, b.argmax(b.upload(am, [4, 9]))),
    reference() {
      const out: number[] = [];
      for (let row = 0; row < 4; row++) {
        let best = 0;
        for (let j = 1; j < 9; j++) if (am[row * 9 + j]! > am[row * 9 + best]!) best = j;
        out.push(best);
      }
      return [out];
    },
    tol: TOL.exact,
  });
}

// ---- layers ---------------------------------------------------------------------------------

{
  const r = new Rng(303);
  const ids = Int32Array.of(3, 0, 9, 3, 7);
  const tables: [string, HostWeight][] = [
    ['f32', { format: 'f32', outDim: 10, inDim: 12, data: r.normals(120) }],
    ['bf16', { format: 'bf16', outDim: 10, inDim: 12, data: randomBf16(r, 120) }],
    [
      'fp8 (block [4, 64], partial blocks)',
      { format: 'fp8', outDim: 10, inDim: 160, data: randomCodes(r, 1600, 50), scaleInv: r.uniforms(9, 0.001, 0.1), block: [4, 64] },
    ],
  ];
  for (const [label, table] of tables) {
    cases.push({
      name: `embedding: ${label} table`,
      async run(b) {
        const t = b.embedding(b.uploadWeight(table), b.upload(ids, [ids.length]));
        const [rt] = await readAll(b, t);
        return [rt!, meta(t)];
      },
      reference() {
        const real = refDequant(table);
        const out: number[] = [];
        for (const id of ids) for (let j = 0; j < table.inDim; j++) out.push(real[id * table.inDim + j]!);
        return [out, [0, ids.length * table.inDim, ids.length, table.inDim]];
      },
      tol: [TOL.matmul, TOL.exact],
    });
  }

  const xn = r.normals(2 * 3 * 48, 2);
  const wn = r.normals(48, 0.1, 1);
  const eps = 1e-6;
  cases.push({
    name: 'rmsNorm over the last dim of [2, 3, 48]',
    run: async (b) => readAll(b, b.rmsNorm(b.upload(xn, [2, 3, 48]), b.upload(wn, [48]), eps)),
    reference() {
      const out = new Float64Array(xn.length);
      for (let row = 0; row < 6; row++) {
        let ss = 0;
        for (let j = 0; j < 48; j++) ss += xn[row * 48 + j]! ** 2;
        const inv = 1 / Math.sqrt(ss / 48 + eps);
        for (let j = 0; j < 48; j++) out[row * 48 + j] = xn[row * 48 + j]! * inv * wn[j]!;
      }
      return [out];
    },
    tol: TOL.norm,
  });
  const xl = r.normals(5 * 32, 1.5, 3); // mean 3: the centring matters
  const wl = r.normals(32, 0.2, 1);
  const bl = r.normals(32, 0.5);
  cases.push({
    name: 'layerNorm with weight and bias, rows with a large mean',
    run: async (b) => readAll(b, b.layerNorm(b.upload(xl, [5, 32]), b.upload(wl, [32]), b.upload(bl, [32]), eps)),
    reference() {
      const out = new Float64Array(xl.length);
      for (let row = 0; row < 5; row++) {
        let mean = 0;
        for (let j = 0; j < 32; j++) mean += xl[row * 32 + j]!;
        mean /= 32;
        let v = 0;
        for (let j = 0; j < 32; j++) v += (xl[row * 32 + j]! - mean) ** 2;
        v /= 32;
        for (let j = 0; j < 32; j++) out[row * 32 + j] = ((xl[row * 32 + j]! - mean) / Math.sqrt(v + eps)) * wl[j]! + bl[j]!;
      }
      return [out];
    },
    tol: TOL.norm,
  });
}

// ---- linear ---------------------------------------------------------------------------------

{
  const r = new Rng(404);
  const linCase = (label: string, x: Float32Array, rows: number, w: HostWeight, aq: ScaleFormat | null, tol: Tol): OpCase => ({
    name: `linear: ${label}`,
    async run(b) {
      const t = b.linear(b.upload(x, [rows, w.inDim]), b.uploadWeight(w), aq);
      const [rt] = await readAll(b, t);
      return [rt!, t.shape];
    },
    reference: () => [refLinear(x, rows, w, aq), [rows, w.outDim]],
    tol: [tol, TOL.exact],
  });
  cases.push(linCase('f32 weight [40, 24]', r.normals(3 * 24), 3, { format: 'f32', outDim: 40, inDim: 24, data: r.normals(960, 0.3) }, null, TOL.matmul));
  cases.push(linCase('bf16 weight [24, 40]', r.normals(4 * 40), 4, { format: 'bf16', outDim: 24, inDim: 40, data: randomBf16(r, 960) }, null, TOL.matmul));
  // FP8 weight [200, 320]: 128-blocks with a partial last block in both dims (2 × 3 scale tiles).
  const w8 = fp8Weight(r, 200, 320, 0.05, 'none');
  const x8 = r.normals(3 * 320);
  for (let j = 128; j < 256; j++) x8[320 + j] = 0; // row 1, block 1: all zero (amax floor)
  for (let j = 0; j < 128; j++) x8[640 + j] *= 100; // row 2, block 0: a large block
  for (let j = 256; j < 320; j++) x8[640 + j] *= 1e-3; // row 2, partial block: a small one
  cases.push(linCase('fp8 weight [200, 320] without act-quant (dequantized weight)', x8, 3, w8, null, TOL.fp8Gemm));
  cases.push(linCase("fp8 weight [200, 320], act-quant 'none' (block-scaled FP8 GEMM)", x8, 3, w8, 'none', TOL.fp8Gemm));
  cases.push(linCase("fp8 weight [200, 320], act-quant 'ue8m0' (block-scaled FP8 GEMM)", x8, 3, w8, 'ue8m0', TOL.fp8Gemm));
  const wUe = fp8Weight(r, 200, 320, 0.05, 'ue8m0');
  cases.push(linCase("fp8 weight with ue8m0 scales, act-quant 'ue8m0'", x8, 3, wUe, 'ue8m0', TOL.fp8Gemm));
  cases.push({
    name: 'linear: the FP8 GEMM differs from the dequantized product (the act-quant is really applied)',
    async run(b) {
      const x = b.upload(x8, [3, 320]);
      const w = b.uploadWeight(w8);
      const [plain, quant] = await readAll(b, b.linear(x, w, null), b.linear(x, w, 'ue8m0'));
      let maxDiff = 0;
      for (let i = 0; i < plain!.length; i++) maxDiff = Math.max(maxDiff, Math.abs(plain![i]! - quant![i]!));
      return [[maxDiff > 1e-3 ? 1 : 0]];
    },
    reference: () => [[1]],
    tol: TOL.exact,
  });
  errorCases.push({
    name: 'linear: input features ≠ weight inDim throws',
    run: async (b) => b.read(b.linear(b.upload(new Float32Array(20), [2, 10]), b.uploadWeight({ format: 'f32', outDim: 4, inDim: 12, data: new Float32Array(48) }), null)),
    error: /linear/,
  });

  const T = 3;
  const H = 4;
  const n = 8;
  const m = 6;
  const hx = r.normals(T * H * n);
  const hw = r.normals(H * n * m, 0.5);
  const hwT = r.normals(H * m * n, 0.5);
  cases.push({
    name: 'headMatmul: x [3, 4, 8] · w [4, 8, 6] and · w[4, 6, 8]ᵀ',
    async run(b) {
      const x = b.upload(hx, [T, H, n]);
      const a = b.headMatmul(x, b.upload(hw, [H, n, m]), false);
      const c = b.headMatmul(x, b.upload(hwT, [H, m, n]), true);
      const [ra, rc] = await readAll(b, a, c);
      return [ra!, rc!, [...a.shape, ...c.shape]];
    },
    reference() {
      const a = new Float64Array(T * H * m);
      const c = new Float64Array(T * H * m);
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          for (let j = 0; j < m; j++) {
            let s = 0;
            let sT = 0;
            for (let i = 0; i < n; i++) {
              const xi = hx[(t * H + h) * n + i]!;
              s += xi * hw[(h * n + i) * m + j]!;
              sT += xi * hwT[(h * m + j) * n + i]!;
            }
            a[(t * H + h) * m + j] = s;
            c[(t * H + h) * m + j] = sT;
          }
        }
      }
      return [a, c, [T, H, m, T, H, m]];
    },
    tol: [TOL.matmul, TOL.matmul, TOL.exact],
  });
}

// ---- rope and hadamard --------------------------------------------------------------------------

{
  const r = new Rng(505);
  const T = 4;
  const heads = 3;
  const dim = 24;
  const half = 8;
  const maxPos = 12;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const ang = p * 10000 ** ((-2 * i) / (2 * half));
      cos[p * half + i] = Math.cos(ang);
      sin[p * half + i] = Math.sin(ang);
    }
  }
  const positions = Int32Array.of(5, 0, 11, 3); // out of order
  const x = r.normals(T * heads * dim);
  const refRope = (offset: number, interleaved: boolean): Float64Array => {
    const out = Float64Array.from(x);
    for (let t = 0; t < T; t++) {
      const p = positions[t]!;
      for (let h = 0; h < heads; h++) {
        const base = (t * heads + h) * dim + offset;
        for (let i = 0; i < half; i++) {
          const i0 = interleaved ? base + 2 * i : base + i;
          const i1 = interleaved ? base + 2 * i + 1 : base + i + half;
          // (a + ib) · (cos + i sin)
          const a = x[i0]!;
          const b = x[i1]!;
          const c = cos[p * half + i]!;
          const s = sin[p * half + i]!;
          out[i0] = a * c - b * s;
          out[i1] = a * s + b * c;
        }
      }
    }
    return out;
  };
  for (const [offset, interleaved] of [
    [8, true],
    [8, false],
    [0, false],
    [0, true],
  ] as const) {
    cases.push({
      name: `rope: ${interleaved ? 'interleaved' : 'half-split'}, offset ${offset}, positions out of order`,
      run: async (b) =>
        readAll(b, b.rope(b.upload(x, [T, heads, dim]), b.upload(positions, [T]), b.upload(cos, [maxPos, half]), b.upload(sin, [maxPos, half]), offset, interleaved)),
      reference: () => [refRope(offset, interleaved)],
      tol: TOL.rope,
    });
  }
  errorCases.push({
    name: 'rope: a position outside the cos/sin table throws',
    run: async (b) =>
      b.read(b.rope(b.upload(x, [T, heads, dim]), b.upload(Int32Array.of(5, 0, 12, 3), [T]), b.upload(cos, [maxPos, half]), b.upload(sin, [maxPos, half]), 8, true)),
    error: /rope/,
  });

  /** Sylvester matrix by the recursion H_2n = [[H, H], [H, −H]]. */
  const sylvester = (n: number): number[][] => {
    let h = [[1]];
    while (h.length < n) h = [...h.map((row) => [...row, ...row]), ...h.map((row) => [...row, ...row.map((v) => -v)])];
    return h;
  };
  for (const [rows, n] of [
    [3, 128],
    [2, 16],
  ] as const) {
    const hx = r.normals(rows * n);
    cases.push({
      name: `hadamard: [${rows}, ${n}] vs the explicit Sylvester matrix · n^-0.5`,
      run: async (b) => readAll(b, b.hadamard(b.upload(hx, [rows, n]))),
      reference() {
        const H = sylvester(n);
        const out = new Float64Array(rows * n);
        for (let t = 0; t < rows; t++) {
          for (let i = 0; i < n; i++) {
            let s = 0;
            for (let j = 0; j < n; j++) s += H[i]![j]! * hx[t * n + j]!;
            out[t * n + i] = s / Math.sqrt(n);
          }
        }
        return [out];
      },
      tol: TOL.hadamard,
    });
  }
}

// ---- FP8 quantization -------------------------------------------------------------------------

{
  const r = new Rng(606);
  const rows = 4;
  const n = 200; // one full 128-block and a partial one
  const x = r.normals(rows * n);
  for (let j = 0; j < n; j++) x[n + j] = 0; // zero row: amax floor 1e-4
  for (let j = 0; j < n; j++) x[2 * n + j]! *= j < 128 ? 1000 : 1e-5; // large block, then below the floor
  for (let j = 0; j < n; j++) x[3 * n + j] = x[3 * n + j]! * (j % 7 === 0 ? 50 : 0.01); // wide range in a block
  for (const fmt of ['none', 'ue8m0'] as const) {
    cases.push({
      name: `quantFp8 + dequantFp8 (block 128, '${fmt}'): codes and scales bit-exact vs numerics actQuant, round trip`,
      async run(b) {
        const { q, s } = b.quantFp8(b.upload(x, [rows, n]), 128, fmt);
        const d = b.dequantFp8(q, s, 128);
        const [rq, rs, rd] = await readAll(b, q, s, d);
        return [rq!, rs!, rd!, [...meta(q), ...meta(s), ...meta(d)]];
      },
      reference() {
        const { q, s } = actQuant(x, rows, n, 128, fmt);
        // The naive quantizer (used by the FP8 GEMM reference) agrees with numerics bit for bit.
        const mine = refActQuant(x, rows, n, 128, fmt);
        assert.deepEqual(Array.from(mine.q), Array.from(q), 'reference quantizer codes');
        assert.deepEqual(Array.from(mine.s), Array.from(s), 'reference quantizer scales');
        const d = Array.from(q, (c, i) => fr(refE4m3(c) * s[Math.floor(i / n) * 2 + Math.floor((i % n) / 128)]!));
        return [q, s, d, [2, rows * n, rows, n, 0, rows * 2, rows, 2, 0, rows * n, rows, n]];
      },
      tol: TOL.exact,
      check(got, want, tols) {
        compareAll(this.name, got, want, tols);
        // Round trip: within half an e4m3 step (1/16 relative, 2^-10 · s absolute for subnormals).
        const d = got[2]!;
        const s = got[1]!;
        for (let i = 0; i < x.length; i++) {
          const sc = s[Math.floor(i / n) * 2 + Math.floor((i % n) / 128)]!;
          const bound = Math.abs(x[i]!) / 16 + sc * 2 ** -10 + 1e-30;
          assert.ok(Math.abs(d[i]! - x[i]!) <= bound, `round trip [${i}]: ${x[i]} → ${d[i]}`);
        }
      },
    });
  }
}

// ---- cache writes ----------------------------------------------------------------------------

{
  const r = new Rng(707);
  const table = [2, 0, 3];
  const pageSize = 4;
  const slots = 16;
  const width = 10;
  const pos1 = Int32Array.of(5, 0, 11, 6, 3, 9); // out of order, across the pages
  const src1 = r.normals(6 * 6);
  const pos2 = Int32Array.of(10);
  const src2 = r.normals(3);
  const init = Float32Array.from({ length: slots * width }, (_, i) => 1000 + i);
  cases.push({
    name: 'writeRows: f32 rows through block table [2, 0, 3] (pageSize 4) at column offsets 3 and 7',
    async run(b) {
      const dst = b.upload(init, [slots, width]);
      const pages = pagesOf(b, table, pageSize);
      b.writeRows(dst, pages, b.upload(pos1, [6]), b.upload(src1, [6, 6]), 3);
      b.writeRows(dst, pages, b.upload(pos2, [1]), b.upload(src2, [1, 3]), 7);
      return readAll(b, dst);
    },
    reference() {
      const out = Float64Array.from(init);
      pos1.forEach((p, t) => {
        for (let j = 0; j < 6; j++) out[refSlot(table, pageSize, p) * width + 3 + j] = src1[t * 6 + j]!;
      });
      for (let j = 0; j < 3; j++) out[refSlot(table, pageSize, pos2[0]!) * width + 7 + j] = src2[j]!;
      return [out];
    },
    tol: TOL.exact,
  });
  errorCases.push({
    name: 'writeRows: columns past the cache row throw',
    async run(b) {
      const dst = b.upload(init, [slots, width]);
      b.writeRows(dst, pagesOf(b, table, pageSize), b.upload(pos1, [6]), b.upload(src1, [6, 6]), 5);
      return b.read(dst);
    },
    error: /writeRows/,
  });
  errorCases.push({
    name: 'writeRows: a position past the block table throws',
    async run(b) {
      const dst = b.upload(init, [slots, width]);
      b.writeRows(dst, pagesOf(b, table, pageSize), b.upload(Int32Array.of(12), [1]), b.upload(src2, [1, 3]), 0);
      return b.read(dst);
    },
    error: /writeRows|page/,
  });
  const initU8 = Uint8Array.from({ length: slots * 8 }, () => 0x7f);
  const srcU8 = Uint8Array.from({ length: 3 * 8 }, () => r.int(256));
  const posU8 = Int32Array.of(10, 1, 4);
  cases.push({
    name: 'writeRows: u8 rows (an FP8 key cache) through a paged block table',
    async run(b) {
      const dst = b.upload(initU8, [slots, 8]);
      b.writeRows(dst, pagesOf(b, table, pageSize), b.upload(posU8, [3]), b.upload(srcU8, [3, 8]), 0);
      return readAll(b, dst);
    },
    reference() {
      const out = Array.from(initU8);
      posU8.forEach((p, t) => {
        for (let j = 0; j < 8; j++) out[refSlot(table, pageSize, p) * 8 + j] = srcU8[t * 8 + j]!;
      });
      return [out];
    },
    tol: TOL.exact,
  });
}

// ---- lightning indexer and top-k -----------------------------------------------------------------

{
  const r = new Rng(808);
  const T = 4;
  const H = 3;
  const D = 32;
  const table = [2, 0, 3];
  const pageSize = 4;
  const slots = 16;
  const nKeys = 11;
  const positions = Int32Array.of(10, 3, 7, 0);
  const q8 = randomCodes(r, T * H * D, 3);
  const w = r.normals(T * H, 0.5);
  // Unused slots hold NaN codes and scales: reading them would poison the scores.
  const kCache = new Uint8Array(slots * D).fill(0x7f);
  const kScale = new Float32Array(slots).fill(NaN);
  const keys = randomCodes(r, nKeys * D, 3);
  const keyScales = r.uniforms(nKeys, 0.01, 0.2);
  for (let s = 0; s < nKeys; s++) {
    const slot = refSlot(table, pageSize, s);
    kCache.set(keys.subarray(s * D, (s + 1) * D), slot * D);
    kScale[slot] = keyScales[s]!;
  }
  cases.push({
    name: 'indexerScores: paged FP8 key cache, kScale · Σ_h w · ReLU(q8 · k8), −∞ after each query position',
    async run(b) {
      const out = b.indexerScores(
        b.upload(q8, [T, H, D]),
        b.upload(w, [T, H]),
        b.upload(kCache, [slots, D]),
        b.upload(kScale, [slots]),
        pagesOf(b, table, pageSize),
        nKeys,
        b.upload(positions, [T]),
      );
      const [ro] = await readAll(b, out);
      return [ro!, out.shape];
    },
    reference() {
      const out = new Float64Array(T * nKeys).fill(-Infinity);
      for (let t = 0; t < T; t++) {
        for (let s = 0; s <= positions[t]!; s++) {
          let sum = 0;
          for (let h = 0; h < H; h++) {
            let d = 0;
            for (let j = 0; j < D; j++) d += refE4m3(q8[(t * H + h) * D + j]!) * refE4m3(keys[s * D + j]!);
            sum += w[t * H + h]! * Math.max(0, d);
          }
          out[t * nKeys + s] = keyScales[s]! * sum;
        }
      }
      return [out, [T, nKeys]];
    },
    tol: [TOL.indexer, TOL.exact],
  });
}

/**
 * Top-k check: per row, the selection is ascending, distinct, within 0..pos, min(k, pos+1) long,
 * −1 padded; its scores equal the reference full sort's top scores as a multiset; its minimum is ≥
 * the best excluded score; and where the k-th score is not tied, the set equals the reference's.
 */
function topkCase(name: string, scores: Float32Array, T: number, S: number, k: number, positions: Int32Array): OpCase {
  const width = Math.min(k, S);
  /** Valid keys of row t, best first (ties: lower position first). */
  const fullSort = (t: number): number[] => {
    const valid = Math.min(positions[t]! + 1, S);
    const sc = (s: number) => scores[t * S + s]!;
    return Array.from({ length: valid }, (_, s) => s).sort((a, b) => (sc(a) > sc(b) ? -1 : sc(a) < sc(b) ? 1 : a - b));
  };
  return {
    name,
    async run(b) {
      const out = b.topk(b.upload(scores, [T, S]), k, b.upload(positions, [T]));
      const [ro] = await readAll(b, out);
      return [ro!, [...meta(out)]];
    },
    reference() {
      const out = new Int32Array(T * width).fill(-1);
      for (let t = 0; t < T; t++) {
        const order = fullSort(t);
        const take = Math.min(k, order.length);
        order
          .slice(0, take)
          .sort((a, b) => a - b)
          .forEach((s, j) => (out[t * width + j] = s));
      }
      return [out, [1, T * width, T, width]];
    },
    tol: TOL.exact,
    check(got, want) {
      assertClose(got[1]!, want[1]!, TOL.exact, `${name}: output metadata [dtype, size, ...shape]`);
      const g = got[0]!;
      assert.equal(g.length, T * width);
      for (let t = 0; t < T; t++) {
        const order = fullSort(t);
        const take = Math.min(k, order.length);
        const row = Array.from({ length: width }, (_, j) => g[t * width + j]!);
        const sel = row.slice(0, take);
        const what = `${name}, row ${t} (position ${positions[t]}): [${row.join(', ')}]`;
        assert.ok(
          row.slice(take).every((v) => v === -1),
          `${what}: −1 padding after ${take} selected`,
        );
        for (let j = 0; j < take; j++) {
          assert.ok(sel[j]! >= 0 && sel[j]! < order.length, `${what}: ${sel[j]} is not a valid key`);
          if (j > 0) assert.ok(sel[j]! > sel[j - 1]!, `${what}: not strictly ascending`);
        }
        const sc = (s: number) => scores[t * S + s]!;
        const gotScores = sel.map(sc).sort((a, b) => b - a);
        const refScores = order.slice(0, take).map(sc);
        assert.deepEqual(gotScores, refScores, `${what}: selected scores differ from the full sort's top ${take}`);
        const chosen = new Set(sel);
        const minSel = Math.min(...sel.map(sc));
        const bestExcluded = Math.max(-Infinity, ...order.filter((s) => !chosen.has(s)).map(sc));
        assert.ok(minSel >= bestExcluded, `${what}: selected minimum ${minSel} < excluded ${bestExcluded}`);
        if (take < order.length && sc(order[take - 1]!) > sc(order[take]!)) {
          assert.deepEqual(sel, Array.from(want[0]!).slice(t * width, t * width + take), `${what}: untied selection differs`);
        }
      }
    },
  };
}

{
  const r = new Rng(909);
  // 24 keys, k 8, integer scores (many exact ties); beyond each position, large decoys that must be ignored.
  {
    const T = 6;
    const S = 24;
    const positions = Int32Array.of(23, 3, 7, 12, 0, 20);
    const scores = new Float32Array(T * S);
    for (let t = 0; t < T; t++) for (let s = 0; s < S; s++) scores[t * S + s] = s <= positions[t]! ? r.int(5) : 100 + s;
    cases.push(topkCase('topk: k 8 of 24, integer scores with exact ties, rows with fewer valid keys than k, decoys after the position', scores, T, S, 8, positions));
    cases.push(topkCase('topk: k 30 > 24 keys (width 24)', scores, T, S, 30, positions));
  }
  {
    const T = 5;
    const S = 300;
    const positions = Int32Array.of(299, 150, 63, 40, 200);
    const scores = new Float32Array(T * S).fill(-Infinity);
    for (let t = 0; t < T; t++) {
      for (let s = 0; s <= positions[t]!; s++) scores[t * S + s] = t === 4 ? r.normal() : r.int(12) * 0.25 - 1; // row 4: no ties
    }
    cases.push(topkCase('topk: k 64 of 300, 12 tied levels and a tie-free row, −∞ after the position', scores, T, S, 64, positions));
  }
}

// ---- MLA attention -------------------------------------------------------------------------------

{
  const r = new Rng(1010);
  const T = 5;
  const H = 4;
  const rk = 16; // kv_lora_rank
  const dr = 8; // rope dim
  const table = [2, 0, 5, 3];
  const pageSize = 4;
  const slots = 24;
  const nKeys = 14;
  const positions = Int32Array.of(13, 2, 7, 0, 10);
  const scale = 0.3;
  const qLat = r.normals(T * H * rk);
  const qPe = r.normals(T * H * dr);
  const logical = r.normals(nKeys * (rk + dr)); // [c_kv | k_rope] per position
  const latent = new Float32Array(slots * (rk + dr)).fill(NaN); // unused slots poison
  for (let s = 0; s < nKeys; s++) latent.set(logical.subarray(s * (rk + dr), (s + 1) * (rk + dr)), refSlot(table, pageSize, s) * (rk + dr));

  /**
   * MHA expanded explicitly: per head, q_h = [qLat_h | qPe_h], K_h rows = [c_kv(s) | k_rope(s)],
   * V_h rows = c_kv(s) over the attended positions; softmax(q_h · K_hᵀ · scale) · V_h.
   */
  const refMla = (attended: (t: number) => number[]): Float64Array => {
    const out = new Float64Array(T * H * rk);
    for (let t = 0; t < T; t++) {
      const set = attended(t);
      for (let h = 0; h < H; h++) {
        const q = [...qLat.subarray((t * H + h) * rk, (t * H + h + 1) * rk), ...qPe.subarray((t * H + h) * dr, (t * H + h + 1) * dr)];
        const K = set.map((s) => Array.from(logical.subarray(s * (rk + dr), (s + 1) * (rk + dr))));
        const V = set.map((s) => Array.from(logical.subarray(s * (rk + dr), s * (rk + dr) + rk)));
        const logits = K.map((k) => k.reduce((acc, v, j) => acc + v * q[j]!, 0) * scale);
        const mx = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let c = 0; c < rk; c++) {
          let o = 0;
          for (let j = 0; j < set.length; j++) o += (e[j]! / z) * V[j]![c]!;
          out[(t * H + h) * rk + c] = o;
        }
      }
    }
    return out;
  };
  const runMla = async (b: Backend, idx: Int32Array | null, width: number, pos = positions): Promise<Arr[]> => {
    const out = b.mlaAttention(
      b.upload(qLat, [T, H, rk]),
      b.upload(qPe, [T, H, dr]),
      b.upload(latent, [slots, rk + dr]),
      pagesOf(b, table, pageSize),
      b.upload(pos, [T]),
      idx ? b.upload(idx, [T, width]) : null,
      scale,
    );
    const [ro] = await readAll(b, out);
    return [ro!, out.shape];
  };
  cases.push({
    name: 'mlaAttention: dense causal through a paged cache vs explicit per-head MHA',
    run: (b) => runMla(b, null, 0),
    reference: () => [refMla((t) => Array.from({ length: positions[t]! + 1 }, (_, s) => s)), [T, H, rk]],
    tol: [TOL.attention, TOL.exact],
  });

  // Sparse: random duplicate-free subsets in random order, −1 padding (one row interleaved).
  const K = 6;
  const idx = new Int32Array(T * K).fill(-1);
  const sizes = [5, 3, 6, 1, 4];
  for (let t = 0; t < T; t++) {
    const pick = r.shuffle(Array.from({ length: positions[t]! + 1 }, (_, s) => s)).slice(0, sizes[t]!);
    pick.forEach((s, j) => (idx[t * K + j] = s));
  }
  // Row 0: move its −1 into the middle.
  idx[0 * K + 5] = idx[0 * K + 1]!;
  idx[0 * K + 1] = -1;
  const subset = (t: number) => Array.from(idx.subarray(t * K, (t + 1) * K)).filter((s) => s >= 0);
  cases.push({
    name: 'mlaAttention: sparse indices (random subsets, −1 padding) vs the dense reference restricted to them',
    run: (b) => runMla(b, idx, K),
    reference: () => [refMla(subset), [T, H, rk]],
    tol: [TOL.attention, TOL.exact],
  });
  cases.push({
    name: 'mlaAttention: sparse differs from dense where the subset is partial',
    async run(b) {
      const [dense] = await runMla(b, null, 0);
      const [sparse] = await runMla(b, idx, K);
      const rowDiffers = (t: number) => {
        let d = 0;
        for (let j = t * H * rk; j < (t + 1) * H * rk; j++) d = Math.max(d, Math.abs(dense![j]! - sparse![j]!));
        return d > 1e-3 ? 1 : 0;
      };
      return [Array.from({ length: T }, (_, t) => rowDiffers(t))];
    },
    // Rows 0, 2 and 4 attend to a strict subset; row 1 (3 of 3) and row 3 (1 of 1) are complete.
    reference: () => [[1, 0, 1, 0, 1]],
    tol: TOL.exact,
  });
  const future = idx.slice();
  future[1 * K + 2] = 3; // query at position 2 selects position 3
  errorCases.push({
    name: 'mlaAttention: a selected future position throws',
    run: (b) => runMla(b, future, K),
    error: /mlaAttention/,
  });
}

// ---- latent cache formats (packLatent, bf16 tensors, mlaAttention over bf16 / fp8 caches) ----------

/** float32 value → bf16 bits, round to nearest even, by comparing the two neighbouring bf16 values. */
function refBf16Encode(x: number): number {
  const f = fr(x);
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, f);
  const lo = dv.getUint32(0) >>> 16; // truncation toward zero
  const hi = lo + 1; // next bf16 away from zero (same sign)
  const dLo = Math.abs(f - refBf16(lo));
  const dHi = Math.abs(refBf16(hi) - f);
  if (dLo < dHi) return lo;
  if (dHi < dLo) return hi;
  return (lo & 1) === 0 ? lo : hi;
}

/**
 * Reference packer for one latent row (see LatentFormat in backend.ts): f32 → the values; bf16 →
 * RNE bits; fp8 → bytes: r e4m3 codes (128-blocks, ue8m0 scales, as numerics' actQuantRow), r/128
 * little-endian float32 scales, dr little-endian bf16 k_rope values.
 */
function refPackRow(ckv: Float32Array, kPe: Float32Array, format: 'f32' | 'bf16' | 'fp8'): number[] {
  const r = ckv.length;
  if (format === 'f32') return [...ckv, ...kPe];
  if (format === 'bf16') return [...ckv, ...kPe].map(refBf16Encode);
  const { q, s } = refActQuant(ckv, 1, r, 128, 'ue8m0');
  const q2 = new Uint8Array(r);
  const s2 = new Float32Array(r / 128);
  actQuantRow(ckv, 0, r, 128, 'ue8m0', q2, 0, s2, 0);
  assert.deepEqual(Array.from(q), Array.from(q2), 'naive and numerics quantizers agree on the codes');
  assert.deepEqual(Array.from(s), Array.from(s2), 'naive and numerics quantizers agree on the scales');
  const out = new Uint8Array(r + 4 * s.length + 2 * kPe.length);
  const dv = new DataView(out.buffer);
  out.set(q, 0);
  s.forEach((v, b) => {
    assert.equal(2 ** Math.round(Math.log2(v)), v, `scale ${v} is a power of two`);
    dv.setFloat32(r + 4 * b, v, true);
  });
  kPe.forEach((v, c) => dv.setUint16(r + 4 * s.length + 2 * c, refBf16Encode(v), true));
  return Array.from(out);
}

/** The float32 values [c_kv | k_rope] a packed row stands for. */
function refUnpackRow(row: ArrayLike<number>, format: 'f32' | 'bf16' | 'fp8', r: number, dr: number): number[] {
  if (format === 'f32') return Array.from(row);
  if (format === 'bf16') return Array.from(row, refBf16);
  const bytes = Uint8Array.from(row);
  const dv = new DataView(bytes.buffer);
  const out: number[] = [];
  for (let c = 0; c < r; c++) out.push(refE4m3(bytes[c]!) * dv.getFloat32(r + 4 * Math.floor(c / 128), true));
  for (let c = 0; c < dr; c++) out.push(refBf16(dv.getUint16(r + (4 * r) / 128 + 2 * c, true)));
  return out;
}

{
  const r = new Rng(1313);
  // bf16 tensors through the memory and shape ops: bit patterns are kept.
  const bits = randomBf16(r, 24);
  const table = [1, 0];
  const pageSize = 4;
  cases.push({
    name: 'bf16 tensors: upload/read, zeros, reshape, sliceLast, gatherRows and writeRows keep the bit patterns',
    async run(b) {
      const t = b.upload(bits, [4, 6]);
      const z = b.zeros([3, 2], 'bf16');
      const v = b.reshape(t, [6, 4]);
      const s = b.sliceLast(t, 2, 3);
      const g = b.gatherRows(t, b.upload(Int32Array.of(3, 0, 3), [3]));
      const dst = b.zeros([8, 6], 'bf16');
      b.writeRows(dst, pagesOf(b, table, pageSize), b.upload(Int32Array.of(5, 0), [2]), b.upload(bits.subarray(0, 8), [2, 4]), 1);
      const out = await readAll(b, t, z, v, s, g, dst);
      return [...out, [...meta(t), ...meta(z), ...meta(v), ...meta(s), ...meta(g), ...meta(dst)], out.map(arrayKind)];
    },
    reference() {
      const slice: number[] = [];
      for (let row = 0; row < 4; row++) slice.push(...bits.subarray(row * 6 + 2, row * 6 + 5));
      const gathered = [...bits.subarray(18, 24), ...bits.subarray(0, 6), ...bits.subarray(18, 24)];
      const dst = new Array<number>(48).fill(0);
      dst.splice(refSlot(table, pageSize, 5) * 6 + 1, 4, ...bits.subarray(0, 4));
      dst.splice(refSlot(table, pageSize, 0) * 6 + 1, 4, ...bits.subarray(4, 8));
      const m = [3, 24, 4, 6, 3, 6, 3, 2, 3, 24, 6, 4, 3, 12, 4, 3, 3, 18, 3, 6, 3, 48, 8, 6];
      return [bits, new Array(6).fill(0), bits, slice, gathered, dst, m, [3, 3, 3, 3, 3, 3]];
    },
    tol: TOL.exact,
  });

  // packLatent: T rows of c_kv [T, 256] (two 128-blocks) and k_rope [T, 8].
  const T = 5;
  const rk = 256;
  const dr = 8;
  const ckv = r.normals(T * rk, 1.5);
  for (let j = 0; j < 128; j++) ckv[1 * rk + j] = 0; // row 1, block 0: all zero (amax floor)
  for (let j = 128; j < 256; j++) ckv[2 * rk + j]! *= 300; // row 2, block 1: large values
  for (let j = 0; j < rk; j++) ckv[3 * rk + j]! *= 1e-3; // row 3: small values
  ckv[4 * rk + 7] = 448 * 2 ** -3; // row 4: amax exactly a power of two times 448
  const kPe = r.normals(T * dr, 2);
  kPe[0] = fr(1 + 2 ** -8); // exactly halfway between two bf16 values: ties to even (down)
  kPe[1] = fr(1 + 3 * 2 ** -8); // halfway, ties to even (up)
  const widthOf = { f32: rk + dr, bf16: rk + dr, fp8: rk + 4 * (rk / 128) + 2 * dr } as const;
  const dtypeCode = { f32: 0, bf16: 3, fp8: 2 } as const;
  for (const format of ['f32', 'bf16', 'fp8'] as const) {
    cases.push({
      name: `packLatent '${format}': ${format === 'fp8' ? 'e4m3 codes, power-of-two scales (bit-exact vs actQuantRow ue8m0) and bf16 k_rope bytes' : format === 'bf16' ? 'bf16 bits, round to nearest even' : 'c_kv then k_rope'}`,
      async run(b) {
        const t = b.packLatent(b.upload(ckv, [T, rk]), b.upload(kPe, [T, dr]), format);
        const [rt] = await readAll(b, t);
        return [rt!, meta(t)];
      },
      reference() {
        const rows: number[] = [];
        for (let t = 0; t < T; t++) rows.push(...refPackRow(ckv.subarray(t * rk, (t + 1) * rk), kPe.subarray(t * dr, (t + 1) * dr), format));
        const w = widthOf[format];
        return [rows, [dtypeCode[format], T * w, T, w]];
      },
      tol: TOL.exact,
    });
  }
  errorCases.push({
    name: "packLatent 'fp8': r not a multiple of 128 throws",
    run: async (b) => b.read(b.packLatent(b.upload(new Float32Array(2 * 96), [2, 96]), b.upload(new Float32Array(16), [2, 8]), 'fp8')),
    error: /packLatent.*128/,
  });
}

{
  const r = new Rng(1414);
  const T = 5;
  const H = 3;
  const rk = 256;
  const dr = 16;
  const table = [2, 0, 5, 3];
  const pageSize = 4;
  const slots = 24;
  const nKeys = 14;
  const positions = Int32Array.of(13, 2, 7, 0, 10);
  const scale = 0.05;
  const qLat = r.normals(T * H * rk);
  const qPe = r.normals(T * H * dr);
  const ckv = r.normals(nKeys * rk, 1.5);
  const kPe = r.normals(nKeys * dr, 2);
  const K = 6;
  const idx = new Int32Array(T * K).fill(-1);
  const sizes = [5, 3, 6, 1, 4];
  for (let t = 0; t < T; t++) {
    r.shuffle(Array.from({ length: positions[t]! + 1 }, (_, s) => s))
      .slice(0, sizes[t]!)
      .forEach((s, j) => (idx[t * K + j] = s));
  }
  for (const format of ['bf16', 'fp8'] as const) {
    const width = format === 'bf16' ? rk + dr : rk + 4 * (rk / 128) + 2 * dr;
    // The cache as packed rows; unused slots hold NaN patterns (bf16 0x7fc0; fp8 codes and scales 0x7f…).
    const cache = format === 'bf16' ? new Uint16Array(slots * width).fill(0x7fc0) : new Uint8Array(slots * width).fill(0x7f);
    const logical: number[][] = [];
    for (let s = 0; s < nKeys; s++) {
      const row = refPackRow(ckv.subarray(s * rk, (s + 1) * rk), kPe.subarray(s * dr, (s + 1) * dr), format);
      cache.set(row, refSlot(table, pageSize, s) * width);
      logical.push(refUnpackRow(row, format, rk, dr));
    }
    /** The f32 attention reference over the decoded rows. */
    const refMla = (attended: (t: number) => number[]): Float64Array => {
      const out = new Float64Array(T * H * rk);
      for (let t = 0; t < T; t++) {
        const set = attended(t);
        for (let h = 0; h < H; h++) {
          const q = [...qLat.subarray((t * H + h) * rk, (t * H + h + 1) * rk), ...qPe.subarray((t * H + h) * dr, (t * H + h + 1) * dr)];
          const logits = set.map((s) => logical[s]!.reduce((acc, v, j) => acc + v * q[j]!, 0) * scale);
          const mx = Math.max(...logits);
          const e = logits.map((l) => Math.exp(l - mx));
          const z = e.reduce((a, b) => a + b, 0);
          for (let c = 0; c < rk; c++) {
            let o = 0;
            for (let j = 0; j < set.length; j++) o += (e[j]! / z) * logical[set[j]!]![c]!;
            out[(t * H + h) * rk + c] = o;
          }
        }
      }
      return out;
    };
    const run = async (b: Backend, sparse: boolean): Promise<Arr[]> => {
      const out = b.mlaAttention(
        b.upload(qLat, [T, H, rk]),
        b.upload(qPe, [T, H, dr]),
        b.upload(cache, [slots, width]),
        pagesOf(b, table, pageSize),
        b.upload(positions, [T]),
        sparse ? b.upload(idx, [T, K]) : null,
        scale,
      );
      const [ro] = await readAll(b, out);
      return [ro!, out.shape];
    };
    cases.push({
      name: `mlaAttention over a ${format} latent cache, dense causal: the decoded rows' f32 attention`,
      run: (b) => run(b, false),
      reference: () => [refMla((t) => Array.from({ length: positions[t]! + 1 }, (_, s) => s)), [T, H, rk]],
      tol: [TOL.attention, TOL.exact],
    });
    cases.push({
      name: `mlaAttention over a ${format} latent cache, sparse indices with −1 padding`,
      run: (b) => run(b, true),
      reference: () => [refMla((t) => Array.from(idx.subarray(t * K, (t + 1) * K)).filter((s) => s >= 0)), [T, H, rk]],
      tol: [TOL.attention, TOL.exact],
    });
  }
  errorCases.push({
    name: 'mlaAttention: a u8 (fp8) latent cache with the wrong row width throws',
    run: async (b) =>
      b.read(
        b.mlaAttention(
          b.upload(qLat, [T, H, rk]),
          b.upload(qPe, [T, H, dr]),
          b.zeros([slots, rk + dr], 'u8'),
          pagesOf(b, table, pageSize),
          b.upload(positions, [T]),
          null,
          scale,
        ),
      ),
    error: /mlaAttention/,
  });
}

// ---- mixture of experts ---------------------------------------------------------------------

interface RefRoute {
  experts: number[][];
  weights: number[][];
  chosen: number[][];
  /** Smallest gap at a selection boundary (kept vs dropped group, chosen vs next expert). */
  minGap: number;
}

/** DSA.md "Mixture of experts", as text: scores, bias for choosing, groups, top-k, weights. */
function refRoute(logits: Float32Array, T: number, E: number, bias: Float32Array | null, o: RouteOptions, forced: Int32Array | null): RefRoute {
  const res: RefRoute = { experts: [], weights: [], chosen: [], minGap: Infinity };
  for (let t = 0; t < T; t++) {
    const l = Array.from(logits.subarray(t * E, (t + 1) * E));
    let scores: number[];
    if (o.scoring === 'sigmoid') scores = l.map((v) => 1 / (1 + Math.exp(-v)));
    else {
      const mx = Math.max(...l);
      const z = l.reduce((a, v) => a + Math.exp(v - mx), 0);
      scores = l.map((v) => Math.exp(v - mx) / z);
    }
    const choice = scores.map((s, e) => (bias ? s + bias[e]! : s));
    if (o.nGroup > 1) {
      const per = E / o.nGroup;
      const groupScore = Array.from({ length: o.nGroup }, (_, g) => {
        const members = choice.slice(g * per, (g + 1) * per).sort((a, b) => b - a);
        return bias ? members[0]! + members[1]! : members[0]!;
      });
      const ranked = Array.from({ length: o.nGroup }, (_, g) => g).sort((a, b) => groupScore[b]! - groupScore[a]!);
      const keep = ranked.slice(0, o.topkGroup);
      res.minGap = Math.min(res.minGap, groupScore[ranked[o.topkGroup - 1]!]! - groupScore[ranked[o.topkGroup]!]!);
      for (let e = 0; e < E; e++) if (!keep.includes(Math.floor(e / per))) choice[e] = -Infinity;
    }
    const rankedExperts = Array.from({ length: E }, (_, e) => e).sort((a, b) => choice[b]! - choice[a]! || a - b);
    const own = rankedExperts.slice(0, o.topk);
    res.minGap = Math.min(res.minGap, choice[own[o.topk - 1]!]! - choice[rankedExperts[o.topk]!]!);
    const use = forced ? Array.from(forced.subarray(t * o.topk, (t + 1) * o.topk)) : own;
    let w = use.map((e) => scores[e]!);
    if (o.normalize) {
      const z = w.reduce((a, b) => a + b, 0);
      w = w.map((v) => v / z);
    }
    w = w.map((v) => v * o.scale);
    const pairs = use.map((e, j) => [e, w[j]!] as const).sort((a, b) => a[0] - b[0]);
    res.experts.push(pairs.map((p) => p[0]));
    res.weights.push(pairs.map((p) => p[1]));
    res.chosen.push([...own].sort((a, b) => a - b));
  }
  return res;
}

{
  const r = new Rng(1111);
  const T = 8;
  const routeCase = (label: string, E: number, o: RouteOptions, withBias: boolean, forcedRows: number[][] | null, sanity?: (ref: RefRoute, logits: Float32Array, bias: Float32Array | null) => void): OpCase => {
    const logits = r.normals(T * E, 1.5);
    const bias = withBias ? r.uniforms(E, -0.4, 0.4) : null;
    const forced = forcedRows ? Int32Array.from(forcedRows.flat()) : null;
    return {
      name: `moeRoute: ${label}`,
      async run(b) {
        const res = b.moeRoute(b.upload(logits, [T, E]), bias ? b.upload(bias, [E]) : null, o, forced ? b.upload(forced, [T, o.topk]) : null);
        const [e, w, c] = await readAll(b, res.experts, res.weights, res.chosen);
        return [e!, w!, c!, [...meta(res.experts), ...meta(res.weights), ...meta(res.chosen)]];
      },
      reference() {
        const ref = refRoute(logits, T, E, bias, o, forced);
        // No choice may hinge on float32 rounding: every selection boundary is clear by 1e-4.
        assert.ok(ref.minGap > 1e-4, `reference data: a routing choice is within ${ref.minGap} of a tie; change the seed`);
        sanity?.(ref, logits, bias);
        const m = [1, T * o.topk, T, o.topk];
        return [ref.experts.flat(), ref.weights.flat(), ref.chosen.flat(), [...m, 0, ...m.slice(1), ...m]];
      },
      tol: [TOL.exact, TOL.route, TOL.exact, TOL.exact],
      check(got, want, tols) {
        // The order of a row's experts is not part of the contract: compare (expert, weight) pairs by expert.
        const k = o.topk;
        const e = Array.from(got[0]!);
        const w = Array.from(got[1]!);
        const c = Array.from(got[2]!);
        const es: number[] = [];
        const ws: number[] = [];
        const cs: number[] = [];
        for (let t = 0; t < T; t++) {
          const idx = Array.from({ length: k }, (_, j) => t * k + j).sort((a, b) => e[a]! - e[b]!);
          for (const i of idx) {
            es.push(e[i]!);
            ws.push(w[i]!);
          }
          cs.push(...c.slice(t * k, (t + 1) * k).sort((a, b) => a - b));
        }
        compareAll(this.name, [es, ws, cs, got[3]!], want, tols);
      },
    };
  };
  const base: RouteOptions = { topk: 2, nGroup: 4, topkGroup: 2, scoring: 'sigmoid', normalize: true, scale: 2.5 };
  cases.push(
    routeCase('sigmoid + bias + groups (8 experts, 4 groups, keep 2, top 2), normalized, scale 2.5', 8, base, true, null, (ref, logits, bias) => {
      // The case must discriminate: without the bias, or without the groups, some row chooses differently.
      const noBias = refRoute(logits, T, 8, null, { ...base }, null);
      const noGroups = refRoute(logits, T, 8, bias, { ...base, nGroup: 1, topkGroup: 1 }, null);
      assert.notDeepEqual(noBias.chosen, ref.chosen, 'bias changes some choice');
      assert.notDeepEqual(noGroups.chosen, ref.chosen, 'group masking changes some choice');
    }),
  );
  cases.push(routeCase('sigmoid + bias + groups (16 experts, 4 groups of 4: top-2 group sums, keep 2, top 4)', 16, { ...base, topk: 4 }, true, null));
  cases.push(
    routeCase('softmax scores without bias, groups by max score, not normalized, scale 1', 8, { topk: 2, nGroup: 4, topkGroup: 2, scoring: 'softmax', normalize: false, scale: 1 }, false, null),
  );
  cases.push(routeCase('softmax, no groups, normalized, scale 1.5', 8, { topk: 3, nGroup: 1, topkGroup: 1, scoring: 'softmax', normalize: true, scale: 1.5 }, false, null));
  cases.push(routeCase('sigmoid + bias, no groups, top 3, not normalized', 8, { topk: 3, nGroup: 1, topkGroup: 1, scoring: 'sigmoid', normalize: false, scale: 1 }, true, null));
  const forcedRows = [[5, 1], [0, 7], [3, 2], [6, 4], [1, 0], [7, 3], [2, 6], [4, 5]];
  cases.push(
    routeCase('forced experts (weights from the model’s own scores, normalized), chosen = own choice', 8, base, true, forcedRows, (ref) => {
      assert.ok(
        ref.chosen.some((own, t) => forcedRows[t]!.some((e) => !own.includes(e))),
        'some forced expert is not the model’s own choice',
      );
    }),
  );
}

{
  const r = new Rng(1212);
  const T = 5;
  const k = 2;
  const experts = Int32Array.of(0, 2, 3, 2, 1, 2, 3, 0, 2, 1); // expert 2 serves 4 tokens; orders vary
  const weights = r.uniforms(T * k, 0.2, 1.5);

  const expertsCase = (label: string, d: number, inter: number, make: (o: number, i: number) => HostWeight, aq: ScaleFormat | null, tol: Tol): OpCase => {
    const E = 4;
    const gate = Array.from({ length: E }, () => make(inter, d));
    const upW = Array.from({ length: E }, () => make(inter, d));
    const down = Array.from({ length: E }, () => make(d, inter));
    const x = r.normals(T * d);
    return {
      name: `moeExperts: ${label}`,
      async run(b) {
        const up = (ws: HostWeight[]) => ws.map((w) => b.uploadWeight(w));
        const out = b.moeExperts(b.upload(x, [T, d]), b.upload(experts, [T, k]), b.upload(weights, [T, k]), up(gate), up(upW), up(down), aq);
        const [ro] = await readAll(b, out);
        return [ro!, out.shape];
      },
      reference() {
        // Loop over tokens and their experts by hand. Each linear's output is a float32 tensor in the
        // contract (the model chains ops), so the reference rounds gate, up and their swiglu to float32.
        const out = new Float64Array(T * d);
        const allowance = new Float64Array(T * d);
        for (let t = 0; t < T; t++) {
          const xt = x.subarray(t * d, (t + 1) * d);
          for (let j = 0; j < k; j++) {
            const e = experts[t * k + j]!;
            const g = Float32Array.from(refLinear(xt, 1, gate[e]!, aq));
            const u = Float32Array.from(refLinear(xt, 1, upW[e]!, aq));
            const h = Float32Array.from(g, (gv, i) => silu(gv) * u[i]!);
            const y = refLinear(h, 1, down[e]!, aq);
            for (let c = 0; c < d; c++) out[t * d + c]! += weights[t * k + j]! * y[c]!;
            if (aq !== null && down[e]!.format === 'fp8') {
              const flips = flipAllowance(h, aq, down[e]!);
              for (let c = 0; c < d; c++) allowance[t * d + c]! += Math.abs(weights[t * k + j]!) * flips[c]!;
            }
          }
        }
        return [out, [T, d], allowance];
      },
      tol: [tol, TOL.exact, TOL.exact],
      check(got, want) {
        assert.equal(got.length, 2, `${this.name}: 2 outputs`);
        const allowance = want[2]!;
        const o = got[0]!;
        const w = want[0]!;
        assert.equal(o.length, w.length);
        let flagged = 0;
        for (let i = 0; i < w.length; i++) {
          if (allowance[i]! > 0) flagged++;
          const lim = tol.abs + tol.rel * Math.abs(w[i]!) + allowance[i]!;
          assert.ok(Math.abs(o[i]! - w[i]!) <= lim, `${this.name}[${i}]: got ${o[i]}, want ${w[i]} (allowed ${lim})`);
        }
        assertClose(got[1]!, want[1]!, TOL.exact, `${this.name}: shape`);
        if (verbose) console.log(`[moeExperts] ${this.name}: ${flagged} outputs with a code-flip allowance (max ${Math.max(...Array.from(allowance))})`);
      },
    };
  };
  cases.push(
    expertsCase('bf16 weights (d 48, inter 32)', 48, 32, (o, i) => ({ format: 'bf16', outDim: o, inDim: i, data: randomBf16(r, o * i, -8, -2) }), null, TOL.expertsBf16),
  );
  cases.push(expertsCase("fp8 weights, act-quant 'ue8m0' (d 160, inter 136: partial blocks)", 160, 136, (o, i) => fp8Weight(r, o, i, 0.08, 'ue8m0'), 'ue8m0', TOL.expertsFp8));
  cases.push(expertsCase("fp8 weights, act-quant 'none'", 160, 136, (o, i) => fp8Weight(r, o, i, 0.08, 'none'), 'none', TOL.expertsFp8));
  cases.push(expertsCase('fp8 weights without act-quant (dequantized)', 160, 136, (o, i) => fp8Weight(r, o, i, 0.08, 'none'), null, TOL.expertsBf16));
}

// ================================================================================================
// Run every case on every backend
// ================================================================================================

for (const be of backends) {
  describe(`${be.name} backend ops vs naive references`, () => {
    let backend: Backend | undefined;
    const get = async (): Promise<Backend> => (backend ??= await be.make());
    for (const c of cases) {
      test(c.name, async () => {
        const b = await get();
        const got = await c.run(b);
        const want = c.reference();
        const tols = tolsOf(c, want.length);
        if (c.check) c.check(got, want, tols);
        else {
          const worst = compareAll(c.name, got, want, tols);
          if (verbose) console.log(`[${be.name}] ${c.name}: worst error ${(worst * 100).toFixed(3)}% of the allowance`);
        }
      });
    }
    for (const e of errorCases) {
      test(e.name, async () => {
        const b = await get();
        await assert.rejects(
          async () => e.run(b),
          (err: unknown) => {
            assert.ok(err instanceof Error, `threw a non-Error: ${String(err)}`);
            assert.match(err.message, e.error);
            return true;
          },
        );
      });
    }
  });
}
