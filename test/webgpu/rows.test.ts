/** WebGPU row and shape kernels against the CPU backend: exact equality (they move or decode values). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DType, HostArray, HostWeight, Tensor } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu.js';
import {
  argmaxGpu,
  concatRowsGpu,
  embeddingGpu,
  gatherRowsGpu,
  sliceLastGpu,
  sliceRowsGpu,
  writeRowsGpu,
} from '../../src/backend/webgpu/kernels/rows.js';
import { f32ToBf16 } from '../../src/numerics/bf16.js';
import { rng, upload, useGpu } from './helpers.js';

const gpu = useGpu();
const cpu = new CpuBackend({ kernels: 'js' });

function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() - 0.5) * 2 * scale);
}
function randomOf(dtype: DType, n: number, seed: number): HostArray {
  const r = rng(seed);
  const bits = (): number => Math.floor(r() * 2 ** 32);
  if (dtype === 'f32') return randomF32(n, seed, 100);
  if (dtype === 'i32') return Int32Array.from({ length: n }, bits);
  if (dtype === 'bf16') return Uint16Array.from({ length: n }, () => bits() & 0xffff);
  return Uint8Array.from({ length: n }, () => bits() & 0xff);
}
const ctor = { f32: Float32Array, i32: Int32Array, bf16: Uint16Array, u8: Uint8Array } as const;
const bytesOf = { f32: 4, i32: 4, bf16: 2, u8: 1 } as const;

const up = (a: HostArray): GPUBuffer => upload(gpu(), a);
async function down(b: GPUBuffer, dtype: DType, n: number): Promise<HostArray> {
  return new ctor[dtype](await gpu().read(b, n * bytesOf[dtype]));
}
const host = async (t: Tensor): Promise<HostArray> => cpu.read(t);

for (const dtype of ['f32', 'i32', 'bf16', 'u8'] as const) {
  test(`sliceLast ${dtype}: equal to the CPU (odd widths: bf16 and u8 columns start inside words)`, async () => {
    const [rows, n] = [5, 37];
    const x = randomOf(dtype, rows * n, 1);
    for (const [start, len] of [
      [0, 37],
      [3, 10],
      [36, 1],
      [20, 0],
    ] as const) {
      const want = await host(cpu.sliceLast(cpu.upload(x, [rows, n]), start, len));
      assert.deepEqual(await down(sliceLastGpu(gpu(), up(x), dtype, rows, n, start, len), dtype, rows * len), want);
    }
  });
}

test('sliceLast: out-of-range columns are refused', () => {
  assert.throws(() => sliceLastGpu(gpu(), gpu().buffer(16), 'f32', 2, 2, 1, 2), /sliceLast/);
});

for (const [dtype, rowElems] of [
  ['f32', 3],
  ['i32', 5],
  ['bf16', 6],
  ['u8', 12],
  ['bf16', 3],
  ['u8', 5],
] as const) {
  test(`sliceRows and concatRows ${dtype} [*, ${rowElems}]: equal to the CPU`, async () => {
    const rows = 7;
    const x = randomOf(dtype, rows * rowElems, 2);
    const xb = up(x);
    for (const [start, len] of [
      [0, 7],
      [2, 3],
      [6, 1],
      [4, 0],
    ] as const) {
      const want = await host(cpu.sliceRows(cpu.upload(x, [rows, rowElems]), start, len));
      assert.deepEqual(await down(sliceRowsGpu(gpu(), xb, dtype, rows, rowElems, start, len), dtype, len * rowElems), want);
    }
    const partRows = [2, 0, 4, 1];
    const parts = partRows.map((r, i) => randomOf(dtype, r * rowElems, 10 + i));
    const want = await host(cpu.concatRows(parts.map((p, i) => cpu.upload(p, [partRows[i]!, rowElems]))));
    const got = concatRowsGpu(gpu(), parts.map((p, i) => ({ buffer: up(p), rows: partRows[i]! })), dtype, rowElems);
    assert.deepEqual(await down(got, dtype, 7 * rowElems), want);
  });
}

test('sliceRows: rows outside the first dimension are refused', () => {
  assert.throws(() => sliceRowsGpu(gpu(), gpu().buffer(16), 'f32', 2, 2, 1, 2), /sliceRows/);
});

for (const dtype of ['f32', 'i32', 'bf16', 'u8'] as const) {
  test(`gatherRows ${dtype}: equal to the CPU (repeats, any order; odd widths)`, async () => {
    const [rows, n] = [9, 13];
    const x = randomOf(dtype, rows * n, 3);
    const idx = Int32Array.of(8, 0, 3, 3, 7, 1);
    const want = await host(cpu.gatherRows(cpu.upload(x, [rows, n]), cpu.upload(idx, [idx.length])));
    assert.deepEqual(await down(gatherRowsGpu(gpu(), up(x), dtype, rows, n, up(idx), idx.length), dtype, idx.length * n), want);
  });
}

test('argmax: first maximum wins, -inf and NaN as on the CPU', async () => {
  for (const n of [1, 7, 300, 2000]) {
    const rows = 6;
    const x = randomF32(rows * n, 4 + n, 5);
    // Row 1: ties at several places; row 2: all -inf; row 3: NaNs and a late max; row 4: all equal.
    for (let j = 0; j < n; j += 3) x[n + j] = 9;
    for (let j = 0; j < n; j++) x[2 * n + j] = -Infinity;
    for (let j = 0; j < n; j += 2) x[3 * n + j] = NaN;
    x[3 * n + n - 1] = 50;
    for (let j = 0; j < n; j++) x[4 * n + j] = 0.25;
    const want = await host(cpu.argmax(cpu.upload(x, [rows, n])));
    assert.deepEqual(await down(argmaxGpu(gpu(), up(x), rows, n), 'i32', rows), want);
  }
});

test('embedding f32, bf16 and fp8 tables: equal to the CPU', async () => {
  const [V, d] = [19, 40];
  const ids = Int32Array.of(0, 18, 5, 5, 11, 3, 17);
  const vals = randomF32(V * d, 5, 3);
  const bo = 4;
  const bi = 16;
  const r = rng(6);
  const codes = Uint8Array.from({ length: V * d }, () => {
    const c = Math.floor(r() * 256);
    return (c & 0x7f) === 0x7f ? c - 1 : c; // no NaN codes
  });
  const scaleInv = Float32Array.from({ length: Math.ceil(V / bo) * Math.ceil(d / bi) }, () => 2 ** Math.floor(r() * 20 - 10) * (1 + r()));
  const weights: HostWeight[] = [
    { format: 'f32', outDim: V, inDim: d, data: vals },
    { format: 'bf16', outDim: V, inDim: d, data: Uint16Array.from(vals, f32ToBf16) },
    { format: 'fp8', outDim: V, inDim: d, data: codes, scaleInv, block: [bo, bi] },
  ];
  for (const w of weights) {
    const want = await host(cpu.embedding(cpu.uploadWeight(w), cpu.upload(ids, [ids.length])));
    const got = embeddingGpu(
      gpu(),
      {
        format: w.format,
        outDim: V,
        inDim: d,
        data: up(w.data),
        ...(w.format === 'fp8' ? { scales: up(w.scaleInv), block: w.block } : {}),
      },
      up(ids),
      ids.length,
    );
    assert.deepEqual(await down(got, 'f32', ids.length * d), want, w.format);
  }
});

for (const [dtype, width, n, colOffset] of [
  ['f32', 11, 5, 3],
  ['i32', 7, 7, 0],
  ['bf16', 10, 4, 6],
  ['u8', 24, 8, 12],
  // Rows, offsets or widths that are not whole words: element by element, neighbours in one word.
  ['bf16', 6, 4, 1],
  ['bf16', 7, 3, 4],
  ['u8', 10, 5, 3],
  ['u8', 9, 9, 0],
] as const) {
  test(`writeRows ${dtype} [slots, ${width}] ← [T, ${n}] at column ${colOffset}: equal to the CPU`, async () => {
    const pageSize = 4;
    const table = Int32Array.of(3, 0, 2);
    const slots = 16;
    const positions = Int32Array.of(0, 5, 9, 11, 2, 4);
    const T = positions.length;
    const dst = randomOf(dtype, slots * width, 7);
    const src = randomOf(dtype, T * n, 8);
    const d = cpu.upload(dst.slice(), [slots, width]);
    cpu.writeRows(d, { blockTable: cpu.upload(table, [3]), pageSize }, cpu.upload(positions, [T]), cpu.upload(src, [T, n]), colOffset);
    const db = up(dst);
    writeRowsGpu(gpu(), { dst: db, dtype, slots, width, table: up(table), nPages: 3, pageSize, positions: up(positions), src: up(src), rows: T, n, colOffset });
    assert.deepEqual(await down(db, dtype, slots * width), await host(d));
  });
}

test('writeRows: columns past the cache row are refused, naming the op', () => {
  const base = { dst: gpu().buffer(64), slots: 4, table: gpu().buffer(4), nPages: 1, pageSize: 4, positions: gpu().buffer(4), src: gpu().buffer(16), rows: 1 };
  assert.throws(() => writeRowsGpu(gpu(), { ...base, dtype: 'bf16', width: 8, n: 3, colOffset: 6 }), /writeRows/);
  assert.throws(() => writeRowsGpu(gpu(), { ...base, dtype: 'f32', width: 4, n: 3, colOffset: 2 }), /writeRows/);
});
