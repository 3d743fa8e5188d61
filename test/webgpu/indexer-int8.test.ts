/**
 * The int8 indexer experiment (kernels/indexer-int8.ts) against its CPU twin (src/bench/indexer-int8.ts):
 * the re-quantization pass code for code, and the scan's twin with plain i32 products through a
 * shuffled block table, runs of several tiles and masked rows.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { indexerScoresInt8Paged, int8Requant } from '../../src/bench/indexer-int8.js';
import { indexerInt8Available, indexerScoresInt8Gpu, requantInt8Gpu, type Int8ScanForm } from '../../src/backend/webgpu/kernels/indexer-int8.js';
import { f32ToE4m3 } from '../../src/numerics/e4m3.js';
import { readF32, rng, upload, useGpu } from './helpers.js';

const gpu = useGpu();

/** Random non-NaN e4m3 codes, a quarter subnormal or zero. */
function codes(n: number, r: () => number): Uint8Array {
  return Uint8Array.from({ length: n }, () => (r() < 0.5 ? 0x80 : 0) | ((r() < 0.25 ? 0 : 1 + Math.floor(r() * 14)) << 3) | Math.floor(r() * 8));
}

test('requantInt8Gpu: every row to round(127 · v / max|v|) (halves away from zero) with its scale, as the CPU twin', async () => {
  const g = gpu();
  const dim = 16;
  const r = rng(5);
  // Row 0: halves (127 · ±1 / 2 = ±63.5); row 1: zeros; the rest random.
  const fixed = [2, 1, -1, 0.5, ...new Array(12).fill(0), ...new Array(16).fill(0)];
  const c = Uint8Array.from([...fixed.map((v) => f32ToE4m3(v)), ...codes(62 * dim, r)]);
  const rows = c.length / dim;
  const scaleIn = Float32Array.from({ length: rows }, () => 0.1 + r());
  const got = requantInt8Gpu(g, upload(g, c), upload(g, scaleIn), rows, dim);
  const q = new Int8Array(await g.read(got.codes, rows * dim));
  const s = await readF32(g, got.scale, rows);
  const want = int8Requant(c, rows, dim);
  assert.deepEqual(Array.from(q.subarray(0, 4)), [127, 64, -64, 32]);
  assert.deepEqual(Array.from(q), Array.from(want.q));
  for (let i = 0; i < rows; i++) assert.equal(s[i], Math.fround(scaleIn[i]! * Math.fround(want.scale[i]!)), `row ${i} scale`);
  assert.equal(s[1], 0);
});

test('indexerScoresInt8Gpu (i32 products): tiles of 16, 32 or 64 keys, 1 to 4 subgroups, keys from the cache or staged (one or two tiles ahead), weights from shared memory or registers; two rows through a shuffled table, runs of 3 tiles, masked keys, equal the CPU twin', async (t) => {
  const g = gpu();
  const [heads, dim, pageSize, nKeys] = [64, 64, 64, 200];
  const forms: Int8ScanForm[] = [
    { scalar: true },
    { scalar: true, staged: true },
    { scalar: true, staged: true, wRegs: true },
    { scalar: true, staged: true, lateScale: true },
    { scalar: true, staged: true, wRegs: true, ahead: 2 },
    { scalar: true, kt: 64 },
    { scalar: true, kt: 64, staged: true, wRegs: true },
    { scalar: true, kt: 16, sgk: 1, sgh: 1, staged: true, wRegs: true },
    { scalar: true, kt: 32, sgk: 2, sgh: 1, staged: true, wRegs: true },
  ];
  if (!forms.every((f) => indexerInt8Available(g, heads, dim, pageSize, f))) {
    t.skip('the adapter lacks the shared memory');
    return;
  }
  const r = rng(9);
  const nPages = Math.ceil(nKeys / pageSize);
  const table = Int32Array.from({ length: nPages }, (_, i) => (i * 3 + 2) % nPages);
  const slots = nPages * pageSize;
  const kc = codes(slots * dim, r);
  const kScale = Float32Array.from({ length: slots }, () => 0.01 + r());
  const rows = 2;
  const q8 = codes(rows * heads * dim, r);
  const w = Float32Array.from({ length: rows * heads }, () => r() - 0.4);
  const positions = Int32Array.of(199, 90);
  const keys = requantInt8Gpu(g, upload(g, kc), upload(g, kScale), slots, dim);
  const qs = requantInt8Gpu(g, upload(g, q8), upload(g, w), rows * heads, dim);
  for (const form of forms) {
    const out = g.buffer(rows * nKeys * 4);
    indexerScoresInt8Gpu(g, { qI8: qs.codes, wq: qs.scale, kI8: keys.codes, kScale: keys.scale, table: upload(g, table), pageSize, positions: upload(g, positions), rows, heads, dim, nKeys }, out, null, { ...form, tilesPerGroup: 3 });
    const got = await readF32(g, out, rows * nKeys);
    const tag = JSON.stringify(form);
    for (let row = 0; row < rows; row++) {
      const n = positions[row]! + 1;
      const want = indexerScoresInt8Paged(q8.subarray(row * heads * dim, (row + 1) * heads * dim), heads, dim, w.subarray(row * heads, (row + 1) * heads), kc, kScale, table, pageSize, n);
      const scale = Math.max(...Array.from(want, Math.abs));
      assert.ok(scale > 0);
      for (let s = 0; s < nKeys; s++) {
        const v = got[row * nKeys + s]!;
        if (s >= n) assert.equal(v, -Infinity, `${tag} row ${row} key ${s} must be masked`);
        else assert.ok(Math.abs(v - want[s]!) <= 1e-5 * scale, `${tag} row ${row} key ${s}: ${v} vs ${want[s]}`);
      }
    }
  }
});
