/** RMSNorm (x · rsqrt(mean(x²) + eps) · w) and LayerNorm (with weight and bias) over each row. */
import type { Tape, Var } from '../var.js';

export function rmsNorm(g: Tape, x: Var, w: Var, eps: number): Var {
  const d = x.cols;
  if (w.size !== d) throw new RangeError(`rmsNorm: weight has ${w.size} values, rows have ${d}`);
  const rows = x.rows;
  const inv = new Float64Array(rows);
  const out = new Float32Array(x.size);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x.data[r * d + j]! ** 2;
    const s = 1 / Math.sqrt(ss / d + eps);
    inv[r] = s;
    for (let j = 0; j < d; j++) out[r * d + j] = x.data[r * d + j]! * s * w.data[j]!;
  }
  const y = g.output(out, x.shape, x, w);
  g.record(y, (dy) => {
    for (let r = 0; r < rows; r++) {
      const s = inv[r]!;
      const o = r * d;
      if (w.requiresGrad) {
        const gw = w.gradBuffer();
        for (let j = 0; j < d; j++) gw[j] += dy[o + j]! * x.data[o + j]! * s;
      }
      if (x.requiresGrad) {
        // dx = s·(w·dy) − s³/d · x · Σ (w·dy·x)
        let dot = 0;
        for (let j = 0; j < d; j++) dot += dy[o + j]! * w.data[j]! * x.data[o + j]!;
        const c = (s * s * s * dot) / d;
        const gx = x.gradBuffer();
        for (let j = 0; j < d; j++) gx[o + j] += s * w.data[j]! * dy[o + j]! - c * x.data[o + j]!;
      }
    }
  });
  return y;
}

export function layerNorm(g: Tape, x: Var, w: Var, b: Var, eps: number): Var {
  const d = x.cols;
  const rows = x.rows;
  const xhat = new Float32Array(x.size);
  const inv = new Float64Array(rows);
  const out = new Float32Array(x.size);
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let mean = 0;
    for (let j = 0; j < d; j++) mean += x.data[o + j]!;
    mean /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x.data[o + j]! - mean) ** 2;
    const s = 1 / Math.sqrt(v / d + eps);
    inv[r] = s;
    for (let j = 0; j < d; j++) {
      const h = (x.data[o + j]! - mean) * s;
      xhat[o + j] = h;
      out[o + j] = h * w.data[j]! + b.data[j]!;
    }
  }
  const y = g.output(out, x.shape, x, w, b);
  g.record(y, (dy) => {
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      if (w.requiresGrad) for (let j = 0; j < d; j++) w.gradBuffer()[j] += dy[o + j]! * xhat[o + j]!;
      if (b.requiresGrad) for (let j = 0; j < d; j++) b.gradBuffer()[j] += dy[o + j]!;
      if (!x.requiresGrad) continue;
      // dx = s · (g − mean(g) − x̂ · mean(g · x̂)), g = dy · w
      let m1 = 0;
      let m2 = 0;
      for (let j = 0; j < d; j++) {
        const gj = dy[o + j]! * w.data[j]!;
        m1 += gj;
        m2 += gj * xhat[o + j]!;
      }
      m1 /= d;
      m2 /= d;
      const gx = x.gradBuffer();
      for (let j = 0; j < d; j++) gx[o + j] += inv[r]! * (dy[o + j]! * w.data[j]! - m1 - xhat[o + j]! * m2);
    }
  });
  return y;
}
