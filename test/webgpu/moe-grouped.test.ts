/** moeExpertsGroupedGpu (grouped on the device, no read-back) against the CPU twin moeExperts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { moeExpertsGroupedGpu } from '../../src/backend/webgpu/kernels/moe-grouped.js';
import { expertCases, expertProblem, maxDiff, readF32, upload, useGpu } from './helpers.js';

const gpu = useGpu();

for (const { format, actQuant } of expertCases) {
  for (const duplicates of [false, true]) {
    test(`moeExpertsGroupedGpu ${format} actQuant ${actQuant}${duplicates ? ', a token routed twice to one expert' : ''} equals the CPU twin`, async () => {
      const { rows, dim, k, x, experts, weights, want, gG, uG, dG } = expertProblem(gpu(), format, actQuant, duplicates);
      const xB = upload(gpu(), x);
      const eB = upload(gpu(), experts);
      const wB = upload(gpu(), weights);
      const out: GPUBuffer = moeExpertsGroupedGpu(gpu(), xB, rows, dim, eB, wB, k, gG, uG, dG, actQuant);
      const got = await readF32(gpu(), out, rows * dim);
      const { max, scale } = maxDiff(got, want);
      assert.ok(scale > 0);
      assert.ok(max <= 1e-5 * scale, `max abs diff ${max} (scale ${scale})`);
    });
  }
}
