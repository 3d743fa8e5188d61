/**
 * Benchmark data made on the GPU (a hash of the element index and a seed), so gigabytes of cache
 * need no host generation or upload: f32 uniform in [lo, hi), bf16 pairs, non-NaN e4m3 codes,
 * f16 pairs and small i8 integers.
 */
import type { GpuDevice } from '../../backend/webgpu/device.js';

export type FillKind = 'f32' | 'bf16' | 'e4m3' | 'f16' | 'i8';
const KIND: Record<FillKind, number> = { f32: 0, bf16: 1, e4m3: 2, f16: 3, i8: 4 };

const FILL_WGSL = /* wgsl */ `
struct Params { words: u32, kind: u32, seed: u32, groupsX: u32, lo: f32, hi: f32 }
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> p: Params;

fn hash(x: u32) -> u32 {
  var h = x * 747796405u + 2891336453u;
  h = ((h >> ((h >> 28u) + 4u)) ^ h) * 277803737u;
  return (h >> 22u) ^ h;
}
fn uniform01(h: u32) -> f32 { return f32(h >> 8u) * (1.0 / 16777216.0); }
fn e4m3Code(h: u32) -> u32 {
  var c = h & 0xffu;
  if ((c & 0x7fu) == 0x7fu) { c = c ^ 1u; }
  return c;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 256u + lid.x;
  if (i >= p.words) { return; }
  let h = hash(i ^ hash(p.seed));
  let h2 = hash(h);
  let span = p.hi - p.lo;
  switch p.kind {
    case 0u: { out[i] = bitcast<u32>(p.lo + span * uniform01(h)); }
    case 1u: {
      let a = bitcast<u32>(p.lo + span * uniform01(h)) >> 16u;
      let b = bitcast<u32>(p.lo + span * uniform01(h2)) >> 16u;
      out[i] = a | (b << 16u);
    }
    case 2u: { out[i] = e4m3Code(h) | (e4m3Code(h >> 8u) << 8u) | (e4m3Code(h >> 16u) << 16u) | (e4m3Code(h2) << 24u); }
    case 3u: { out[i] = pack2x16float(vec2f(p.lo + span * uniform01(h), p.lo + span * uniform01(h2))); }
    default: { out[i] = (h & 0x0f0f0f0fu) ^ 0x08080808u; } // bytes 0..15 xor 8: i8 in −8..7
  }
}
`;

/** Fills `words` u32 words of a buffer. */
export function fillGpu(gpu: GpuDevice, buf: GPUBuffer, words: number, kind: FillKind, seed: number, lo = -1, hi = 1): void {
  const g = gpu.grid(words, 256);
  const params = new ArrayBuffer(24);
  new Uint32Array(params).set([words, KIND[kind], seed >>> 0, g[0]]);
  new Float32Array(params).set([lo, hi], 4);
  gpu.dispatch(FILL_WGSL, [buf, gpu.uniforms(new Uint32Array(params))], g);
}

/** A new buffer of `bytes` filled as `kind`. */
export function randomBuffer(gpu: GpuDevice, bytes: number, kind: FillKind, seed: number, lo = -1, hi = 1): GPUBuffer {
  const words = Math.ceil(bytes / 4);
  const b = gpu.buffer(words * 4);
  fillGpu(gpu, b, words, kind, seed, lo, hi);
  return b;
}
