/**
 * Scaffolding shared by the WebGPU kernel tests: one device per test file, the tests' own seeded
 * data (a fixed LCG: the cases were written against its exact values), upload / read-back, the
 * max-difference measure, and the expert weights of the MoE tests.
 */
import { after, before } from 'node:test';
import type { HostWeight, ScaleFormat } from '../../src/backend/backend.js';
import { moeExperts } from '../../src/backend/cpu/kernels/moe.js';
import { CpuWeight } from '../../src/backend/cpu/weight.js';
import { GpuDevice } from '../../src/backend/webgpu/device.js';
import type { GpuExpertWeight } from '../../src/backend/webgpu/kernels/moe.js';
import { encodeBf16 } from '../../src/numerics/bf16.js';
import { quantizeBlockWeight } from '../../src/numerics/block-quant.js';

/** Registers before / after hooks that create and destroy one GpuDevice; returns a getter for it. */
export function useGpu(): () => GpuDevice {
  let gpu: GpuDevice | undefined;
  before(async () => {
    gpu = await GpuDevice.create();
  });
  after(() => gpu?.destroy());
  return () => {
    if (!gpu) throw new Error('the GpuDevice is created in before()');
    return gpu;
  };
}

/** The tests' LCG: uniform in [0, 1) with 24 bits. The cases depend on its exact values. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) / 2 ** 24;
  };
}

/**
 * k selected positions per row for sparse attention: distinct positions ≤ the row's own, shuffled
 * (rng(seed)), a −1 at index 1, the rest −1 padding; `taken` positions at most (default k − 2, so
 * every row has padding too).
 */
export function sparseRows(positions: ArrayLike<number>, k: number, seed: number, taken = k - 2): Int32Array {
  const r = rng(seed);
  const out = new Int32Array(positions.length * k).fill(-1);
  for (let t = 0; t < positions.length; t++) {
    const all = Array.from({ length: positions[t]! + 1 }, (_, i) => i);
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    const row = all.slice(0, Math.min(taken, all.length));
    row.splice(1, 0, -1);
    out.set(row, t * k);
  }
  return out;
}

/** n values uniform in [−scale, scale) from rng(seed). */
export function random(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() - 0.5) * 2 * scale;
  return out;
}

/** A device buffer holding a copy of a. */
export function upload(gpu: GpuDevice, a: ArrayBufferView): GPUBuffer {
  return gpu.buffer(a.byteLength, a);
}

/** The first n f32 values of a device buffer. */
export async function readF32(gpu: GpuDevice, b: GPUBuffer, n: number): Promise<Float32Array> {
  return new Float32Array(await gpu.read(b, n * 4));
}

/** max |got − want| and max |want| over want's length. */
export function maxDiff(got: Float32Array, want: Float32Array): { max: number; scale: number } {
  let max = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    max = Math.max(max, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return { max, scale };
}

export type ExpertFormat = 'f32' | 'bf16' | 'fp8';

/** An out × inp weight of values about 1/√inp in the given format (fp8: 128 × 128 blocks). */
export function hostWeight(format: ExpertFormat, out: number, inp: number, seed: number): HostWeight {
  const w = random(out * inp, seed, 1 / Math.sqrt(inp));
  if (format === 'f32') return { format, outDim: out, inDim: inp, data: w };
  if (format === 'bf16') return { format, outDim: out, inDim: inp, data: encodeBf16(w) };
  const { w8, scaleInv } = quantizeBlockWeight(w, out, inp, 'none', 128);
  return { format, outDim: out, inDim: inp, data: w8, scaleInv, block: [128, 128] };
}

/** A host weight on the device, as the MoE kernels take it. */
export function uploadExpert(gpu: GpuDevice, h: HostWeight): GpuExpertWeight {
  const data = upload(gpu, h.data);
  if (h.format === 'fp8') return { format: 'fp8', outDim: h.outDim, inDim: h.inDim, codes: data, scaleInv: upload(gpu, h.scaleInv), block: h.block };
  return { format: h.format, outDim: h.outDim, inDim: h.inDim, data };
}

/** The expert formats and activation quantizations the MoE expert tests run. */
export const expertCases: { format: ExpertFormat; actQuant: ScaleFormat | null }[] = [
  { format: 'f32', actQuant: null },
  { format: 'bf16', actQuant: null },
  { format: 'fp8', actQuant: null },
  { format: 'fp8', actQuant: 'ue8m0' },
  { format: 'fp8', actQuant: 'none' },
];

/**
 * The MoE expert case: 7 rows of dim 160, 6 experts of inter 136, top 2 (expert 4 unused; with
 * duplicates some rows name one expert twice), the CPU twin's output, and the weights on the device.
 */
export function expertProblem(gpu: GpuDevice, format: ExpertFormat, actQuant: ScaleFormat | null, duplicates: boolean) {
  const rows = 7;
  const dim = 160;
  const inter = 136;
  const nExperts = 6;
  const k = 2;
  const x = random(rows * dim, 5, 2);
  const experts = new Int32Array(rows * k);
  for (let t = 0; t < rows; t++) {
    experts[t * k] = [0, 1, 2, 3, 5][t % 5]!;
    experts[t * k + 1] = duplicates && t % 3 === 0 ? experts[t * k]! : [5, 3, 1, 0, 2][(t + 1) % 5]!;
  }
  const weights = random(rows * k, 8, 1);
  const hosts = ['gate', 'up', 'down'].map((_, m) =>
    Array.from({ length: nExperts }, (_, e) => (m === 2 ? hostWeight(format, dim, inter, 100 * m + e) : hostWeight(format, inter, dim, 100 * m + e))),
  );
  const [gate, up, down] = hosts.map((hs) => hs.map((h) => new CpuWeight(h))) as [CpuWeight[], CpuWeight[], CpuWeight[]];
  const want = moeExperts(x, rows, dim, experts, weights, k, gate, up, down, actQuant);
  const [gG, uG, dG] = hosts.map((hs) => hs.map((h) => uploadExpert(gpu, h))) as [GpuExpertWeight[], GpuExpertWeight[], GpuExpertWeight[]];
  return { rows, dim, k, x, experts, weights, want, gG, uG, dG };
}
