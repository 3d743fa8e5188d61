/** Element-wise ops: add, mul, scale, ReLU and the SwiGLU gate silu(a) · b. */
import type { Tape, Var } from '../var.js';

function sameShape(op: string, a: Var, b: Var): void {
  if (a.size !== b.size) throw new RangeError(`${op}: sizes ${a.size} and ${b.size} differ`);
}

export function add(g: Tape, a: Var, b: Var): Var {
  sameShape('add', a, b);
  const out = new Float32Array(a.size);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i]! + b.data[i]!;
  const y = g.output(out, a.shape, a, b);
  g.record(y, (dy) => {
    for (const v of [a, b]) {
      if (!v.requiresGrad) continue;
      const gv = v.gradBuffer();
      for (let i = 0; i < dy.length; i++) gv[i] += dy[i]!;
    }
  });
  return y;
}

/** a · b element-wise; b may also be one value per row of a ([rows] or [rows, 1]): a row scale. */
export function mul(g: Tape, a: Var, b: Var): Var {
  const perRow = b.size !== a.size;
  if (perRow && b.size !== a.rows) throw new RangeError(`mul: ${b.size} values neither match ${a.size} elements nor ${a.rows} rows`);
  const cols = a.cols;
  const bAt = (i: number) => (perRow ? Math.floor(i / cols) : i);
  const out = new Float32Array(a.size);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i]! * b.data[bAt(i)]!;
  const y = g.output(out, a.shape, a, b);
  g.record(y, (dy) => {
    if (a.requiresGrad) {
      const ga = a.gradBuffer();
      for (let i = 0; i < dy.length; i++) ga[i] += dy[i]! * b.data[bAt(i)]!;
    }
    if (b.requiresGrad) {
      const gb = b.gradBuffer();
      for (let i = 0; i < dy.length; i++) gb[bAt(i)] += dy[i]! * a.data[i]!;
    }
  });
  return y;
}

export function scale(g: Tape, a: Var, c: number): Var {
  const out = new Float32Array(a.size);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i]! * c;
  const y = g.output(out, a.shape, a);
  g.record(y, (dy) => {
    const ga = a.gradBuffer();
    for (let i = 0; i < dy.length; i++) ga[i] += dy[i]! * c;
  });
  return y;
}

export function relu(g: Tape, a: Var): Var {
  const out = new Float32Array(a.size);
  for (let i = 0; i < out.length; i++) out[i] = a.data[i]! > 0 ? a.data[i]! : 0;
  const y = g.output(out, a.shape, a);
  g.record(y, (dy) => {
    const ga = a.gradBuffer();
    for (let i = 0; i < dy.length; i++) if (a.data[i]! > 0) ga[i] += dy[i]!;
  });
  return y;
}

/** silu(gate) · up, silu(x) = x · sigmoid(x): the SwiGLU MLP's hidden activation. */
export function swiglu(g: Tape, gate: Var, up: Var): Var {
  sameShape('swiglu', gate, up);
  const n = gate.size;
  const sig = new Float32Array(n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = gate.data[i]!;
    const s = 1 / (1 + Math.exp(-x));
    sig[i] = s;
    out[i] = x * s * up.data[i]!;
  }
  const y = g.output(out, gate.shape, gate, up);
  g.record(y, (dy) => {
    for (let i = 0; i < n; i++) {
      const x = gate.data[i]!;
      const s = sig[i]!;
      if (gate.requiresGrad) gate.gradBuffer()[i] += dy[i]! * up.data[i]! * s * (1 + x * (1 - s));
      if (up.requiresGrad) up.gradBuffer()[i] += dy[i]! * x * s;
    }
  });
  return y;
}
