/**
 * The expert FFNs of a mixture of experts on WebGPU without a host read-back: moeExpertsGroupedGpu
 * is synchronous (every dispatch is issued from the host, no route is read back), where
 * a read-back of the routes to group the rows on the host. CPU twin: moeExperts in
 * cpu/kernels/moe.ts.
 *
 * 1. Grouping: one invocation per expert e scans the T·k routes in (row, slot) order and writes
 *    count[e] and its member list of (row t, slot t·k + j) pairs, in row order then slot order (the
 *    order the CPU visits them; deterministic). Experts outside 0..E-1 match no list, so such
 *    routes are dropped (the CPU throws): callers validate forced experts first.
 * 2. For every expert e in index order (a host loop over all E experts, known statically): a
 *    gather copies the member rows of x into a scratch [cap, dim] (cap = T·k, the most members an
 *    expert can have when forced routes name it in several slots of a token); the gate and up
 *    linears, swiglu and the down linear run over cap rows, the linears skipping rows ≥ count[e]
 *    (whole workgroups return, the count read from a storage buffer); then a scatter adds
 *    weights[slot] · y[i] into out[row] for the members i < count[e]. A token's repeated members
 *    are contiguous in the list: the invocation of the first one adds them all, in slot order, so
 *    no two invocations add to one value and the sums are in the CPU's order.
 *
 * An unused expert still costs its dispatches, each returning at once (count 0).
 */
import type { ScaleFormat } from '../../backend.js';
import { GpuError, type GpuDevice } from '../device.js';
import { swigluGpu } from './elementwise.js';
import { linearCountedGpu } from './linear.js';
import { linearFp8CountedGpu } from './linear-fp8.js';
import type { GpuExpertWeight } from './moe.js';

const WG = 64;

export const MOE_GROUP_WGSL = /* wgsl */ `
struct Params { rows: u32, k: u32, e: u32, cap: u32 }
@group(0) @binding(0) var<storage, read> experts: array<i32>;
@group(0) @binding(1) var<storage, read_write> members: array<u32>;
@group(0) @binding(2) var<storage, read_write> count: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let e = gid.x;
  if (e >= p.e) { return; }
  let base = e * p.cap;
  var c = 0u;
  for (var t = 0u; t < p.rows; t++) {
    for (var j = 0u; j < p.k; j++) {
      let slot = t * p.k + j;
      if (experts[slot] == i32(e)) {
        members[2u * (base + c)] = t;
        members[2u * (base + c) + 1u] = slot;
        c++;
      }
    }
  }
  count[e] = c;
}
`;

export const MOE_GROUPED_GATHER_WGSL = /* wgsl */ `
struct Params { cap: u32, dim: u32, groupsX: u32, e: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> members: array<u32>;
@group(0) @binding(2) var<storage, read> count: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  let m = i / p.dim;
  if (m >= count[p.e]) { return; }
  let row = members[2u * (p.e * p.cap + m)];
  out[i] = x[row * p.dim + i % p.dim];
}
`;

export const MOE_GROUPED_SCATTER_WGSL = /* wgsl */ `
struct Params { cap: u32, dim: u32, groupsX: u32, e: u32 }
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> members: array<u32>;
@group(0) @binding(2) var<storage, read> count: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  let m = i / p.dim;
  let n = count[p.e];
  if (m >= n) { return; }
  let base = p.e * p.cap;
  let row = members[2u * (base + m)];
  // A repeat of the previous member's row is added by the invocation of the row's first member.
  if (m > 0u && members[2u * (base + m - 1u)] == row) { return; }
  let c = i % p.dim;
  let dst = row * p.dim + c;
  var acc = out[dst];
  for (var mm = m; mm < n; mm++) {
    if (members[2u * (base + mm)] != row) { break; }
    let prod = y[mm * p.dim + c] * weights[members[2u * (base + mm) + 1u]];
    acc = acc + prod;
  }
  out[dst] = acc;
}
`;

