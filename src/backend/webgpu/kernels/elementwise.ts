/**
 * Element-wise and normalization kernels on WebGPU: add, mul, scale, swiglu (one invocation per
 * value) and rmsNorm / layerNorm over the last dim (one workgroup of 256 per row, a tree
 * reduction in workgroup memory). CPU twins: cpu.ts (add/mul/scale) and cpu/kernels/elementwise.ts.
 */
import type { GpuDevice } from '../device.js';

const WG = 256;

export const ELEMENTWISE_WGSL = /* wgsl */ `
struct Params { n: u32, op: u32, c: f32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (i >= p.n) { return; }
  let x = a[i];
  switch (p.op) {
    case 0u: { out[i] = x + b[i]; }
    case 1u: { out[i] = x * b[i]; }
    case 2u: { out[i] = x * p.c; }
    default: { out[i] = (x / (1.0 + exp(-x))) * b[i]; }
  }
}
`;

export const NORM_WGSL = /* wgsl */ `
struct Params { rows: u32, n: u32, eps: f32, layer: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> partial: array<f32, ${WG}>;

fn reduce(v: f32, t: u32) -> f32 {
  partial[t] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) { partial[t] += partial[t + s]; }
    workgroupBarrier();
  }
  let r = partial[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let off = wg.x * p.n;
  let t = lid.x;
  let nf = f32(p.n);
  if (p.layer == 0u) {
    var ss = 0.0;
    for (var j = t; j < p.n; j += ${WG}u) { let v = x[off + j]; ss += v * v; }
    let inv = 1.0 / sqrt(reduce(ss, t) / nf + p.eps);
    for (var j = t; j < p.n; j += ${WG}u) { out[off + j] = w[j] * (x[off + j] * inv); }
  } else {
    var sum = 0.0;
    for (var j = t; j < p.n; j += ${WG}u) { sum += x[off + j]; }
    let mean = reduce(sum, t) / nf;
    var vs = 0.0;
    for (var j = t; j < p.n; j += ${WG}u) { let d = x[off + j] - mean; vs += d * d; }
    let inv = 1.0 / sqrt(reduce(vs, t) / nf + p.eps);
    for (var j = t; j < p.n; j += ${WG}u) { out[off + j] = (x[off + j] - mean) * inv * w[j] + bias[j]; }
  }
}
`;

/** u32 and f32 parameters in one uniform block (numbers: u32; {f: x}: f32). */
export function packParams(values: readonly (number | { f: number })[]): Uint32Array {
  const u = new Uint32Array(values.length);
  const f = new Float32Array(u.buffer);
  values.forEach((v, i) => {
    if (typeof v === 'number') u[i] = v >>> 0;
    else f[i] = v.f;
  });
  return u;
}

function elementwise(gpu: GpuDevice, op: number, a: GPUBuffer, b: GPUBuffer, n: number, c = 0): GPUBuffer {
  const out = gpu.buffer(n * 4);
  if (n === 0) return out;
  const groups = Math.ceil(n / WG);
  const groupsX = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  const groupsY = Math.ceil(groups / groupsX);
  gpu.dispatch(ELEMENTWISE_WGSL, [a, b, out, gpu.uniforms(packParams([n, op, { f: c }, groupsX]))], [groupsX, groupsY]);
  return out;
}

/** a + b over n f32 values. */
export function addGpu(gpu: GpuDevice, a: GPUBuffer, b: GPUBuffer, n: number): GPUBuffer {
  return elementwise(gpu, 0, a, b, n);
}
/** a · b over n f32 values. */
export function mulGpu(gpu: GpuDevice, a: GPUBuffer, b: GPUBuffer, n: number): GPUBuffer {
  return elementwise(gpu, 1, a, b, n);
}
/** a · c over n f32 values (c is rounded to float32). */
export function scaleGpu(gpu: GpuDevice, a: GPUBuffer, c: number, n: number): GPUBuffer {
  return elementwise(gpu, 2, a, a, n, c);
}
/** silu(gate) · up over n f32 values. */
export function swigluGpu(gpu: GpuDevice, gate: GPUBuffer, up: GPUBuffer, n: number): GPUBuffer {
  return elementwise(gpu, 3, gate, up, n);
}

/** x [rows, n] · rsqrt(mean(x²) + eps) · w [n]. */
export function rmsNormGpu(gpu: GpuDevice, x: GPUBuffer, w: GPUBuffer, rows: number, n: number, eps: number): GPUBuffer {
  const out = gpu.buffer(rows * n * 4);
  if (rows > 0) gpu.dispatch(NORM_WGSL, [x, w, w, out, gpu.uniforms(packParams([rows, n, { f: eps }, 0]))], [rows]);
  return out;
}

/** LayerNorm of x [rows, n] with weight w [n] and bias b [n]. */
export function layerNormGpu(gpu: GpuDevice, x: GPUBuffer, w: GPUBuffer, b: GPUBuffer, rows: number, n: number, eps: number): GPUBuffer {
  const out = gpu.buffer(rows * n * 4);
  if (rows > 0) gpu.dispatch(NORM_WGSL, [x, w, b, out, gpu.uniforms(packParams([rows, n, { f: eps }, 1]))], [rows]);
  return out;
}
