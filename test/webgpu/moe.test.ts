/** WebGPU MoE routing and expert FFNs against the CPU twins moeRoute and moeExperts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { moeRouteGpu } from '../../src/backend/webgpu/kernels/moe.js';
import { moeRoute } from '../../src/backend/cpu/kernels/moe.js';
import type { RouteOptions } from '../../src/backend/backend.js';
import { rng, upload, useGpu } from './helpers.js';

const gpu = useGpu();

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
        const got = moeRouteGpu(gpu(), upload(gpu(), logits), rows, c.e, bias ? upload(gpu(), bias) : null, c.o, forced ? upload(gpu(), forced) : null);
        const n = rows * c.o.topk * 4;
        const experts = new Int32Array(await gpu().read(got.experts, n));
        const chosen = new Int32Array(await gpu().read(got.chosen, n));
        const weights = new Float32Array(await gpu().read(got.weights, n));
        assert.deepEqual(Array.from(chosen), Array.from(want.chosen));
        assert.deepEqual(Array.from(experts), Array.from(want.experts));
        for (let i = 0; i < weights.length; i++) {
          assert.ok(Math.abs(weights[i]! - want.weights[i]!) <= 1e-6 * Math.max(1, Math.abs(want.weights[i]!)), `weight ${i}: ${weights[i]} vs ${want.weights[i]}`);
        }
      });
    }
  }
}
