/** WebGPU MoE routing and expert FFNs against the CPU twins moeRoute and moeExperts. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GpuDevice } from '../../src/backend/webgpu/device.js';
import { moeExpertsGpu, moeRouteGpu, type GpuExpertWeight } from '../../src/backend/webgpu/kernels/moe.js';
import { moeExperts, moeRoute } from '../../src/backend/cpu/kernels/moe.js';
import { CpuWeight } from '../../src/backend/cpu/weight.js';
import type { HostWeight, RouteOptions, ScaleFormat } from '../../src/backend/backend.js';
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

/** Logits whose scores are well apart in every row: a shuffled ladder with steps of 6 / E. */
function ladderLogits(rows: number, e: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(rows * e);
  for (let t = 0; t < rows; t++) {
    const perm = Array.from({ length: e }, (_, i) => i);
    for (let i = e - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    for (let i = 0; i < e; i++) out[t * e + i] = -3 + (6 * perm[i]!) / e + 0.1 * r() / e;
  }
  return out;
}

const configs: { name: string; e: number; bias: boolean; o: RouteOptions }[] = [
  { name: 'sigmoid, bias, 8 groups keep 4, top 8, normalized ×2.5', e: 64, bias: true, o: { topk: 8, nGroup: 8, topkGroup: 4, scoring: 'sigmoid', normalize: true, scale: 2.5 } },
  { name: 'softmax, no bias, 4 groups keep 2, top 6', e: 32, bias: false, o: { topk: 6, nGroup: 4, topkGroup: 2, scoring: 'softmax', normalize: false, scale: 1 } },
  { name: 'sigmoid, no groups, 256 experts, top 4', e: 256, bias: false, o: { topk: 4, nGroup: 1, topkGroup: 1, scoring: 'sigmoid', normalize: true, scale: 1 } },
  { name: 'softmax, bias, no groups, top 3 of 16', e: 16, bias: true, o: { topk: 3, nGroup: 1, topkGroup: 1, scoring: 'softmax', normalize: true, scale: 0.5 } },
];

for (const c of configs) {
  for (const rows of [1, 5, 70]) {
    for (const withForced of [false, true]) {
      test(`moeRouteGpu ${c.name}: rows ${rows}${withForced ? ', forced' : ''} equals the CPU twin`, async () => {
        const logits = ladderLogits(rows, c.e, 3 + rows + c.e);
        // Bias spaced on a coarse ladder too, so biased scores stay apart.
        const bias = c.bias ? Float32Array.from({ length: c.e }, (_, i) => ((i * 37) % c.e) * (0.003 / c.e)) : null;
        let forced: Int32Array | null = null;
        if (withForced) {
          const r = rng(99 + rows);
          forced = new Int32Array(rows * c.o.topk);
          for (let i = 0; i < forced.length; i++) forced[i] = Math.floor(r() * c.e);
        }
        const want = moeRoute(logits, rows, c.e, bias, c.o, forced);
        const buf = (a: Float32Array | Int32Array) => gpu.buffer(a.byteLength, a);
        const got = moeRouteGpu(gpu, buf(logits), rows, c.e, bias ? buf(bias) : null, c.o, forced ? buf(forced) : null);
        const n = rows * c.o.topk * 4;
        const experts = new Int32Array(await gpu.read(got.experts, n));
        const chosen = new Int32Array(await gpu.read(got.chosen, n));
        const weights = new Float32Array(await gpu.read(got.weights, n));
        assert.deepEqual(Array.from(chosen), Array.from(want.chosen));
        assert.deepEqual(Array.from(experts), Array.from(want.experts));
        for (let i = 0; i < weights.length; i++) {
          assert.ok(Math.abs(weights[i]! - want.weights[i]!) <= 1e-6 * Math.max(1, Math.abs(want.weights[i]!)), `weight ${i}: ${weights[i]} vs ${want.weights[i]}`);
        }
      });
    }
  }
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
    test(`moeExpertsGpu ${format} actQuant ${actQuant}${duplicates ? ', a token routed twice to one expert' : ''} equals the CPU twin`, async () => {
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
      const out = await moeExpertsGpu(
        gpu,
        gpu.buffer(x.byteLength, x),
        rows,
        dim,
        gpu.buffer(experts.byteLength, experts),
        gpu.buffer(weights.byteLength, weights),
        k,
        gG,
        uG,
        dG,
        actQuant,
      );
      const got = new Float32Array(await gpu.read(out, rows * dim * 4));
      let max = 0;
      let scale = 0;
      for (let i = 0; i < want.length; i++) {
        max = Math.max(max, Math.abs(got[i]! - want[i]!));
        scale = Math.max(scale, Math.abs(want[i]!));
      }
      assert.ok(scale > 0);
      assert.ok(max <= 1e-5 * scale, `max abs diff ${max} (scale ${scale})`);
    });
  }
}
