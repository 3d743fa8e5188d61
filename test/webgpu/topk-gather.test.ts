/**
 * The WebGPU top-k variants on many rows of long keys (the batched decode shape the 'gather' form is
 * for), each against the CPU twin (topkRowsRadix) and an independent sort-based reference:
 * rows of different lengths around chunk boundaries, ties around the threshold, ±0, k above the
 * valid keys, rows with none, and the scratch state left clean for the next call.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TOPK_VARIANTS, topkGpu, topkVariantFor, type TopkVariant } from '../../src/backend/webgpu/kernels/topk.js';
import { refineWorkgroup, topkGatherGpu } from '../../src/backend/webgpu/kernels/topk-gather.js';
import { topkRowsRadix } from '../../src/backend/cpu/kernels/topk-radix.js';
import { rng, upload, useGpu } from './helpers.js';

const gpu = useGpu();

/** By sorting: the first k of (score descending, position ascending), then ascending, −1 padded. */
function bySort(scores: Float32Array, rows: number, nKeys: number, k: number, positions: Int32Array): Int32Array {
  const width = Math.min(k, nKeys);
  const out = new Int32Array(rows * width).fill(-1);
  for (let t = 0; t < rows; t++) {
    const valid = Math.max(0, Math.min(positions[t]! + 1, nKeys));
    const idx = Array.from({ length: valid }, (_, s) => s);
    // −0 and +0 compare equal here (a − b is 0), as the contract says.
    idx.sort((a, b) => scores[t * nKeys + b]! - scores[t * nKeys + a]! || a - b);
    const take = idx.slice(0, Math.min(k, valid)).sort((a, b) => a - b);
    out.set(take, t * width);
  }
  return out;
}

async function run(scores: Float32Array, rows: number, nKeys: number, k: number, positions: Int32Array, variant: TopkVariant): Promise<Int32Array> {
  const width = Math.min(k, nKeys);
  const s = upload(gpu(), scores);
  const p = upload(gpu(), positions);
  const out = topkGpu(gpu(), s, p, rows, nKeys, k, variant);
  const got = new Int32Array(await gpu().read(out, rows * width * 4));
  for (const b of [s, p, out]) gpu().release(b);
  return got;
}

async function check(label: string, scores: Float32Array, rows: number, nKeys: number, k: number, positions: Int32Array, sorted = true): Promise<void> {
  const want = topkRowsRadix(scores, rows, nKeys, k, positions);
  if (sorted) assert.deepEqual(want, bySort(scores, rows, nKeys, k, positions), `${label}: the CPU twin equals the sort`);
  const width = Math.min(k, nKeys);
  for (const variant of TOPK_VARIANTS) {
    const got = await run(scores, rows, nKeys, k, positions, variant);
    for (let t = 0; t < rows; t++) {
      const g = got.subarray(t * width, (t + 1) * width);
      const w = want.subarray(t * width, (t + 1) * width);
      if (!g.every((x, i) => x === w[i])) {
        const i = g.findIndex((x, j) => x !== w[j]);
        assert.fail(`${label}, ${variant}, k ${k}: row ${t} (position ${positions[t]}) differs first at ${i}: ${g[i]} vs ${w[i]}`);
      }
    }
  }
}

test('topk variants: 24 rows of 20000 keys, lengths around the chunk sizes (1024, 2048, 4096), none, k above the valid keys', async () => {
  const r = rng(11);
  const rows = 24;
  const nKeys = 20000;
  const scores = Float32Array.from({ length: rows * nKeys }, () => (r() - 0.5) * 8);
  const lengths = [20000, 19999, 4096, 4095, 4097, 8192, 8193, 2048, 2047, 1024, 1025, 0, 1, 2048 + 1, 12289, 16383, 16384, 3000, 2049, 7, 100, 0, 15000, 20000];
  const positions = Int32Array.from(lengths, (n) => n - 1);
  positions[21] = -5; // a row with no keys by a negative position
  positions[23] = 99999; // a position past the row: every key
  for (const k of [2048, 1, 3000, 25000]) await check('mixed lengths', scores, rows, nKeys, k, positions);
});

test('topk variants: ties around the threshold (few distinct values, ±0, long runs of equal keys)', async () => {
  const r = rng(12);
  const rows = 6;
  const nKeys = 40000;
  const scores = new Float32Array(rows * nKeys);
  for (let i = 0; i < scores.length; i++) scores[i] = Math.floor(r() * 9) - 4; // 9 levels: thousands of ties per level
  // Row 1: all +0 and −0 (one key), row 2: every key equal, row 3: scores sharing their top 22 bits
  // (a threshold bin that the refine digits must split), row 4: equal runs across chunk boundaries.
  for (let s = 0; s < nKeys; s++) scores[nKeys + s] = s % 2 === 0 ? -0 : 0;
  scores.fill(0.75, 2 * nKeys, 3 * nKeys);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let s = 0; s < nKeys; s++) {
    f[0] = 1.5;
    u[0] = (u[0]! & ~0x3ff) | Math.floor(r() * 4);
    scores[3 * nKeys + s] = f[0]!;
  }
  for (let s = 0; s < nKeys; s++) scores[4 * nKeys + s] = Math.floor(s / 3000) % 2 === 0 ? 1 : -1;
  const positions = Int32Array.of(nKeys - 1, nKeys - 1, 30000, nKeys - 1, 33333, 4096);
  for (const k of [2048, 2047, 5001]) await check('ties', scores, rows, nKeys, k, positions);
});