/**
 * out [rows, n] = x [rows, k] · Wᵀ for an expert weight, rows ≥ count[e] skipped (left as they were
 * in out). fp8 weights with actQuant quantize all rows of x first (per row, so the rows used are
 * quantized as linearFp8Gpu does).
 */
function countedLinearGpu(
  gpu: GpuDevice,
  x: GPUBuffer,
  out: GPUBuffer,
  count: GPUBuffer,
  e: number,
  rows: number,
  w: GpuExpertWeight,
  actQuant: ScaleFormat | null,
): void {
  if (w.format !== 'fp8') {
    linearCountedGpu(gpu, x, w.data, w.format, rows, w.inDim, w.outDim, out, count, e);
  } else {
    linearFp8CountedGpu(gpu, x, w.codes, w.scaleInv, w.block[0], w.block[1], rows, w.inDim, w.outDim, actQuant, out, count, e);
  }
}

/**
 * Σ_j weights[t, j] · expert_{experts[t, j]}(x[t]) for x f32 [rows, dim], experts i32 [rows, k],
 * weights f32 [rows, k]; expert(x) = down(silu(gate x) · up x). Grouped on
 * the device with no read-back (see the file comment). Returns out f32 [rows, dim].
 */
export function moeExpertsGroupedGpu(
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
): GPUBuffer {
  const out = gpu.buffer(rows * dim * 4);
  const nExperts = gate.length;
  if (rows === 0 || k === 0 || dim === 0 || nExperts === 0) return out;
  if (up.length !== nExperts || down.length !== nExperts) throw new GpuError(`moeExpertsGroupedGpu: ${nExperts} gate, ${up.length} up and ${down.length} down weights`);
  let inter = 0;
  for (let e = 0; e < nExperts; e++) {
    const g = gate[e]!;
    const u = up[e]!;
    const d = down[e]!;
    if (g.inDim !== dim || u.inDim !== dim || d.outDim !== dim || g.outDim !== u.outDim || d.inDim !== g.outDim) {
      throw new GpuError(`moeExpertsGroupedGpu: expert ${e} weights do not fit dim ${dim}`);
    }
    inter = Math.max(inter, g.outDim);
  }
  const cap = rows * k;
  if (cap > gpu.limits.maxComputeWorkgroupsPerDimension) throw new GpuError(`moeExpertsGroupedGpu: ${rows} rows × top ${k} are too many for one dispatch`);

  const members = gpu.buffer(nExperts * cap * 2 * 4);
  const count = gpu.buffer(nExperts * 4);
  gpu.dispatch(MOE_GROUP_WGSL, [experts, members, count, gpu.uniforms(Uint32Array.of(rows, k, nExperts, cap))], [Math.ceil(nExperts / WG)]);

  // Scratch reused by every expert (dispatches run in submission order).
  const xs = gpu.buffer(cap * dim * 4);
  const g1 = gpu.buffer(cap * inter * 4);
  const u1 = gpu.buffer(cap * inter * 4);
  const y = gpu.buffer(cap * dim * 4);
  const gg = gpu.grid(cap * dim, WG);
  for (let e = 0; e < nExperts; e++) {
    const params = gpu.uniforms(Uint32Array.of(cap, dim, gg[0], e));
    gpu.dispatch(MOE_GROUPED_GATHER_WGSL, [x, members, count, xs, params], gg);
    countedLinearGpu(gpu, xs, g1, count, e, cap, gate[e]!, actQuant);
    countedLinearGpu(gpu, xs, u1, count, e, cap, up[e]!, actQuant);
    const h = swigluGpu(gpu, g1, u1, cap * gate[e]!.outDim);
    countedLinearGpu(gpu, h, y, count, e, cap, down[e]!, actQuant);
    gpu.dispatch(MOE_GROUPED_SCATTER_WGSL, [y, members, count, weights, out, params], gg);
  }
  return out;
}
