/**
 * Finite-difference gradient check: L = Σ R ⊙ f(inputs) with fixed random R, the analytic gradient
 * from the tape against central differences (L summed in float64 from the float32 outputs).
 */
import assert from 'node:assert/strict';
import { CpuTrainBackend } from '../../src/autograd/cpu-backend.js';
import { Tape, Var } from '../../src/autograd/var.js';
import { Rng } from '../../src/generate/sampler.js';

export function randn(rng: Rng, n: number, std = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rng.next(), 1e-12);
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
  }
  return out;
}

export function input(rng: Rng, shape: number[], std = 1): Var {
  return new Var(randn(rng, shape.reduce((a, d) => a * d, 1), std), shape, true);
}

export interface GradCheckOptions {
  eps?: number;
  /** Largest allowed ‖analytic − numeric‖ / ‖numeric‖ per input. */
  tol?: number;
  seed?: number;
}

export function gradCheck(name: string, inputs: Var[], f: (g: Tape) => Var, opts: GradCheckOptions = {}): void {
  const eps = opts.eps ?? 1e-2;
  const tol = opts.tol ?? 1e-2;
  const backend = new CpuTrainBackend();
  const rng = new Rng(opts.seed ?? 7);
  const probe = f(new Tape(backend));
  const r = randn(rng, probe.size);
  const lossOf = (y: Var) => {
    let s = 0;
    for (let i = 0; i < y.size; i++) s += r[i]! * y.data[i]!;
    return s;
  };
  for (const v of inputs) v.grad = null;
  const tape = new Tape(backend);
  const y = f(tape);
  tape.backwardWith(y, r);
  for (const [which, v] of inputs.entries()) {
    const analytic = v.grad ?? new Float32Array(v.size);
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < v.size; i++) {
      const keep = v.data[i]!;
      v.data[i] = keep + eps;
      const up = lossOf(f(new Tape(backend)));
      v.data[i] = keep - eps;
      const down = lossOf(f(new Tape(backend)));
      v.data[i] = keep;
      const numeric = (up - down) / (2 * eps);
      diff += (analytic[i]! - numeric) ** 2;
      norm += numeric ** 2;
    }
    const rel = Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-12);
    assert.ok(norm > 0, `${name}: input ${which} has an all-zero numeric gradient (the check would be vacuous)`);
    assert.ok(rel < tol, `${name}: input ${which} gradient relative error ${rel.toExponential(2)} ≥ ${tol}`);
  }
}

/** Asserts max |a − b| ≤ rel · max(max |b|, 1). */
export function assertClose(a: Float32Array, b: Float32Array, rel: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    norm = Math.max(norm, Math.abs(b[i]!));
  }
  assert.ok(diff <= rel * Math.max(norm, 1), `${what}: max difference ${diff} (max |value| ${norm})`);
}
