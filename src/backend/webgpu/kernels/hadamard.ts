/**
 * Normalized Walsh–Hadamard transform (Sylvester order, scaled by n^-0.5) over the last dim on
 * WebGPU: one workgroup of 256 per row, the row in workgroup memory (n a power of two ≤ 1024),
 * log2(n) butterfly stages in f32. CPU twin: hadamard (cpu/kernels/elementwise.ts), which sums in
 * f64 and rounds once, so results differ by f32 rounding of the butterflies.
 */
import type { GpuDevice } from '../device.js';

const WG = 256;
export const HADAMARD_MAX = 1024;

export const HADAMARD_WGSL = /* wgsl */ `
struct Params { n: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> buf: array<f32, ${HADAMARD_MAX}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let off = wg.x * p.n;
  for (var j = lid.x; j < p.n; j += ${WG}u) { buf[j] = x[off + j]; }
  workgroupBarrier();
  for (var h = 1u; h < p.n; h <<= 1u) {
    for (var k = lid.x; k < p.n / 2u; k += ${WG}u) {
      let i = (k / h) * 2u * h + (k % h);
      let a = buf[i];
      let b = buf[i + h];
      buf[i] = a + b;
      buf[i + h] = a - b;
    }
    workgroupBarrier();
  }
  for (var j = lid.x; j < p.n; j += ${WG}u) { out[off + j] = buf[j] * p.scale; }
}
`;

/** Normalized Walsh–Hadamard transform of each row of x f32 [rows, n]; returns a new buffer. */
export function hadamardGpu(gpu: GpuDevice, x: GPUBuffer, rows: number, n: number): GPUBuffer {
  if (n < 1 || (n & (n - 1)) !== 0 || n > HADAMARD_MAX) throw new RangeError(`hadamard: last dimension ${n} is not a power of two ≤ ${HADAMARD_MAX}`);
  const out = gpu.buffer(rows * n * 4);
  if (rows === 0) return out;
  const params = new Uint32Array(2);
  params[0] = n;
  new Float32Array(params.buffer)[1] = 1 / Math.sqrt(n);
  gpu.dispatch(HADAMARD_WGSL, [x, out, gpu.uniforms(params)], [rows]);
  return out;
}
