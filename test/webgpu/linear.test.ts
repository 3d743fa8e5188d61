/**
 * WebGPU kernels against their CPU twins. Needs a WebGPU adapter: a GPU, or on CPU-only Linux
 * Mesa ≥ 25's lavapipe (`.ci/run` installs it from bookworm-backports).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linearGpu } from '../../src/backend/webgpu/kernels/linear.js';
import { linearPlain } from '../../src/backend/cpu/kernels/linear.js';
import { CpuWeight } from '../../src/backend/cpu/weight.js';
import { encodeBf16 } from '../../src/numerics/bf16.js';
import { maxDiff, random, readF32, upload, useGpu } from './helpers.js';

const gpu = useGpu();

for (const format of ['f32', 'bf16'] as const) {
  for (const [rows, k, n] of [
    [1, 320, 200],
    [3, 129, 65],
    [17, 256, 96],
  ] as const) {
    test(`linear ${format}: rows ${rows}, K ${k}, N ${n} equals the CPU twin`, async () => {
      const x = random(rows * k, 1 + rows);
      const wf = random(n * k, 2 + n, 0.1);
      const host = format === 'f32' ? { format, outDim: n, inDim: k, data: wf } : { format, outDim: n, inDim: k, data: encodeBf16(wf) };
      const want = linearPlain(x, rows, new CpuWeight(host));
      const wBytes = host.data as ArrayBufferView;
      const out = linearGpu(gpu(), upload(gpu(), x), upload(gpu(), wBytes), format, rows, k, n);
      const got = await readF32(gpu(), out, rows * n);
      const { max, scale } = maxDiff(got, want);
      assert.ok(max <= 1e-5 * Math.max(scale, 1), `max abs diff ${max} (scale ${scale})`);
    });
  }
}

test('the adapter and device are described', () => {
  assert.ok(gpu().limits.maxStorageBufferBindingSize > 0);
  assert.equal(typeof gpu().adapterInfo.vendor, 'string');
});
