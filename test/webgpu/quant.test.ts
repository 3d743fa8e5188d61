/** WebGPU block FP8 quantization against actQuantRow: codes and scales bit-exact. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dequantFp8Gpu, quantFp8Gpu } from '../../src/backend/webgpu/kernels/quant.js';
import { dequantFp8, quantFp8 } from '../../src/backend/cpu/kernels/elementwise.js';
import { blockScale } from '../../src/numerics/block-quant.js';
import { rng, upload, useGpu } from './helpers.js';

const gpu = useGpu();

/** Rows of varied magnitude: random at 10^e for e in [-40, 38], zero rows, ties, subnormals. */
function inputs(rows: number, n: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(rows * n);
  for (let row = 0; row < rows; row++) {
    const kind = row % 6;
    const mag = 10 ** Math.round(r() * 78 - 40);
    for (let j = 0; j < n; j++) {
      const i = row * n + j;
      if (kind === 0) x[i] = 0;
      else if (kind === 1) x[i] = (r() - 0.5) * 2 * mag;
      else if (kind === 2) x[i] = (r() - 0.5) * 2 * 10 ** Math.round(r() * 12 - 6); // wide range inside a block
      else if (kind === 3) x[i] = (r() - 0.5) * 1e-42; // subnormal inputs
      else if (kind === 4) x[i] = r() < 0.5 ? -0 : (r() - 0.5) * 3e38;
      else x[i] = (r() - 0.5) * 2;
    }
  }
  return x;
}

/** Rows whose quotients x / s land exactly on e4m3 rounding midpoints (normal and subnormal). */
function ties(n: number, block: number, fmt: 'none' | 'ue8m0'): Float32Array {
  const mids = [1.0625, 1.1875, -2.125, 2.375, 272, -304, 2 ** -10, 3 * 2 ** -10, -5 * 2 ** -10, 7 * 2 ** -10, 15 * 2 ** -10, 0.5 + 1 / 32, 13.5, 240 + 8];
  const x = new Float32Array(n);
  for (let start = 0; start < n; start += block) {
    const amax = 336 * 2 ** ((start / block) % 5 - 2);
    const s = blockScale(amax, fmt);
    const end = Math.min(start + block, n);
    x[start] = amax;
    for (let i = start + 1; i < end; i++) {
      const v = Math.fround(mids[i % mids.length]! * s);
      x[i] = Math.abs(v) <= amax ? v : 0;
    }
  }
  return x;
}

const cases = [
  { rows: 12, n: 130, block: 64 },
  { rows: 7, n: 256, block: 128 },
  { rows: 6, n: 45, block: 16 },
] as const;

for (const fmt of ['none', 'ue8m0'] as const) {
  for (const { rows, n, block } of cases) {
    test(`quantFp8 ${fmt}: ${rows} × ${n}, block ${block}: codes and scales bit-exact; dequantFp8 bit-exact`, async () => {
      const x = new Float32Array((rows + 1) * n);
      x.set(inputs(rows, n, 5 + n + rows));
      x.set(ties(n, block, fmt), rows * n);
      const R = rows + 1;
      const want = quantFp8(x, R, n, block, fmt);
      const { q, s, blocks } = quantFp8Gpu(gpu(), upload(gpu(), x), R, n, block, fmt);
      assert.equal(blocks, want.blocks);
      const gotS = new Uint32Array(await gpu().read(s, R * blocks * 4));
      const gotQ = new Uint8Array(await gpu().read(q, R * n));
      assert.deepEqual(gotS, new Uint32Array(want.s.buffer), 'scales');
      let diff = 0;
      for (let i = 0; i < gotQ.length; i++) if (gotQ[i] !== want.q[i]) diff++;
      assert.equal(diff, 0, `${diff} codes differ`);
      assert.deepEqual(gotQ, want.q);
      const deq = new Float32Array(await gpu().read(dequantFp8Gpu(gpu(), q, s, R, n, block), R * n * 4));
      assert.deepEqual(new Uint32Array(deq.buffer), new Uint32Array(dequantFp8(want.q, want.s, R, n, block).buffer));
    });
  }
}

test('quantFp8: every e4m3 code decodes bit-exact (all 256 codes, NaN included)', async () => {
  const q = Uint8Array.from({ length: 256 }, (_, i) => i);
  const s = Float32Array.of(1, 1, Math.fround(0.37), Math.fround(0.37));
  const got = new Float32Array(await gpu().read(dequantFp8Gpu(gpu(), gpu().buffer(256, q), gpu().buffer(16, s), 2, 128, 64), 256 * 4));
  const want = dequantFp8(q, s, 2, 128, 64);
  for (let i = 0; i < 256; i++) {
    if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got[i]), `code ${i}`);
    else assert.equal(got[i], want[i], `code ${i}`);
  }
});
