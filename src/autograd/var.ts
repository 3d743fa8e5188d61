/**
 * Reverse-mode automatic differentiation: a Var is a float32 tensor that may carry a gradient; a
 * Tape records, for every operation whose inputs need gradients, a closure that pushes the output's
 * gradient back to those inputs. `backward(loss)` runs the closures in reverse order.
 *
 * An operation whose inputs need no gradient records nothing (frozen weights cost no backward work);
 * `detach(v)` cuts the graph: the same values, no path back to v's inputs.
 */
import type { TrainBackend } from './backend.js';

export class Var {
  /** The gradient of the loss w.r.t. this tensor, allocated on first accumulation. */
  grad: Float32Array | null = null;

  constructor(
    readonly data: Float32Array,
    readonly shape: readonly number[],
    readonly requiresGrad: boolean,
  ) {
    const n = shape.reduce((a, d) => a * d, 1);
    if (n !== data.length) throw new RangeError(`Var: shape [${shape.join(', ')}] holds ${n} values, data has ${data.length}`);
  }

  get size(): number {
    return this.data.length;
  }

  /** The gradient buffer, created zeroed when absent. */
  gradBuffer(): Float32Array {
    this.grad ??= new Float32Array(this.data.length);
    return this.grad;
  }

  /** Last dimension (row width). */
  get cols(): number {
    return this.shape[this.shape.length - 1]!;
  }

  /** Number of rows (product of all dimensions but the last). */
  get rows(): number {
    return this.data.length / this.cols;
  }
}

/** A trainable parameter: a named Var that needs gradients. */
export function param(data: Float32Array, shape: readonly number[]): Var {
  return new Var(data, shape, true);
}

/** A constant (no gradient). */
export function constant(data: Float32Array, shape: readonly number[]): Var {
  return new Var(data, shape, false);
}

/** The same values without a path back: gradients stop here. */
export function detach(v: Var): Var {
  return new Var(v.data, v.shape, false);
}

export class Tape {
  private readonly steps: Array<() => void> = [];

  constructor(readonly backend: TrainBackend) {}

  /** Whether an output computed from `inputs` needs a backward step. */
  needs(...inputs: Array<Var | null | undefined>): boolean {
    return inputs.some((v) => v?.requiresGrad === true);
  }

  /** The output Var of an operation: it needs a gradient when any input does. */
  output(data: Float32Array, shape: readonly number[], ...inputs: Array<Var | null | undefined>): Var {
    return new Var(data, shape, this.needs(...inputs));
  }

  /** Records a backward step (run only when `out` received a gradient). */
  record(out: Var, step: (grad: Float32Array) => void): void {
    if (!out.requiresGrad) return;
    this.steps.push(() => {
      if (out.grad) step(out.grad);
    });
  }

  /** Seeds d loss / d loss = 1 (scaled by `seed`) and runs every recorded step in reverse. */
  backward(loss: Var, seed = 1): void {
    if (loss.size !== 1) throw new RangeError(`backward: the loss must be a scalar, got shape [${loss.shape.join(', ')}]`);
    if (!loss.requiresGrad) return;
    loss.gradBuffer()[0] += seed;
    for (let i = this.steps.length - 1; i >= 0; i--) this.steps[i]!();
    this.steps.length = 0;
  }

  /** Runs every recorded step in reverse after adding `grad` (same size as v) to v's gradient. */
  backwardWith(v: Var, grad: Float32Array): void {
    if (grad.length !== v.size) throw new RangeError(`backwardWith: ${grad.length} gradient values for ${v.size}`);
    if (!v.requiresGrad) return;
    const gv = v.gradBuffer();
    for (let i = 0; i < grad.length; i++) gv[i] += grad[i]!;
    for (let i = this.steps.length - 1; i >= 0; i--) this.steps[i]!();
    this.steps.length = 0;
  }

  get length(): number {
    return this.steps.length;
  }
}
