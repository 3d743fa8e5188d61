/** WebGPU FP8-weight linear (the tiled kernel, and the per-output one for K blocks over 128) against its CPU twins linearPlain (actQuant null) and linearFp8. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { linearFp8Gpu } from '../../src/backend/webgpu/kernels/linear-fp8.js';
import { linearFp8, linearPlain } from '../../src/backend/cpu/kernels/linear.js';
import { CpuWeight } from '../../src/backend/cpu/weight.js';
import type { ScaleFormat } from '../../src/numerics/block-quant.js';
import { maxDiff, random, readF32, rng, upload, useGpu } from './helpers.js';

const gpu = useGpu();

/** Random e4m3 codes (no NaN codes 0x7f / 0xff; subnormals included) and block scales. */
function fp8Weight(n: number, k: number, bo: number, bi: number, seed: number): CpuWeight {
  const r = rng(seed);
  const data = new Uint8Array(n * k);
  for (let i = 0; i < data.length; i++) {
    let c = Math.floor(r() * 256);
    if ((c & 0x7f) === 0x7f) c ^= 1;
    data[i] = c;
  }
  const scaleInv = new Float32Array(Math.ceil(n / bo) * Math.ceil(k / bi));
  for (let i = 0; i < scaleInv.length; i++) scaleInv[i] = (0.5 + r()) * 1e-3;
  return new CpuWeight({ format: 'fp8', outDim: n, inDim: k, data, scaleInv, block: [bo, bi] });
}

const shapes: [number, number, number, number, number][] = [
  [1, 320, 200, 128, 128],
  [3, 320, 200, 128, 128],
  [17, 320, 200, 128, 128],
  [3, 129, 65, 64, 32],
  // The tiled kernel's row groups (4, 8, 16 rows per workgroup; a partial one), K blocks cut short,
  // outputs past a multiple of 32; and a K block over 128, which the one-workgroup-per-output kernels take.
  [5, 130, 33, 128, 128],
  [8, 256, 64, 128, 128],
  [16, 300, 97, 32, 128],
  [2, 300, 40, 128, 256],
];
for (const actQuant of [null, 'none', 'ue8m0'] as (ScaleFormat | null)[]) {
  for (const [rows, k, n, bo, bi] of shapes) {
    test(`linearFp8Gpu actQuant ${actQuant}: rows ${rows}, K ${k}, N ${n}, block [${bo}, ${bi}] equals the CPU twin`, async () => {
      const x = random(rows * k, 7 + rows + k, 3);
      const w = fp8Weight(n, k, bo, bi, 11 + n);
      if (w.host.format !== 'fp8') throw new Error('unreachable');
      const want = actQuant === null ? linearPlain(x, rows, w) : linearFp8(x, rows, w, actQuant);
      const out = linearFp8Gpu(
        gpu(),
        upload(gpu(), x),
        upload(gpu(), w.host.data),
        upload(gpu(), w.host.scaleInv),
        bo,
        bi,
        rows,
        k,
        n,
        actQuant,
      );
      const got = await readF32(gpu(), out, rows * n);
      const { max, scale } = maxDiff(got, want);
      assert.ok(scale > 0);
      assert.ok(max <= 1e-5 * Math.max(scale, 1e-30), `max abs diff ${max} (scale ${scale})`);
    });
  }
}
