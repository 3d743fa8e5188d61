/**
 * Mixture of experts on WebGPU: routing (moeRouteGpu) and the expert FFNs (moeExpertsGpu).
 * CPU twins: moeRoute and moeExperts in cpu/kernels/moe.ts.
 *
 * moeRouteGpu runs one invocation per token row (E ≤ 256 experts, kept in private arrays): scores
 * (sigmoid or softmax, f32 on the device where the CPU computes them in float64 before rounding),
 * biased scores for choosing, group scores (sum of the top-2 biased scores with a bias, else the
 * max), the topkGroup best groups kept, then topk selections of the best remaining expert (ties:
 * lower index first, experts of dropped groups rank below all others, among themselves by index),
 * written in ascending expert order. Weights are the unbiased scores of the experts used (the forced
 * ones when given), summed in order, normalized when asked, times scale. Forced experts outside
 * 0..E-1 are not checked here (the CPU throws): they are written as given with weight 0, so callers
 * validate them first.
 *
 * moeExpertsGpu reads the routes (experts i32 [T, k]) back to the host to group token rows per
 * expert: that is one synchronizing read per call, so it is async. Per used expert, in expert
 * index order like the CPU: gather its member rows, gate and up linears, swiglu, down linear, and
 * out[t] += weight · y (f32) for each member, in member order. Weights stay on the device (members
 * name their slot t·k + j). A token routed twice to the same expert (possible with forced experts)
 * is accumulated in separate passes, so no two invocations of one pass add to the same value.
 */
import type { RouteOptions, ScaleFormat } from '../../backend.js';
import { GpuError, type GpuDevice } from '../device.js';
import { packParams, swigluGpu } from './elementwise.js';
import { linearGpu } from './linear.js';
import { linearFp8Gpu } from './linear-fp8.js';

const MAX_EXPERTS = 256;
const WG = 64;

export const MOE_ROUTE_WGSL = /* wgsl */ `
struct Params { rows: u32, e: u32, k: u32, nGroup: u32, topkGroup: u32, softmax: u32, normalize: u32, scale: f32, hasBias: u32, hasForced: u32 }
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read> forced: array<i32>;
@group(0) @binding(3) var<storage, read_write> experts: array<i32>;
@group(0) @binding(4) var<storage, read_write> weights: array<f32>;
@group(0) @binding(5) var<storage, read_write> chosen: array<i32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let t = gid.x;
  if (t >= p.rows) { return; }
  var scores: array<f32, ${MAX_EXPERTS}>;
  var biased: array<f32, ${MAX_EXPERTS}>;
  var allowed: array<u32, ${MAX_EXPERTS}>;
  var taken: array<u32, ${MAX_EXPERTS}>;
  var groupScore: array<f32, ${MAX_EXPERTS}>;
  var groupTaken: array<u32, ${MAX_EXPERTS}>;
  let off = t * p.e;

  if (p.softmax == 1u) {
    var mx = logits[off];
    for (var e = 1u; e < p.e; e++) { mx = max(mx, logits[off + e]); }
    var sum = 0.0;
    for (var e = 0u; e < p.e; e++) { sum += exp(logits[off + e] - mx); }
    for (var e = 0u; e < p.e; e++) { scores[e] = exp(logits[off + e] - mx) / sum; }
  } else {
    for (var e = 0u; e < p.e; e++) { scores[e] = 1.0 / (1.0 + exp(-logits[off + e])); }
  }
  for (var e = 0u; e < p.e; e++) {
    biased[e] = scores[e];
    if (p.hasBias == 1u) { biased[e] = scores[e] + bias[e]; }
    allowed[e] = 1u;
    taken[e] = 0u;
  }

  if (p.nGroup > 1u) {
    let per = p.e / p.nGroup;
    for (var g = 0u; g < p.nGroup; g++) {
      var m1 = biased[g * per];
      var m2 = 0.0;
      var have2 = false;
      for (var i = 1u; i < per; i++) {
        let v = biased[g * per + i];
        if (v > m1) { m2 = m1; m1 = v; have2 = true; }
        else if (!have2 || v > m2) { m2 = v; have2 = true; }
      }
      groupScore[g] = select(m1, m1 + m2, p.hasBias == 1u);
      groupTaken[g] = 0u;
    }
    for (var j = 0u; j < p.topkGroup; j++) {
      var best = 0u;
      var found = false;
      for (var g = 0u; g < p.nGroup; g++) {
        if (groupTaken[g] == 1u) { continue; }
        if (!found || groupScore[g] > groupScore[best]) { best = g; found = true; }
      }
      if (found) { groupTaken[best] = 1u; }
    }
    for (var e = 0u; e < p.e; e++) { allowed[e] = groupTaken[e / per]; }
  }

  for (var j = 0u; j < p.k; j++) {
    var best = 0u;
    var found = false;
    for (var e = 0u; e < p.e; e++) {
      if (taken[e] == 1u) { continue; }
      if (!found || (allowed[e] == 1u && (allowed[best] == 0u || biased[e] > biased[best]))) { best = e; found = true; }
    }
    if (found) { taken[best] = 1u; }
  }

  var j = 0u;
  for (var e = 0u; e < p.e; e++) {
    if (taken[e] == 1u && j < p.k) { chosen[t * p.k + j] = i32(e); j++; }
  }

  var sum = 0.0;
  for (var i = 0u; i < p.k; i++) {
    let slot = t * p.k + i;
    var ex = chosen[slot];
    if (p.hasForced == 1u) { ex = forced[slot]; }
    experts[slot] = ex;
    var s = 0.0;
    if (ex >= 0 && u32(ex) < p.e) { s = scores[u32(ex)]; }
    weights[slot] = s;
    sum = sum + s;
  }
  for (var i = 0u; i < p.k; i++) {
    let slot = t * p.k + i;
    var w = weights[slot];
    if (p.normalize == 1u) { w = w / sum; }
    weights[slot] = w * p.scale;
  }
}
`;

