/** WebGPU FP8-weight linear against its CPU twins linearPlain (actQuant null) and linearFp8. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GpuDevice } from '../../src/backend/webgpu/device.js';
import { linearFp8Gpu } from '../../src/backend/webgpu/kernels/linear-fp8.js';
import { linearFp8, linearPlain } from '../../src/backend/cpu/kernels/linear.js';
import { CpuWeight } from '../../src/backend/cpu/weight.js';
import type { ScaleFormat } from '../../src/numerics/block-quant.js';

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

function compare(got: Float32Array, want: Float32Array): { max: number; scale: number } {
  let max = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    max = Math.max(max, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return { max, scale };
}

const shapes: [number, number, number, number, number][] = [
  [1, 320, 200, 128, 128],
  [3, 320, 200, 128, 128],
  [17, 320, 200, 128, 128],
  [3, 129, 65, 64, 32],
];
for (const actQuant of [null, 'none', 'ue8m0'] as (ScaleFormat | null)[]) {
  for (const [rows, k, n, bo, bi] of shapes) {
    test(`linearFp8Gpu actQuant ${actQuant}: rows ${rows}, K ${k}, N ${n}, block [${bo}, ${bi}] equals the CPU twin`, async () => {
      const x = random(rows * k, 7 + rows + k, 3);
      const w = fp8Weight(n, k, bo, bi, 11 + n);
      if (w.host.format !== 'fp8') throw new Error('unreachable');
      const want = actQuant === null ? linearPlain(x, rows, w) : linearFp8(x, rows, w, actQuant);
      const out = linearFp8Gpu(
        gpu,
        gpu.buffer(x.byteLength, x),
        gpu.buffer(w.host.data.byteLength, w.host.data),
        gpu.buffer(w.host.scaleInv.byteLength, w.host.scaleInv),
        bo,
        bi,
        rows,
        k,
        n,
        actQuant,
      );
      const got = new Float32Array(await gpu.read(out, rows * n * 4));
      const { max, scale } = compare(got, want);
      assert.ok(scale > 0);
      assert.ok(max <= 1e-5 * Math.max(scale, 1e-30), `max abs diff ${max} (scale ${scale})`);
    });
  }
}
