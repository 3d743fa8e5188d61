/** moeExpertsGroupedGpu (grouped on the device, no read-back) against the CPU twin moeExperts and moeExpertsGpu. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GpuDevice } from '../../src/backend/webgpu/device.js';
import { moeExpertsGpu, type GpuExpertWeight } from '../../src/backend/webgpu/kernels/moe.js';
import { moeExpertsGroupedGpu } from '../../src/backend/webgpu/kernels/moe-grouped.js';
import { moeExperts } from '../../src/backend/cpu/kernels/moe.js';
import { CpuWeight } from '../../src/backend/cpu/weight.js';
import type { HostWeight, ScaleFormat } from '../../src/backend/backend.js';
import { encodeBf16 } from '../../src/numerics/bf16.js';
import { quantizeBlockWeight } from '../../src/numerics/block-quant.js';

let gpu: GpuDevice;
before(async () => {
  gpu = await GpuDevice.create();
});
after(() => gpu?.destroy());

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) / 2 ** 24;
  };
}

function random(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() - 0.5) * 2 * scale;
  return out;
}

function hostWeight(format: 'f32' | 'bf16' | 'fp8', out: number, inp: number, seed: number): HostWeight {
  const w = random(out * inp, seed, 1 / Math.sqrt(inp));
  if (format === 'f32') return { format, outDim: out, inDim: inp, data: w };
  if (format === 'bf16') return { format, outDim: out, inDim: inp, data: encodeBf16(w) };
  const { w8, scaleInv } = quantizeBlockWeight(w, out, inp, 'none', 128);
  return { format, outDim: out, inDim: inp, data: w8, scaleInv, block: [128, 128] };
}

function upload(h: HostWeight): GpuExpertWeight {
  const data = gpu.buffer(h.data.byteLength, h.data);
  if (h.format === 'fp8') return { format: 'fp8', outDim: h.outDim, inDim: h.inDim, codes: data, scaleInv: gpu.buffer(h.scaleInv.byteLength, h.scaleInv), block: h.block };
  return { format: h.format, outDim: h.outDim, inDim: h.inDim, data };
}

const expertCases: { format: 'f32' | 'bf16' | 'fp8'; actQuant: ScaleFormat | null }[] = [
  { format: 'f32', actQuant: null },
  { format: 'bf16', actQuant: null },
  { format: 'fp8', actQuant: null },
  { format: 'fp8', actQuant: 'ue8m0' },
  { format: 'fp8', actQuant: 'none' },
];
for (const { format, actQuant } of expertCases) {
  for (const duplicates of [false, true]) {
    test(`moeExpertsGroupedGpu ${format} actQuant ${actQuant}${duplicates ? ', a token routed twice to one expert' : ''} equals the CPU twin and moeExpertsGpu`, async () => {
      const rows = 7;
      const dim = 160;
      const inter = 136;
      const nExperts = 6;
      const k = 2;
      const x = random(rows * dim, 5, 2);
      // Expert 4 unused; with duplicates some rows name one expert twice.
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
      const [gG, uG, dG] = hosts.map((hs) => hs.map(upload)) as [GpuExpertWeight[], GpuExpertWeight[], GpuExpertWeight[]];
      const xB = gpu.buffer(x.byteLength, x);
      const eB = gpu.buffer(experts.byteLength, experts);
      const wB = gpu.buffer(weights.byteLength, weights);
      const out: GPUBuffer = moeExpertsGroupedGpu(gpu, xB, rows, dim, eB, wB, k, gG, uG, dG, actQuant);
      const ref = await moeExpertsGpu(gpu, xB, rows, dim, eB, wB, k, gG, uG, dG, actQuant);
      const viaReadBack = new Float32Array(await gpu.read(ref, rows * dim * 4));
      const got = new Float32Array(await gpu.read(out, rows * dim * 4));
      let max = 0;
      let scale = 0;
      for (let i = 0; i < want.length; i++) {
        max = Math.max(max, Math.abs(got[i]! - want[i]!));
        scale = Math.max(scale, Math.abs(want[i]!));
      }
      assert.ok(scale > 0);
      assert.ok(max <= 1e-5 * scale, `max abs diff ${max} (scale ${scale})`);
      let maxRef = 0;
      for (let i = 0; i < want.length; i++) maxRef = Math.max(maxRef, Math.abs(got[i]! - viaReadBack[i]!));
      assert.ok(maxRef <= 1e-5 * scale, `max abs diff to moeExpertsGpu ${maxRef} (scale ${scale})`);
    });
  }
}
