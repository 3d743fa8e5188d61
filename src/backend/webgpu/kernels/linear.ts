/**
 * linear on WebGPU: out [rows, N] = x [rows, K] · Wᵀ for W [N, K] in f32 or bf16 (two bf16 values
 * per u32 word). One workgroup of 64 invocations per (output, row): each sums a strided part of K,
 * then a tree reduction in workgroup memory. Its CPU twin is linearPlain (cpu/kernels/linear.ts).
 *
 * Rows t ≥ count[p.e] are skipped (whole workgroups return, out left as it was): linearGpu binds a
 * one-word count holding rows; the grouped MoE (moe-grouped.ts) binds its per-expert counts.
 */
import type { GpuDevice } from '../device.js';
import { BF16_UNPACK_WGSL } from './wgsl.js';

export const LINEAR_WGSL = /* wgsl */ `
struct Params { rows: u32, k: u32, n: u32, bf16: u32, groupsX: u32, e: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> count: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;
${BF16_UNPACK_WGSL}
fn weight(i: u32) -> f32 {
  if (p.bf16 == 1u) { return bf16Unpack(w[i >> 1u], i); }
  return bitcast<f32>(w[i]);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = wg.y;
  if (t >= count[p.e]) { return; }
  let o = wg.x + wg.z * p.groupsX;
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

/**
 * Runs linear into out [rows, n] f32 over the first count[e] rows only (count a u32 storage buffer):
 * rows ≥ count[e] are left as they were in out.
 */
export function linearCountedGpu(
  gpu: GpuDevice,
  x: GPUBuffer,
  w: GPUBuffer,
  format: 'f32' | 'bf16',
  rows: number,
  k: number,
  n: number,
  out: GPUBuffer,
  count: GPUBuffer,
  e: number,
): void {
  if (rows === 0 || n === 0) return;
  const groupsX = Math.min(n, gpu.limits.maxComputeWorkgroupsPerDimension);
  const groupsZ = Math.ceil(n / groupsX);
  const params = gpu.uniforms(Uint32Array.of(rows, k, n, format === 'bf16' ? 1 : 0, groupsX, e));
  gpu.dispatch(LINEAR_WGSL, [x, w, out, count, params], [groupsX, rows, groupsZ]);
}

/** Runs linear: x and w are device buffers; returns the output buffer [rows, n] f32. */
export function linearGpu(gpu: GpuDevice, x: GPUBuffer, w: GPUBuffer, format: 'f32' | 'bf16', rows: number, k: number, n: number): GPUBuffer {
  const out = gpu.buffer(rows * n * 4);
  if (rows === 0 || n === 0) return out;
  linearCountedGpu(gpu, x, w, format, rows, k, n, out, gpu.buffer(4, Uint32Array.of(rows)), 0);
  return out;
}
