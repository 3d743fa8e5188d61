/**
 * Every op of the Backend interface against an independent, deliberately naive reference.
 *
 * Each reference below is written from the contracts in src/backend/backend.ts and the semantics
 * in shared/spec/DSA.md: float64, straightforward loops, no code shared with the kernels (the
 * e4m3 and bf16 decoders, the activation quantizer and the Sylvester matrix are re-derived here).
 * Inputs are small and random, from a seeded generator, so every run sees the same numbers.
 *
 * Each test file in test/backend/ops/ (one per op group: memory-elementwise, layers, quant-cache,
 * dsa, moe) is a list of cases, each { name, run(backend) → output arrays, reference() → expected
 * arrays, tol }, plus error cases { name, run(backend), error, gpu? }. This harness holds the shared
 * machinery (case types, tolerances, comparison, the seeded generator, the naive reference
 * numerics, in ./references.ts; the latent-row codecs are in ./latent-ref.ts) and runCases, which runs a file's cases
 * for every entry of `backends`: the CPU kernel sets (TypeScript, WASM on one and two threads) and
 * WebGPU (on Mesa's lavapipe where there is no GPU). `run` reads its outputs back (a GPU may only
 * raise an error when it is read).
 *
 * Error cases: every backend throws a ShapeError naming the op for bad shapes, lengths and dtypes
 * (checked on the host). Bad values inside index tensors (a row, a position, a forced expert) are
 * data on the device for a GPU backend, read only by kernels, which cannot throw: such a case
 * states the GPU kernel's documented behaviour (`gpu: { does: 'skips' | 'zeros' | 'nan', expect }`)
 * and the GPU backend is checked to do exactly that.
 *
 * Tolerances are per op (see TOL): |got − want| ≤ abs + rel·|want| element-wise, with ±∞ matched
 * exactly (NaN matches NaN). Set OPS_TEST_VERBOSE=1 to print, per case, the worst error as a
 * fraction of its allowance. A backend may replace a TOL entry (BackendUnderTest.tol), with the
 * reason: WebGPU's MLA attention does (float32 scores summed in order).
 */
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, HostArray, HostWeight, ScaleFormat, SeqPages, Tensor } from '../../../src/backend/backend.js';
import { CpuBackend } from '../../../src/backend/cpu.js';
import { WebGpuBackend } from '../../../src/backend/webgpu.js';
import { quantizeBlockWeight } from '../../../src/numerics/block-quant.js';
import { fr, refE4m3Encode } from './references.js';

// ================================================================================================
// Backends under test
// ================================================================================================

export interface BackendUnderTest {
  name: string;
  /**
   * 'cpu': every argument is host data, so every bad input throws. 'gpu': index data (rows,
   * positions, block tables, forced experts) lives on the device and is read only by kernels, which
   * cannot throw; an ErrorCase with a `gpu` expectation states what such a backend does instead.
   */
  kind: 'cpu' | 'gpu';
  make(): Backend | Promise<Backend>;
  /** Releases what make() acquired (a GPU device: Dawn keeps the process alive while one is open). */
  close?(b: Backend): void;
  /** Tolerances of this backend that differ from TOL, each with the reason next to it. */
  tol?: Partial<Record<keyof typeof TOL, Tol>>;
}

export const backends: BackendUnderTest[] = [
  { name: 'cpu-js', kind: 'cpu', make: () => new CpuBackend({ kernels: 'js' }) },
  // The WASM kernels, single-threaded and split over two threads (the pool's partial ranges).
  { name: 'cpu-wasm', kind: 'cpu', make: () => new CpuBackend({ kernels: 'wasm', threads: 1 }) },
  { name: 'cpu-wasm-2threads', kind: 'cpu', make: () => new CpuBackend({ kernels: 'wasm', threads: 2, minParallelWork: 0 }) },
  // WGSL kernels through Dawn; without a GPU on Mesa's lavapipe (Vulkan on the CPU), which CI
  // installs (.ci/run). See makeGpu for what happens when no adapter is there.
  {
    name: 'webgpu',
    kind: 'gpu',
    make: makeGpu,
    close: (b) => (b as WebGpuBackend).destroy(),
    tol: {
      // The WGSL MLA kernel sums each score's r + dr products in one float32 accumulator, in order
      // (the CPU kernels: float64, or several SIMD lanes). On lavapipe the r = 256 cases sit at up to
      // 96% of TOL.attention (bf16 latents, sparse), and a float32 emulation of that sequential sum
      // gives the same errors as the GPU (25–69% over six seeds of the dense f32 case), so this is
      // rounding, not a fault; twice the allowance leaves room for other GPUs' exp and fma. A wrong
      // entry, scale or block still moves outputs by ≥ 1e-3.
      attention: { abs: 4e-6, rel: 2e-5 },
    },
  },
];

