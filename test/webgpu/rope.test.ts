/** WebGPU rope against its CPU twin (cpu/kernels/elementwise.ts rope). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ropeGpu } from '../../src/backend/webgpu/kernels/rope.js';
import { rope } from '../../src/backend/cpu/kernels/elementwise.js';
import { random, upload, useGpu } from './helpers.js';

const gpu = useGpu();

for (const interleaved of [true, false]) {
  for (const [T, heads, dim, half, offset] of [
    [3, 2, 16, 8, 0],
    [5, 3, 24, 4, 8],
    [4, 1, 64, 16, 32],
  ] as const) {
    test(`rope ${interleaved ? 'interleaved' : 'half-split'}: T ${T}, heads ${heads}, dim ${dim}, half ${half}, offset ${offset} within one ulp of max |x| of the CPU`, async () => {
      const maxPos = 40;
      const x = random(T * heads * dim, 3 + dim + T, 5);
      const cos = new Float32Array(maxPos * half);
      const sin = new Float32Array(maxPos * half);
      for (let p = 0; p < maxPos; p++) {
        for (let i = 0; i < half; i++) {
          const a = p / 10000 ** (i / half);
          cos[p * half + i] = Math.cos(a);
          sin[p * half + i] = Math.sin(a);
        }
      }
      const positions = Int32Array.from({ length: T }, (_, t) => (t * 13 + 7) % maxPos);
      const want = rope(x, T, heads, dim, positions, cos, sin, maxPos, half, offset, interleaved);
      const b = (a: ArrayBufferView): GPUBuffer => upload(gpu(), a);
      const out = ropeGpu(gpu(), b(x), b(positions), b(cos), b(sin), T, heads, dim, maxPos, half, offset, interleaved);
      const got = new Float32Array(await gpu().read(out, x.byteLength));
      let max = 0;
      let diff = 0;
      for (let i = 0; i < want.length; i++) {
        if (got[i] !== want[i]) diff++;
        max = Math.max(max, Math.abs(got[i]! - want[i]!));
      }
      // The products are rounded separately when fma is not fused: one ulp of the inputs' magnitude.
      const ulp = 2 ** (Math.floor(Math.log2(x.reduce((m, v) => Math.max(m, Math.abs(v)), 0))) - 23);
      const ulps = max / ulp;
      console.log(`rope ${interleaved ? 'interleaved' : 'half-split'} ${T}x${heads}x${dim}: ${diff} values differ, max abs ${max}, max ${ulps} ulp`);
      assert.ok(ulps <= 1, `${diff} values differ, max ${ulps} ulp (max abs ${max})`);
    });
  }
}