/**
 * Routing: logits f32 [rows, nExperts] (bias f32 [nExperts] or null, forced i32 [rows, topk] or
 * null) → experts i32, weights f32 and chosen i32, each [rows, topk].
 */
export function moeRouteGpu(
  gpu: GpuDevice,
  logits: GPUBuffer,
  rows: number,
  nExperts: number,
  bias: GPUBuffer | null,
  o: RouteOptions,
  forced: GPUBuffer | null,
): { experts: GPUBuffer; weights: GPUBuffer; chosen: GPUBuffer } {
  if (nExperts > MAX_EXPERTS) throw new GpuError(`moeRouteGpu: ${nExperts} experts exceed ${MAX_EXPERTS}`);
  if (o.nGroup < 1 || nExperts % o.nGroup !== 0) throw new GpuError(`moeRouteGpu: ${nExperts} experts do not split into ${o.nGroup} groups`);
  if (o.topk > nExperts) throw new GpuError(`moeRouteGpu: topk ${o.topk} exceeds ${nExperts} experts`);
  const k = o.topk;
  const experts = gpu.buffer(rows * k * 4);
  const weights = gpu.buffer(rows * k * 4);
  const chosen = gpu.buffer(rows * k * 4);
  if (rows === 0 || k === 0) return { experts, weights, chosen };
  const groups = Math.ceil(rows / WG);
  if (groups > gpu.limits.maxComputeWorkgroupsPerDimension) throw new GpuError(`moeRouteGpu: ${rows} rows are too many for one dispatch`);
  const params = gpu.uniforms(
    packParams([
      rows,
      nExperts,
      k,
      o.nGroup,
      o.topkGroup,
      o.scoring === 'softmax' ? 1 : 0,
      o.normalize ? 1 : 0,
      { f: o.scale },
      bias ? 1 : 0,
      forced ? 1 : 0,
    ]),
  );
  const dummy = gpu.buffer(4);
  gpu.dispatch(MOE_ROUTE_WGSL, [logits, bias ?? dummy, forced ?? dummy, experts, weights, chosen, params], [groups]);
  return { experts, weights, chosen };
}

export const MOE_GATHER_WGSL = /* wgsl */ `
struct Params { count: u32, dim: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> members: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (i >= p.count) { return; }
  let m = i / p.dim;
  out[i] = x[members[2u * m] * p.dim + i % p.dim];
}
`;

export const MOE_SCATTER_WGSL = /* wgsl */ `
struct Params { count: u32, dim: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> members: array<u32>;
@group(0) @binding(2) var<storage, read> weights: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (i >= p.count) { return; }
  let m = i / p.dim;
  let c = i % p.dim;
  let dst = members[2u * m] * p.dim + c;
  let prod = y[i] * weights[members[2u * m + 1u]];
  out[dst] = out[dst] + prod;
}
`;

/** One expert linear's weight [outDim, inDim] on the device. */
export type GpuExpertWeight =
  | { format: 'f32' | 'bf16'; outDim: number; inDim: number; data: GPUBuffer }
  | { format: 'fp8'; outDim: number; inDim: number; codes: GPUBuffer; scaleInv: GPUBuffer; block: [number, number] };

