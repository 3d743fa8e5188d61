/**
 * Mixture of experts on WebGPU: routing (moeRouteGpu) and the expert weight type the expert FFNs
 * (moeExpertsGroupedGpu in moe-grouped.ts) take. CPU twin: moeRoute in cpu/kernels/moe.ts.
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
 */
import type { RouteOptions } from '../../backend.js';
import { GpuError, type GpuDevice } from '../device.js';
import { packParams } from './elementwise.js';

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

/** One expert linear's weight [outDim, inDim] on the device. */
export type GpuExpertWeight =
  | { format: 'f32' | 'bf16'; outDim: number; inDim: number; data: GPUBuffer }
  | { format: 'fp8'; outDim: number; inDim: number; codes: GPUBuffer; scaleInv: GPUBuffer; block: [number, number] };
