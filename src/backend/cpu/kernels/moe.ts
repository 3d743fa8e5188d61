/** Mixture-of-experts routing and expert FFNs on the CPU (plain TypeScript), as the reference gate does it. */
import type { RouteOptions, ScaleFormat } from '../../backend.js';
import type { CpuWeight } from '../weight.js';
import { swiglu } from './elementwise.js';
import { linearFp8, linearPlain } from './linear.js';

const f = Math.fround;

/** Indices of the n largest values of v (ties: lower index first), in descending value order. */
function topIndices(v: Float64Array | Float32Array, n: number): number[] {
  const idx = Array.from(v.keys());
  idx.sort((a, b) => (v[b] > v[a] ? 1 : v[b] < v[a] ? -1 : a - b));
  return idx.slice(0, n);
}

export interface Route {
  experts: Int32Array;
  weights: Float32Array;
  chosen: Int32Array;
}

export function moeRoute(
  logits: Float32Array,
  rows: number,
  nExperts: number,
  bias: Float32Array | null,
  o: RouteOptions,
  forced: Int32Array | null,
): Route {
  const k = o.topk;
  const experts = new Int32Array(rows * k);
  const chosen = new Int32Array(rows * k);
  const weights = new Float32Array(rows * k);
  const scores = new Float32Array(nExperts);
  const biased = new Float32Array(nExperts);
  const perGroup = nExperts / o.nGroup;
  for (let t = 0; t < rows; t++) {
    const l = logits.subarray(t * nExperts, (t + 1) * nExperts);
    if (o.scoring === 'sigmoid') {
      for (let e = 0; e < nExperts; e++) scores[e] = 1 / (1 + Math.exp(-l[e]));
    } else {
      let max = -Infinity;
      for (let e = 0; e < nExperts; e++) max = Math.max(max, l[e]);
      let sum = 0;
      for (let e = 0; e < nExperts; e++) sum += Math.exp(l[e] - max);
      for (let e = 0; e < nExperts; e++) scores[e] = Math.exp(l[e] - max) / sum;
    }
    for (let e = 0; e < nExperts; e++) biased[e] = bias ? scores[e] + bias[e] : scores[e];
    if (o.nGroup > 1) {
      const groupScores = new Float64Array(o.nGroup);
      for (let g = 0; g < o.nGroup; g++) {
        const members = biased.subarray(g * perGroup, (g + 1) * perGroup);
        if (bias) {
          const [a, b] = topIndices(members, 2);
          groupScores[g] = f(members[a] + members[b]);
        } else {
          groupScores[g] = Math.max(...members);
        }
      }
      const keep = new Set(topIndices(groupScores, o.topkGroup));
      for (let e = 0; e < nExperts; e++) if (!keep.has(Math.floor(e / perGroup))) biased[e] = -Infinity;
    }
    const own = topIndices(biased, k).sort((a, b) => a - b);
    const use = forced ? Array.from(forced.subarray(t * k, (t + 1) * k)) : own;
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const e = use[j];
      if (!(e >= 0 && e < nExperts)) throw new RangeError(`moeRoute: forced expert ${e} is outside 0..${nExperts - 1}`);
      chosen[t * k + j] = own[j];
      experts[t * k + j] = e;
      weights[t * k + j] = scores[e];
      sum = f(sum + scores[e]);
    }
    for (let j = 0; j < k; j++) {
      let w = weights[t * k + j];
      if (o.normalize) w = f(w / sum);
      weights[t * k + j] = f(w * o.scale);
    }
  }
  return { experts, weights, chosen };
}

/** A linear layer kernel: out [rows, outDim] = x [rows, inDim] · Wᵀ. */
export type LinearKernel = (x: Float32Array, rows: number, w: CpuWeight, actQuant: ScaleFormat | null) => Float32Array;

/** The TypeScript linear kernel (the reference). */
export const linearTs: LinearKernel = (x, rows, w, actQuant) =>
  w.format === 'fp8' && actQuant !== null ? linearFp8(x, rows, w, actQuant) : linearPlain(x, rows, w);

/** Σ_j weights[t, j] · expert_{experts[t, j]}(x[t]), experts visited in index order as the reference does. */
export function moeExperts(
  x: Float32Array,
  rows: number,
  dim: number,
  experts: Int32Array,
  weights: Float32Array,
  k: number,
  gate: readonly CpuWeight[],
  up: readonly CpuWeight[],
  down: readonly CpuWeight[],
  actQuant: ScaleFormat | null,
  linear: LinearKernel = linearTs,
): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let e = 0; e < gate.length; e++) {
    const members: number[] = [];
    const memberWeights: number[] = [];
    for (let t = 0; t < rows; t++) {
      for (let j = 0; j < k; j++) {
        if (experts[t * k + j] === e) {
          members.push(t);
          memberWeights.push(weights[t * k + j]);
        }
      }
    }
    if (members.length === 0) continue;
    const xs = new Float32Array(members.length * dim);
    members.forEach((t, i) => xs.set(x.subarray(t * dim, (t + 1) * dim), i * dim));
    const h = swiglu(linear(xs, members.length, gate[e], actQuant), linear(xs, members.length, up[e], actQuant));
    const y = linear(h, members.length, down[e], actQuant);
    members.forEach((t, i) => {
      const w = memberWeights[i];
      for (let c = 0; c < dim; c++) out[t * dim + c] = f(out[t * dim + c] + f(y[i * dim + c] * w));
    });
  }
  return out;
}
