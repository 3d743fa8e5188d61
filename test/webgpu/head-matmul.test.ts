/** headMatmul on WebGPU against its CPU twin (needs a WebGPU adapter; lavapipe on CPU-only Linux). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { headMatmulGpu } from '../../src/backend/webgpu/kernels/head-matmul.js';
import { headMatmul } from '../../src/backend/cpu/kernels/linear.js';
import { maxDiff, random, readF32, upload, useGpu } from './helpers.js';

const gpu = useGpu();

for (const transposeW of [false, true]) {
  for (const [rows, heads, n, m] of [
    [1, 4, 32, 48],
    [3, 2, 17, 5],
    [5, 3, 64, 40],
    // wᵀ with n a multiple of 4 (the subgroup form where the subgroup size is fixed): 16 rows and a second group of 3.
    [19, 3, 64, 70],
  ] as const) {
    test(`headMatmul${transposeW ? ' (wᵀ)' : ''}: T ${rows}, H ${heads}, n ${n}, m ${m} equals the CPU twin`, async () => {
      const x = random(rows * heads * n, 7 + rows + n);
      const w = random(heads * n * m, 11 + m, 0.2);
      const want = headMatmul(x, rows, heads, n, w, m, transposeW);
      const out = headMatmulGpu(gpu(), upload(gpu(), x), upload(gpu(), w), rows, heads, n, m, transposeW);
      const got = await readF32(gpu(), out, want.length);
      const { max, scale } = maxDiff(got, want);
      console.log(`headMatmul transposeW=${transposeW} [${rows},${heads},${n}]→${m}: max abs diff ${max} (scale ${scale})`);
      assert.ok(max <= 1e-5 * Math.max(scale, 1), `max abs diff ${max} (scale ${scale})`);
    });
  }
}

test('headMatmul (wᵀ): 17 rows in one call equal each row called alone, bit for bit', async () => {
  const [rows, heads, n, m] = [17, 4, 128, 96];
  const x = random(rows * heads * n, 3);
  const w = random(heads * n * m, 5, 0.2);
  const g = gpu();
  const all = await readF32(g, headMatmulGpu(g, upload(g, x), upload(g, w), rows, heads, n, m, true), rows * heads * m);
  for (const t of [0, 15, 16]) {
    const one = await readF32(g, headMatmulGpu(g, upload(g, x.subarray(t * heads * n, (t + 1) * heads * n)), upload(g, w), 1, heads, n, m, true), heads * m);
    assert.deepEqual(Array.from(all.subarray(t * heads * m, (t + 1) * heads * m)), Array.from(one), `row ${t}`);
  }
});