/** The linear of the backend contract: fp8 weights through linearFp8Gpu (actQuant applies), else linearGpu. */
export function expertLinearGpu(gpu: GpuDevice, x: GPUBuffer, rows: number, w: GpuExpertWeight, actQuant: ScaleFormat | null): GPUBuffer {
  if (w.format === 'fp8') return linearFp8Gpu(gpu, x, w.codes, w.scaleInv, w.block[0], w.block[1], rows, w.inDim, w.outDim, actQuant);
  return linearGpu(gpu, x, w.data, w.format, rows, w.inDim, w.outDim);
}

function grid(gpu: GpuDevice, count: number): [number, number] {
  const groups = Math.max(1, Math.ceil(count / WG));
  const groupsX = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  return [groupsX, Math.ceil(groups / groupsX)];
}

/**
 * Σ_j weights[t, j] · expert_{experts[t, j]}(x[t]) for x f32 [rows, dim], experts i32 [rows, k],
 * weights f32 [rows, k]; expert(x) = down(silu(gate x) · up x). Reads the routes back to the host
 * (see the file comment). Returns out f32 [rows, dim].
 */
export async function moeExpertsGpu(
  gpu: GpuDevice,
  x: GPUBuffer,
  rows: number,
  dim: number,
  experts: GPUBuffer,
  weights: GPUBuffer,
  k: number,
  gate: readonly GpuExpertWeight[],
  up: readonly GpuExpertWeight[],
  down: readonly GpuExpertWeight[],
  actQuant: ScaleFormat | null,
): Promise<GPUBuffer> {
  const out = gpu.buffer(rows * dim * 4);
  if (rows === 0 || k === 0 || dim === 0) return out;
  const route = new Int32Array(await gpu.read(experts, rows * k * 4));
  // members[e]: [row, slot] pairs in token order, as the CPU visits them.
  const members: number[][] = gate.map(() => []);
  for (let t = 0; t < rows; t++) {
    for (let j = 0; j < k; j++) {
      const e = route[t * k + j]!;
      if (!(e >= 0 && e < gate.length)) throw new RangeError(`moeExpertsGpu: expert ${e} is outside 0..${gate.length - 1}`);
      members[e]!.push(t, t * k + j);
    }
  }
  for (let e = 0; e < gate.length; e++) {
    const list = members[e]!;
    const m = list.length / 2;
    if (m === 0) continue;
    const g = gate[e]!;
    const u = up[e]!;
    const d = down[e]!;
    if (g.inDim !== dim || u.inDim !== dim || d.outDim !== dim || g.outDim !== u.outDim || d.inDim !== g.outDim) {
      throw new GpuError(`moeExpertsGpu: expert ${e} weights do not fit dim ${dim}`);
    }
    const pairs = Uint32Array.from(list);
    const pairBuf = gpu.buffer(pairs.byteLength, pairs);
    const xs = gpu.buffer(m * dim * 4);
    const gg = grid(gpu, m * dim);
    gpu.dispatch(MOE_GATHER_WGSL, [x, pairBuf, xs, gpu.uniforms(Uint32Array.of(m * dim, dim, gg[0]))], gg);
    const inter = g.outDim;
    const h = swigluGpu(gpu, expertLinearGpu(gpu, xs, m, g, actQuant), expertLinearGpu(gpu, xs, m, u, actQuant), m * inter);
    const y = expertLinearGpu(gpu, h, m, d, actQuant);
    // Accumulate; a row that occurs more than once goes to a later pass for each repeat.
    const seen = new Map<number, number>();
    const passes: number[][] = [];
    for (let i = 0; i < m; i++) {
      const t = list[2 * i]!;
      const n = seen.get(t) ?? 0;
      seen.set(t, n + 1);
      (passes[n] ??= []).push(i);
    }
    if (passes.length === 1) {
      gpu.dispatch(MOE_SCATTER_WGSL, [y, pairBuf, weights, out, gpu.uniforms(Uint32Array.of(m * dim, dim, gg[0]))], gg);
    } else {
      for (const pass of passes) {
        // The pass's members and their y rows, gathered into contiguous buffers.
        const sub = Uint32Array.from(pass.flatMap((i) => [i, 0]));
        const subBuf = gpu.buffer(sub.byteLength, sub);
        const gp = grid(gpu, pass.length * dim);
        const ys = gpu.buffer(pass.length * dim * 4);
        gpu.dispatch(MOE_GATHER_WGSL, [y, subBuf, ys, gpu.uniforms(Uint32Array.of(pass.length * dim, dim, gp[0]))], gp);
        const subPairs = Uint32Array.from(pass.flatMap((i) => [list[2 * i]!, list[2 * i + 1]!]));
        const subPairBuf = gpu.buffer(subPairs.byteLength, subPairs);
        gpu.dispatch(MOE_SCATTER_WGSL, [ys, subPairBuf, weights, out, gpu.uniforms(Uint32Array.of(pass.length * dim, dim, gp[0]))], gp);
      }
    }
  }
  return out;
}
