/**
 * WebGPU kernels against their CPU twins. Needs a WebGPU adapter: a GPU, or on CPU-only Linux
 * Mesa ≥ 25's lavapipe (`.ci/run` installs it from bookworm-backports).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GpuDevice } from '../../src/backend/webgpu/device.js';
import { linearGpu } from '../../src/backend/webgpu/kernels/linear.js';
import { linearPlain } from '../../src/backend/cpu/kernels/linear.js';
import { CpuWeight } from '../../src/backend/cpu/weight.js';
import { encodeBf16 } from '../../src/numerics/bf16.js';

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
      const out = linearGpu(gpu, gpu.buffer(x.byteLength, x), gpu.buffer(wBytes.byteLength, wBytes), format, rows, k, n);
      const got = new Float32Array(await gpu.read(out, rows * n * 4));
      let max = 0;
      let scale = 0;
      for (let i = 0; i < want.length; i++) {
        max = Math.max(max, Math.abs(got[i]! - want[i]!));
        scale = Math.max(scale, Math.abs(want[i]!));
      }
      assert.ok(max <= 1e-5 * Math.max(scale, 1), `max abs diff ${max} (scale ${scale})`);
    });
  }
}

test('the adapter and device are described', () => {
  assert.ok(gpu.limits.maxStorageBufferBindingSize > 0);
  assert.equal(typeof gpu.adapterInfo.vendor, 'string');
});
