/** The int8 indexer study (dsa bench indexer-int8): its re-quantization, scores and recall. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { indexerScores } from '../../src/backend/cpu/kernels/indexer.js';
import { indexerScoresInt8, int8Requant, int8Study, recall, topkSet } from '../../src/bench/indexer-int8.js';
import { E4M3_TABLE, f32ToE4m3 } from '../../src/numerics/e4m3.js';

test('int8Requant: each row to round(127 · v / max|v|) with scale max|v| / 127; a zero row stays zero', () => {
  const values = [448, -224, 1, 0, 0, 0, 0, 0, -2, 0.5, 0.25, 0.125];
  const codes = Uint8Array.from(values, (v) => f32ToE4m3(v));
  const { q, scale } = int8Requant(codes, 3, 4);
  assert.deepEqual(Array.from(q), [127, -64, 0, 0, 0, 0, 0, 0, -127, 32, 16, 8]); // −63.5 → −64: halves away from zero
  assert.deepEqual(Array.from(scale), [448 / 127, 0, 2 / 127]);
});

test('indexerScoresInt8: equals the FP8 reference where int8 holds the values exactly', () => {
  // Each vector's entries are −a, 0 or a (a an e4m3 value per vector): int8 holds them as ∓127, 0,
  // ±127 with scale a / 127, so the int8 scores are the FP8 ones up to rounding.
  const heads = 3;
  const dim = 8;
  const nKeys = 10;
  const amps = [0.5, 2, 0.125, 4];
  const row = (seed: number) => {
    const a = amps[seed % amps.length]!;
    return Array.from({ length: dim }, (_, d) => (d === 0 ? a : (((seed * 7 + d * 5) % 3) - 1) * a));
  };
  const enc = (rows: number[][]) => Uint8Array.from(rows.flat(), (v) => f32ToE4m3(v));
  const q8 = enc(Array.from({ length: heads }, (_, h) => row(h + 1)));
  const k8 = enc(Array.from({ length: nKeys }, (_, s) => row(s + 5)));
  for (let i = 0; i < k8.length; i++) assert.ok([0, 0.5, 2, 0.125, 4].includes(Math.abs(E4M3_TABLE[k8[i]!]!)), 'the test values are e4m3-exact');
  const w = Float32Array.of(0.5, -0.25, 1);
  const kScale = Float32Array.from({ length: nKeys }, (_, s) => 1 + s / 16);
  const want = indexerScores(q8, 1, heads, dim, w, k8, kScale, { table: Int32Array.of(0), pageSize: nKeys }, nKeys, Int32Array.of(nKeys - 1));
  const got = indexerScoresInt8(q8, heads, dim, w, k8, kScale, nKeys);
  let nonzero = 0;
  for (let s = 0; s < nKeys; s++) {
    assert.ok(Math.abs(got[s]! - want[s]!) <= 1e-6 * Math.max(1, Math.abs(want[s]!)), `key ${s}: ${got[s]} vs ${want[s]}`);
    if (want[s] !== 0) nonzero++;
  }
  assert.ok(nonzero >= 3, `${nonzero} keys score above zero`);
});

test('topkSet and recall: the k largest (ties by index), and the share of one set inside another', () => {
  assert.deepEqual([...topkSet([3, 1, 3, 2], 2)].sort(), [0, 2]);
  assert.deepEqual([...topkSet([1, 1, 1], 2)].sort(), [0, 1]);
  assert.equal(recall(new Set([1, 2, 3, 4]), new Set([2, 4, 9])), 0.5);
  assert.equal(recall(new Set(), new Set([1])), 1);
});

test('int8Study: a small draw agrees closely but not trivially with the FP8 reference', () => {
  const r = int8Study('normal', 512, { heads: 8, dim: 32, topk: 64, trials: 2, seed: 3 });
  assert.equal(r.topk, 64);
  assert.ok(r.recallMean > 0.8 && r.recallMean <= 1, `recall ${r.recallMean}`);
  assert.ok(r.recallMin <= r.recallMean && r.headRecallMin <= r.headRecallMean);
  assert.ok(r.fp8VsExactMean > 0.7 && r.fp8VsExactMean < 1, `FP8 against the unquantized vectors: ${r.fp8VsExactMean}`);
});
