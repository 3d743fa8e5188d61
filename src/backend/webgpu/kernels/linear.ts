/**
 * linear on WebGPU: out [rows, N] = x [rows, K] · Wᵀ for W [N, K] in f32 or bf16 (two bf16 values
 * per u32 word). One workgroup of 64 invocations per (output, row): each sums a strided part of K,
 * then a tree reduction in workgroup memory. Its CPU twin is linearPlain (cpu/kernels/linear.ts).
 */
import type { GpuDevice } from '../device.js';

export const LINEAR_WGSL = /* wgsl */ `
struct Params { rows: u32, k: u32, n: u32, bf16: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;

fn weight(i: u32) -> f32 {
  if (p.bf16 == 1u) {
    let word = w[i >> 1u];
    let half = select(word & 0xffffu, word >> 16u, (i & 1u) == 1u);
    return bitcast<f32>(half << 16u);
  }
  return bitcast<f32>(w[i]);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let o = wg.x + wg.z * p.groupsX;
  let t = wg.y;
  var acc = 0.0;
  if (o < p.n) {
    for (var j = lid.x; j < p.k; j += 64u) {
      acc += x[t * p.k + j] * weight(o * p.k + j);
    }
  }
  partial[lid.x] = acc;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid.x < s) { partial[lid.x] += partial[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && o < p.n) { out[t * p.n + o] = partial[0]; }
}
`;

/** Runs linear: x and w are device buffers; returns the output buffer [rows, n] f32. */
export function linearGpu(gpu: GpuDevice, x: GPUBuffer, w: GPUBuffer, format: 'f32' | 'bf16', rows: number, k: number, n: number): GPUBuffer {
  const out = gpu.buffer(rows * n * 4);
  const maxX = gpu.limits.maxComputeWorkgroupsPerDimension;
  const groupsX = Math.min(n, maxX);
  const groupsZ = Math.ceil(n / groupsX);
  const params = gpu.uniforms(Uint32Array.of(rows, k, n, format === 'bf16' ? 1 : 0, groupsX));
  gpu.dispatch(LINEAR_WGSL, [x, w, out, params], [groupsX, rows, groupsZ]);
  return out;
}
