/** WebGPU packLatent against the CPU twin (cpu/kernels/latent.ts): bit-exact in every format. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { latentRowWidth, type LatentFormat } from '../../src/backend/backend.js';
import { packLatent } from '../../src/backend/cpu/kernels/latent.js';
import { packLatentGpu } from '../../src/backend/webgpu/kernels/latent.js';
import { rng, upload, useGpu } from './helpers.js';

const gpu = useGpu();

/** Rows of varied magnitude (10^-40 .. 10^38), a zero row, exact ties of bf16 and e4m3 rounding, tiny values. */
function inputs(rows: number, n: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(rows * n);
  for (let row = 0; row < rows; row++) {
    const kind = row % 5;
    const mag = 10 ** Math.round(r() * 78 - 40);
    for (let j = 0; j < n; j++) {
      const sgn = r() < 0.5 ? -1 : 1;
      let v: number;
      if (kind === 0) v = sgn * r() * mag;
      else if (kind === 1) v = 0;
      else if (kind === 2) v = sgn * (1 + (2 * Math.floor(r() * 64) + 1) / 256) * 2 ** Math.floor(r() * 20 - 10); // halfway cases
      else if (kind === 3) v = sgn * (r() < 0.1 ? 2 ** -130 * r() : r() * 1e-3);
      else v = sgn * r() * 448 * (j === 5 ? 1000 : 1);
      x[row * n + j] = v;
    }
  }
  return x;
}

const bytes = (format: LatentFormat): number => (format === 'f32' ? 4 : format === 'bf16' ? 2 : 1);

for (const [rows, r, dr] of [
  [5, 128, 64],
  [5, 256, 3],
  [6, 128, 1],
  [1, 384, 64],
] as const) {
  for (const format of ['f32', 'bf16', 'fp8'] as const) {
    test(`packLatent ${format}: ${rows} rows, r ${r}, dr ${dr} bit-exact with the CPU`, async () => {
      const ckv = inputs(rows, r, 31 + r + dr);
      const kPe = inputs(rows, dr, 37 + r + dr);
      if (dr > 2) kPe[2] = NaN;
      const want = packLatent(ckv, kPe, rows, r, dr, format).data;
      const width = latentRowWidth(format, r, dr);
      const n = rows * width * bytes(format);
      const buf = packLatentGpu(gpu(), upload(gpu(), ckv), upload(gpu(), kPe), rows, r, dr, format);
      const got = new Uint8Array(await gpu().read(buf, n));
      assert.deepEqual(got, new Uint8Array(want.buffer, want.byteOffset, want.byteLength));
    });
  }
}

test('packLatent fp8: r not a multiple of 128 is refused', () => {
  assert.throws(() => packLatentGpu(gpu(), gpu().buffer(4), gpu().buffer(4), 1, 100, 4, 'fp8'), /packLatent.*128/);
});