/** Thrown by make() when a backend cannot run on this machine and that is allowed (not in CI). */
export class BackendUnavailable extends Error {}

/**
 * The WebGPU backend. Without an adapter (no GPU, no Mesa ≥ 25) its tests are skipped with the
 * reason, except in CI (process.env.CI set), where the adapter is required and they fail.
 */
async function makeGpu(): Promise<Backend> {
  try {
    return await WebGpuBackend.create();
  } catch (e) {
    if (process.env.CI) throw new Error(`webgpu backend: no adapter in CI (.ci/run installs Mesa's lavapipe): ${(e as Error).message}`);
    throw new BackendUnavailable((e as Error).message);
  }
}

// ================================================================================================
// Case structure and comparison
// ================================================================================================

export type Arr = ArrayLike<number>;

/** Element-wise allowance: |got − want| ≤ abs + rel·|want|. */
export interface Tol {
  abs: number;
  rel: number;
}

export interface OpCase {
  name: string;
  /** Runs the op(s) on a backend and reads the outputs back. */
  run(b: Backend): Promise<Arr[]>;
  /** The expected outputs, from the naive float64 reference. */
  reference(): Arr[];
  /** One tolerance for all outputs, or one per output. */
  tol: Tol | readonly Tol[];
  /** Replaces the element-wise comparison where the contract allows several answers (ties, order). */
  check?(got: Arr[], want: Arr[], tol: readonly Tol[]): void;
  /** Why this backend cannot take the case (the test is skipped with that reason), or null. */
  needs?(b: Backend): string | null;
}

export interface ErrorCase {
  name: string;
  /** Runs the op on bad input and reads the output back (errors may surface only at the read). */
  run(b: Backend): Promise<unknown>;
  /** The error message must match (every backend's errors name the op). */
  error: RegExp;
  /**
   * Absent: GPU backends validate on the host and throw this error too. Present: the bad value is
   * data on the device that only a kernel reads (an index, a position, a page), so a GPU backend
   * does not throw; it does what the kernel documents, and run's result (an array, or a list of
   * arrays) must equal `expect()`.
   */
  gpu?: GpuBehaviour;
  /** Why this backend cannot take the case (the test is skipped with that reason), or null. */
  needs?(b: Backend): string | null;
}

/**
 * What a GPU kernel does with an out-of-range index: 'skips' it (the row is not written, the
 * entry not attended), reads 'zeros' for it, or gives 'nan' where it is used.
 */
export interface GpuBehaviour {
  does: 'skips' | 'zeros' | 'nan';
  /** The outputs the kernel gives (NaN matches NaN). */
  expect(): Arr[];
  tol?: Tol | readonly Tol[];
}

/**
 * Per-op tolerances. The CPU kernels accumulate in float64 (or in float32 where the reference
 * kernel does) and store float32, so they sit at ~1e-7 relative; the allowances leave room for a GPU
 * kernel's float32 accumulation and fast transcendentals while still catching any real mistake
 * (a wrong index, scale or block moves results by ≥1e-3 here).
 */
