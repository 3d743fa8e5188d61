/**
 * The WebGPU radix-select top-k against its CPU twin (topkRowsRadix): random rows, rows with many
 * exact ties (and ±0), −∞ masks, rows with fewer valid keys than k, rows with no valid keys.
 * The outputs must be identical (same sets, ties to the lowest positions, ascending, −1 padded).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TOPK_VARIANTS, topkGpu, type TopkVariant } from '../../src/backend/webgpu/kernels/topk.js';
import { topkRowsRadix } from '../../src/backend/cpu/kernels/topk-radix.js';
import { topkRows } from '../../src/backend/cpu/kernels/topk.js';
import { rng, upload, useGpu } from './helpers.js';

const gpu = useGpu();

async function check(scores: Float32Array, rows: number, nKeys: number, k: number, positions: Int32Array): Promise<void> {
  const want = topkRowsRadix(scores, rows, nKeys, k, positions);
  assert.deepEqual(want, topkRows(scores, rows, nKeys, k, positions), 'the CPU twins agree');
  for (const variant of TOPK_VARIANTS) await checkVariant(want, scores, rows, nKeys, k, positions, variant);
}

async function checkVariant(want: Int32Array, scores: Float32Array, rows: number, nKeys: number, k: number, positions: Int32Array, variant: TopkVariant): Promise<void> {
  const width = Math.min(k, nKeys);
  const out = topkGpu(gpu(), upload(gpu(), scores), upload(gpu(), positions), rows, nKeys, k, variant);
  const got = new Int32Array(await gpu().read(out, rows * width * 4));
  for (let t = 0; t < rows; t++) {
    assert.deepEqual(Array.from(got.subarray(t * width, (t + 1) * width)), Array.from(want.subarray(t * width, (t + 1) * width)), `${variant}: row ${t}`);
  }
}

test('topk: random rows (causal positions, several chunks of 256)', async () => {
  const r = rng(1);
  const rows = 6;
  const nKeys = 700;
  const scores = Float32Array.from({ length: rows * nKeys }, () => (r() - 0.5) * 100);
  const positions = Int32Array.of(699, 300, 256, 255, 50, 1000);
  for (const k of [1, 16, 64, 257]) await check(scores, rows, nKeys, k, positions);
});

test('topk: many exact ties (few distinct values, ±0, negatives) go to the lowest positions', async () => {
  const r = rng(2);
  const rows = 5;
  const nKeys = 600;
  const values = [0, -0, 1.5, -2, 3, 3, 3, -0.5, 1e-40, -1e-40];
  const scores = Float32Array.from({ length: rows * nKeys }, () => values[Math.floor(r() * values.length)]!);
  // One row entirely equal, one row of ±0 only.
  scores.fill(7, 2 * nKeys, 3 * nKeys);
  for (let s = 0; s < nKeys; s++) scores[3 * nKeys + s] = s % 3 === 0 ? -0 : 0;
  const positions = Int32Array.of(599, 599, 599, 400, 123);
  for (const k of [1, 5, 100, 300, 599]) await check(scores, rows, nKeys, k, positions);
});

test('topk: −∞ masks, rows with fewer valid keys than k, rows with none', async () => {
  const r = rng(3);
  const rows = 6;
  const nKeys = 40;
  const scores = new Float32Array(rows * nKeys).fill(-Infinity);
  const positions = Int32Array.of(39, 20, 5, 0, -1, 30);
  for (let t = 0; t < rows; t++) {
    for (let s = 0; s <= Math.min(positions[t]!, nKeys - 1); s++) scores[t * nKeys + s] = r() < 0.3 ? -Infinity : r() - 0.5;
  }
  for (const k of [3, 8, 40, 64]) await check(scores, rows, nKeys, k, positions);
});

test('topk: ties spread over many invocations\' runs of positions (S 5000, 7 distinct values)', async () => {
  const r = rng(4);
  const rows = 2;
  const nKeys = 5000;
  const scores = Float32Array.from({ length: rows * nKeys }, () => Math.floor(r() * 7) - 3);
  const positions = Int32Array.of(4999, 3001);
  for (const k of [300, 2048]) await check(scores, rows, nKeys, k, positions);
});

test('topk: rows of several chunks of the multi-workgroup form (S 20000, ties across chunks, short rows)', async () => {
  const r = rng(5);
  const rows = 3;
  const nKeys = 20000;
  const scores = Float32Array.from({ length: rows * nKeys }, (_, i) => (i % 3 === 0 ? Math.floor(r() * 5) : (r() - 0.5) * 50));
  const positions = Int32Array.of(19999, 9000, 4095);
  for (const k of [2048, 5000]) await check(scores, rows, nKeys, k, positions);
});