test('topk variants: the tie rule is exact (equal keys go to the lowest positions) — a broken rule fails here', async () => {
  // Every row holds exactly 100 keys above 1 and thousands equal to 1 after them and before them:
  // k = 2048 takes the 100 and then the lowest-positioned 1948 ones.
  const rows = 4;
  const nKeys = 70000;
  const scores = new Float32Array(rows * nKeys).fill(1);
  for (let t = 0; t < rows; t++) for (let i = 0; i < 100; i++) scores[t * nKeys + 5000 + 600 * i + t] = 2 + i;
  const positions = Int32Array.of(nKeys - 1, 65535, 40000, 12000);
  const want = bySort(scores, rows, nKeys, 2048, positions);
  for (const variant of TOPK_VARIANTS) {
    const got = await run(scores, rows, nKeys, 2048, positions, variant);
    assert.deepEqual(got, want, variant);
    // Spelled out for row 0: the ones at 0..1947 less the big keys among them, then the big keys.
    const row0 = new Set(got.subarray(0, 2048));
    for (let i = 0; i < 100; i++) assert.ok(row0.has(5000 + 600 * i), `${variant}: big key ${i}`);
    for (let s = 0; s < 1948; s++) assert.ok(row0.has(s), `${variant}: tie at ${s} taken`);
    assert.ok(!row0.has(1948), `${variant}: tie at 1948 not taken`);
    assert.equal(got[2047], 5000 + 600 * 99, `${variant}: the last selected position is the last big key`);
  }
  await check('tie rule', scores, rows, nKeys, 2048, positions);
});

test('topk variants: many long rows in one grid (16 × 65536, k 2048), two calls in a row leave no state behind', async () => {
  const r = rng(13);
  const rows = 16;
  const nKeys = 65536;
  const scores = Float32Array.from({ length: rows * nKeys }, () => Math.fround((r() - 0.3) * (r() < 0.01 ? 100 : 1)));
  const positions = Int32Array.from({ length: rows }, (_, t) => nKeys - 1 - 4093 * t);
  await check('long rows', scores, rows, nKeys, 2048, positions, false);
  // The same rows again, then different ones: the histogram and counters were cleared by the first.
  await check('long rows again', scores, rows, nKeys, 2048, positions, false);
  const fewer = Int32Array.from({ length: 3 }, (_, t) => 1000 + 30000 * t);
  await check('long rows, three', scores.subarray(0, 3 * nKeys), 3, nKeys, 2048, fewer, false);
  // Chunks of 4096 keys (16 rows), 1024 (3 rows) and here 2048 (8 rows: 256 workgroups).
  await check('long rows, eight', scores.subarray(0, 8 * nKeys), 8, nKeys, 2048, positions.subarray(8), false);
});

test('topk gather: both scan forms (subgroups, workgroup memory) and both refine widths equal the CPU twin', async () => {
  const r = rng(14);
  const rows = 5;
  const nKeys = 30000;
  // Few levels (ties, many candidates) in rows 0–2, continuous scores in rows 3–4.
  const scores = Float32Array.from({ length: rows * nKeys }, (_, i) => (i < 3 * nKeys ? Math.floor(r() * 6) * 0.5 : (r() - 0.5) * 10));
  const positions = Int32Array.of(nKeys - 1, 20000, 4096, nKeys - 1, 17000);
  const want = topkRowsRadix(scores, rows, nKeys, 2048, positions);
  // lavapipe has subgroups (of 8) and allows 1024 invocations: all four forms run there.
  assert.equal(refineWorkgroup(gpu()), 1024);
  assert.ok(gpu().features.has('subgroups'));
  const s = upload(gpu(), scores);
  const p = upload(gpu(), positions);
  for (const refineWg of [256, 1024] as const) {
    for (const subgroups of [false, true]) {
      const out = gpu().buffer(rows * 2048 * 4);
      topkGatherGpu(gpu(), s, p, out, rows, nKeys, 2048, 2048, refineWg, subgroups);
      assert.deepEqual(new Int32Array(await gpu().read(out, rows * 2048 * 4)), want, `refine ${refineWg}, subgroups ${subgroups}`);
      gpu().release(out);
    }
  }
  for (const b of [s, p]) gpu().release(b);
});

test('topk: the default variant by shape (single below GATHER_FROM keys, gather for long decode rows, multi for long prefill chunks)', () => {
  assert.equal(topkVariantFor(gpu(), 16, 4096), 'single');
  assert.equal(topkVariantFor(gpu(), 16, 131072), 'gather');
  assert.equal(topkVariantFor(gpu(), 1, 32768), 'gather');
  assert.equal(topkVariantFor(gpu(), 1, 8192), 'single');
  assert.equal(topkVariantFor(gpu(), 1024, 65536), 'multi', 'a long prefill chunk keeps the small scratch of multi');
});
