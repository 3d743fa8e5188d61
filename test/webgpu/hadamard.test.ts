/** WebGPU Walsh–Hadamard transform against its CPU twin (f64 butterflies, rounded once). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hadamardGpu } from '../../src/backend/webgpu/kernels/hadamard.js';
import { hadamard } from '../../src/backend/cpu/kernels/elementwise.js';
import { random, upload, useGpu } from './helpers.js';

const gpu = useGpu();

for (const [rows, n] of [
  [3, 1],
  [2, 2],
  [4, 128],
  [3, 512],
  [2, 1024],
] as const) {
  test(`hadamard: ${rows} × ${n} within 1e-6 (relative to the row's max) of the CPU`, async () => {
    const x = random(rows * n, 7 + n, 3);
    const want = hadamard(x, rows, n);
    const got = new Float32Array(await gpu().read(hadamardGpu(gpu(), upload(gpu(), x), rows, n), x.byteLength));
    let err = 0;
    for (let r = 0; r < rows; r++) {
      let scale = 0;
      let max = 0;
      for (let j = 0; j < n; j++) {
        scale = Math.max(scale, Math.abs(want[r * n + j]!));
        max = Math.max(max, Math.abs(got[r * n + j]! - want[r * n + j]!));
      }
      err = Math.max(err, max / scale);
    }
    console.log(`hadamard ${rows}x${n}: ${err.toExponential(2)}`);
    assert.ok(err <= 1e-6, `max error ${err}`);
  });
}

test('hadamard: the transform is its own inverse up to f32 rounding', async () => {
  const n = 256;
  const x = random(2 * n, 99, 1);
  const once = hadamardGpu(gpu(), upload(gpu(), x), 2, n);
  const twice = new Float32Array(await gpu().read(hadamardGpu(gpu(), once, 2, n), x.byteLength));
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(twice[i]! - x[i]!) <= 1e-5, `value ${i}`);
});

test('hadamard: rejects n that is not a power of two or above 1024', () => {
  assert.throws(() => hadamardGpu(gpu(), gpu().buffer(4 * 12), 1, 12), RangeError);
  assert.throws(() => hadamardGpu(gpu(), gpu().buffer(4 * 2048), 1, 2048), RangeError);
});
