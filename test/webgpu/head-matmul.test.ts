/** headMatmul on WebGPU against its CPU twin (needs a WebGPU adapter; lavapipe on CPU-only Linux). */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GpuDevice } from '../../src/backend/webgpu/device.js';
import { headMatmulGpu } from '../../src/backend/webgpu/kernels/head-matmul.js';
import { headMatmul } from '../../src/backend/cpu/kernels/linear.js';

let gpu: GpuDevice;
before(async () => {
  gpu = await GpuDevice.create();
});
after(() => gpu?.destroy());

function random(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 8) / 2 ** 24 - 0.5) * 2 * scale;
  }
  return out;
}

for (const transposeW of [false, true]) {
  for (const [rows, heads, n, m] of [
    [1, 4, 32, 48],
    [3, 2, 17, 5],
    [5, 3, 64, 40],
  ] as const) {
    test(`headMatmul${transposeW ? ' (wᵀ)' : ''}: T ${rows}, H ${heads}, n ${n}, m ${m} equals the CPU twin`, async () => {
      const x = random(rows * heads * n, 7 + rows + n);
      const w = random(heads * n * m, 11 + m, 0.2);
      const want = headMatmul(x, rows, heads, n, w, m, transposeW);
      const out = headMatmulGpu(gpu, gpu.buffer(x.byteLength, x), gpu.buffer(w.byteLength, w), rows, heads, n, m, transposeW);
      const got = new Float32Array(await gpu.read(out, want.byteLength));
      let max = 0;
      let scale = 0;
      for (let i = 0; i < want.length; i++) {
        max = Math.max(max, Math.abs(got[i]! - want[i]!));
        scale = Math.max(scale, Math.abs(want[i]!));
      }
      console.log(`headMatmul transposeW=${transposeW} [${rows},${heads},${n}]→${m}: max abs diff ${max} (scale ${scale})`);
      assert.ok(max <= 1e-5 * Math.max(scale, 1), `max abs diff ${max} (scale ${scale})`);
    });
  }
}
