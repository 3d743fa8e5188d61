/**
 * Rotary embedding on WebGPU: x [T, heads, dim] with dims [offset, offset + 2·half) rotated by
 * rows positions[t] (i32) of the cos/sin tables [maxPos, half]; pairs interleaved (x[2i], x[2i+1])
 * or half-split (x[i], x[i + half]). One invocation per output value; the other dims are copied.
 * Each output is one fused multiply-add of one product and the other product rounded to f32,
 * out0 = fma(a, c, −f32(b·s)), out1 = fma(a, s, f32(b·c)), the form of the CPU twin
 * (cpu/kernels/elementwise.ts rope). WGSL's fma need not be fused (on lavapipe it is not, and a
 * Dekker two-product is optimized away there), so results may differ from the CPU by one f32 ulp. A position outside [0, maxPos) gives NaN in its rotated dims (the CPU twin throws).
 */
import type { GpuDevice } from '../device.js';

const WG = 64;

export const ROPE_WGSL = /* wgsl */ `
struct Params { count: u32, heads: u32, dim: u32, half: u32, offset: u32, interleaved: u32, maxPos: u32, groupsX: u32, nan: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<i32>;
@group(0) @binding(2) var<storage, read> cosT: array<f32>;
@group(0) @binding(3) var<storage, read> sinT: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let idx = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (idx >= p.count) { return; }
  let d = idx % p.dim;
  if (d < p.offset || d >= p.offset + 2u * p.half) { out[idx] = x[idx]; return; }
  let j = d - p.offset;
  var i: u32;
  var first: bool;
  var partner: u32;
  if (p.interleaved == 1u) {
    i = j >> 1u;
    first = (j & 1u) == 0u;
    partner = select(idx - 1u, idx + 1u, first);
  } else {
    first = j < p.half;
    i = select(j - p.half, j, first);
    partner = select(idx - p.half, idx + p.half, first);
  }
  let pos = positions[idx / (p.dim * p.heads)];
  if (pos < 0 || u32(pos) >= p.maxPos) { out[idx] = bitcast<f32>(p.nan); return; }
  let c = cosT[u32(pos) * p.half + i];
  let s = sinT[u32(pos) * p.half + i];
  if (first) {
    out[idx] = fma(x[idx], c, -(x[partner] * s));
  } else {
    out[idx] = fma(x[partner], s, x[idx] * c);
  }
}
`;

/** Rope of x f32 [T, heads, dim] (see the file comment); returns a new buffer [T, heads, dim]. */
export function ropeGpu(
  gpu: GpuDevice,
  x: GPUBuffer,
  positions: GPUBuffer,
  cos: GPUBuffer,
  sin: GPUBuffer,
  t: number,
  heads: number,
  dim: number,
  maxPos: number,
  half: number,
  offset: number,
  interleaved: boolean,
): GPUBuffer {
  if (offset < 0 || offset + 2 * half > dim) throw new RangeError(`rope: rotary dims [${offset}, ${offset + 2 * half}) exceed the head size ${dim}`);
  const count = t * heads * dim;
  const out = gpu.buffer(count * 4);
  if (count === 0) return out;
  const groups = Math.ceil(count / WG);
  const groupsX = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  const params = gpu.uniforms(Uint32Array.of(count, heads, dim, half, offset, interleaved ? 1 : 0, maxPos, groupsX, 0x7fc00000));
  gpu.dispatch(ROPE_WGSL, [x, positions, cos, sin, out, params], [groupsX, Math.ceil(groups / groupsX)]);
  return out;
}
