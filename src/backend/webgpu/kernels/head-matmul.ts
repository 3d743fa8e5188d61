/**
 * headMatmul on WebGPU: per head, x [T, H, n] · w[h] → out [T, H, m], with w f32 [H, n, m], or
 * [H, m, n] when transposeW (out[t, h, j] = x[t, h] · w[h, j]). One invocation per output element
 * over a flat index (2-D dispatch, so any T·H·m fits). Its CPU twin is headMatmul
 * (cpu/kernels/linear.ts). With transposeW and n a multiple of 4 the rows are read as vec4.
 */
import type { GpuDevice } from '../device.js';

export const HEAD_MATMUL_WGSL = /* wgsl */ `
struct Params { rows: u32, heads: u32, n: u32, m: u32, transposeW: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 64u + lid.x;
  if (i >= p.rows * p.heads * p.m) { return; }
  let j = i % p.m;
  let th = i / p.m;
  let h = th % p.heads;
  let xOff = th * p.n;
  var acc = 0.0;
  if (p.transposeW == 1u) {
    let wOff = (h * p.m + j) * p.n;
    for (var k = 0u; k < p.n; k++) { acc += x[xOff + k] * w[wOff + k]; }
  } else {
    let wOff = h * p.n * p.m + j;
    for (var k = 0u; k < p.n; k++) { acc += x[xOff + k] * w[wOff + k * p.m]; }
  }
  out[i] = acc;
}
`;

/** The transposed form when n is a multiple of 4: rows of x and w read as vec4 (a quarter of the loads). */
export const HEAD_MATMUL_T4_WGSL = /* wgsl */ `
struct Params { rows: u32, heads: u32, n: u32, m: u32, transposeW: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> w: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 64u + lid.x;
  if (i >= p.rows * p.heads * p.m) { return; }
  let j = i % p.m;
  let th = i / p.m;
  let h = th % p.heads;
  let n4 = p.n / 4u;
  let xOff = th * n4;
  let wOff = (h * p.m + j) * n4;
  var acc = vec4f(0.0);
  for (var k = 0u; k < n4; k++) { acc += x[xOff + k] * w[wOff + k]; }
  out[i] = (acc.x + acc.y) + (acc.z + acc.w);
}
`;

/**
 * Runs headMatmul: x [rows, heads, n] and w (f32 [heads, n, m], or [heads, m, n] when transposeW)
 * are device buffers; returns the output buffer f32 [rows, heads, m].
 */
export function headMatmulGpu(
  gpu: GpuDevice,
  x: GPUBuffer,
  w: GPUBuffer,
  rows: number,
  heads: number,
  n: number,
  m: number,
  transposeW: boolean,
): GPUBuffer {
  const total = rows * heads * m;
  const out = gpu.buffer(total * 4);
  if (total === 0) return out;
  const groups = Math.ceil(total / 64);
  const groupsX = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  const groupsY = Math.ceil(groups / groupsX);
  const params = gpu.uniforms(Uint32Array.of(rows, heads, n, m, transposeW ? 1 : 0, groupsX));
  const code = transposeW && n % 4 === 0 ? HEAD_MATMUL_T4_WGSL : HEAD_MATMUL_WGSL;
  gpu.dispatch(code, [x, w, out, params], [groupsX, groupsY]);
  return out;
}
