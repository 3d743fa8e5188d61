/** WebGPU element-wise and normalization kernels against their CPU twins. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addGpu, layerNormGpu, mulGpu, rmsNormGpu, scaleGpu, swigluGpu } from '../../src/backend/webgpu/kernels/elementwise.js';
import { layerNorm, rmsNorm, swiglu } from '../../src/backend/cpu/kernels/elementwise.js';
import { maxDiff, random, readF32, upload, useGpu } from './helpers.js';

const gpu = useGpu();

const up = (a: Float32Array): GPUBuffer => upload(gpu(), a);
const down = (b: GPUBuffer, n: number): Promise<Float32Array> => readF32(gpu(), b, n);
/** Max |got − want| relative to max(1, max |want|). */
function maxRel(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  const { max, scale } = maxDiff(got, want);
  return max / Math.max(1, scale);
}

for (const n of [1, 255, 1000]) {
  test(`add, mul, scale: n ${n} bit-exact against the CPU`, async () => {
    const a = random(n, 3 + n, 10);
    const b = random(n, 7 + n, 3);
    const c = Math.fround(-0.7071);
    const add = Float32Array.from(a, (v, i) => v + b[i]!);
    const mul = Float32Array.from(a, (v, i) => v * b[i]!);
    const sc = Float32Array.from(a, (v) => v * c);
    assert.deepEqual(await down(addGpu(gpu(), up(a), up(b), n), n), add);
    assert.deepEqual(await down(mulGpu(gpu(), up(a), up(b), n), n), mul);
    assert.deepEqual(await down(scaleGpu(gpu(), up(a), c, n), n), sc);
  });

  test(`swiglu: n ${n} within 1e-6 (relative) of the CPU`, async () => {
    const g = random(n, 11 + n, 8);
    const u = random(n, 13 + n, 2);
    const err = maxRel(await down(swigluGpu(gpu(), up(g), up(u), n), n), swiglu(g, u));
    console.log(`swiglu n ${n}: ${err.toExponential(2)}`);
    assert.ok(err <= 1e-6, `max error ${err}`);
  });
}

for (const [rows, n] of [
  [1, 7],
  [3, 256],
  [5, 1000],
] as const) {
  test(`rmsNorm and layerNorm: ${rows} × ${n} within 1e-5 (relative) of the CPU`, async () => {
    const x = random(rows * n, 17 + n, 4);
    const w = random(n, 19 + n, 1.5);
    const b = random(n, 23 + n, 0.5);
    const e1 = maxRel(await down(rmsNormGpu(gpu(), up(x), up(w), rows, n, 1e-6), rows * n), rmsNorm(x, rows, n, w, 1e-6));
    const e2 = maxRel(await down(layerNormGpu(gpu(), up(x), up(w), up(b), rows, n, 1e-5), rows * n), layerNorm(x, rows, n, w, b, 1e-5));
    console.log(`rmsNorm ${rows}x${n}: ${e1.toExponential(2)}, layerNorm: ${e2.toExponential(2)}`);
    assert.ok(e1 <= 1e-5, `rmsNorm max error ${e1}`);
    assert.ok(e2 <= 1e-5, `layerNorm max error ${e2}`);
  });
}