export const TOL = {
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

export const verbose = process.env.OPS_TEST_VERBOSE === '1';

/** Compares element-wise; returns the worst error as a fraction of its allowance. */
export function assertClose(got: Arr, want: Arr, tol: Tol, what: string): number {
  assert.equal(got.length, want.length, `${what}: got ${got.length} values, want ${want.length}`);
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (g !== w && !(Number.isNaN(g) && Number.isNaN(w))) assert.fail(`${what}[${i}]: got ${g}, want ${w}`);
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

/** The tolerance a backend applies where a case asks for `t` (its own for that TOL entry, if any). */
function tolFor(be: BackendUnderTest, t: Tol): Tol {
  for (const [key, own] of Object.entries(be.tol ?? {})) if (t === TOL[key as keyof typeof TOL]) return own;
  return t;
}

export function tolsOf(c: OpCase, n: number): Tol[] {
  if (Array.isArray(c.tol)) {
    assert.equal(c.tol.length, n, `${c.name}: ${c.tol.length} tolerances for ${n} outputs`);
    return [...(c.tol as readonly Tol[])];
  }
  return Array.from({ length: n }, () => c.tol as Tol);
}

export function compareAll(name: string, got: Arr[], want: Arr[], tols: readonly Tol[]): number {
  assert.equal(got.length, want.length, `${name}: ${got.length} outputs, want ${want.length}`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, assertClose(got[i], want[i], tols[i], `${name} output ${i}`));
  return worst;
}

// ================================================================================================
// Seeded random numbers
// ================================================================================================

/** mulberry32: a tiny deterministic PRNG. */
export class Rng {
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

// Naive reference numerics: ./references.ts (re-exported here).
export * from './references.js';

// ---- test-data helpers ----

/** Random non-NaN e4m3 codes of values ~N(0, std²) (saturated at ±448). */
export function randomCodes(r: Rng, n: number, std: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = refE4m3Encode(Math.max(-448, Math.min(448, fr(std * r.normal()))));
  return out;
}

/** Random bf16 bit patterns, both signs, magnitudes in [2^lo, 2^hi). */
export function randomBf16(r: Rng, n: number, lo = -7, hi = 3): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = (r.int(2) << 15) | ((127 + lo + r.int(hi - lo)) << 7) | r.int(128);
  return out;
}

export function fp8Weight(r: Rng, outDim: number, inDim: number, std: number, fmt: ScaleFormat): HostWeight {
  const { w8, scaleInv } = quantizeBlockWeight(r.normals(outDim * inDim, std), outDim, inDim, fmt, 128);
  return { format: 'fp8', outDim, inDim, data: w8, scaleInv, block: [128, 128] };
}

export function pagesOf(b: Backend, table: readonly number[], pageSize: number): SeqPages {
  return { blockTable: b.upload(Int32Array.from(table), [table.length]), pageSize };
}

export async function readAll(b: Backend, ...ts: Tensor[]): Promise<HostArray[]> {
  const out: HostArray[] = [];
  for (const t of ts) out.push(await b.read(t));
  return out;
}

export const DTYPE_CODE = { f32: 0, i32: 1, u8: 2, bf16: 3 } as const;
export function arrayKind(a: HostArray): number {
  return a instanceof Float32Array ? 0 : a instanceof Int32Array ? 1 : a instanceof Uint8Array ? 2 : a instanceof Uint16Array ? 3 : -1;
}
/** A tensor's metadata as numbers: [dtype code, size, ...shape]. */
export function meta(t: Tensor): number[] {
  return [DTYPE_CODE[t.dtype], t.size, ...t.shape];
}

// ================================================================================================
// Run every case on every backend
// ================================================================================================

/** Registers one describe per backend in `backends`, with a test per case and per error case. */
export function runCases(group: string, cases: readonly OpCase[], errorCases: readonly ErrorCase[]): void {
  for (const be of backends) {
    describe(`${be.name} backend ops vs naive references: ${group}`, () => {
      let made: Promise<Backend> | undefined;
      let backend: Backend | undefined;
      /** The backend, made once per describe; skips the test when it cannot run here (see makeGpu). */
      const get = async (t: TestContext): Promise<Backend | null> => {
        made ??= Promise.resolve(be.make());
        try {
          return (backend = await made);
        } catch (e) {
          if (!(e instanceof BackendUnavailable)) throw e;
          t.skip(`${be.name} is not available here: ${e.message}`);
          return null;
        }
      };
      after(() => {
        if (backend) be.close?.(backend);
      });
      for (const c of cases) {
        test(c.name, async (t) => {
          const b = await get(t);
          if (!b) return;
          const why = c.needs?.(b);
          if (why) return void t.skip(why);
          const got = await c.run(b);
          const want = c.reference();
          const tols = tolsOf(c, want.length).map((t) => tolFor(be, t));
          if (c.check) c.check(got, want, tols);
          else {
            const worst = compareAll(c.name, got, want, tols);
            if (verbose) console.log(`[${be.name}] ${c.name}: worst error ${(worst * 100).toFixed(3)}% of the allowance`);
          }
        });
      }
      for (const e of errorCases) {
        const gpu = be.kind === 'gpu' ? e.gpu : undefined;
        test(gpu ? `${e.name} (on the GPU: ${gpu.does})` : e.name, async (t) => {
          const b = await get(t);
          if (!b) return;
          const why = e.needs?.(b);
          if (why) return void t.skip(why);
          if (gpu) {
            const res = await e.run(b);
            const got = (Array.isArray(res) ? res : [res]) as Arr[];
            const want = gpu.expect();
            const tol = gpu.tol ?? TOL.exact;
            const tols = Array.isArray(tol) ? (tol as Tol[]) : want.map(() => tol as Tol);
            compareAll(e.name, got, want, tols.map((t) => tolFor(be, t)));
            return;
          }
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
}
