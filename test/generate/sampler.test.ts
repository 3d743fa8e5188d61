import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, Rng, sampleCategorical, Sampler, seedToU32, TokenSampler } from '../../src/generate/sampler.js';
import { parseSamplingParams } from '../../src/generate/params.js';

function logitsOf(probs: number[]): Float32Array {
  return Float32Array.from(probs, (p) => Math.log(p));
}

function randomLogits(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => 6 * rng.next() - 3);
}

/** Draws n tokens with a fresh sampler, each from its own logits row (seeded separately). */
function draw(params: Record<string, unknown>, rows: Float32Array[]): number[] {
  const s = new TokenSampler(parseSamplingParams(params));
  return rows.map((r) => s.sample(r));
}

test('the same seed reproduces the same tokens; another seed draws others', () => {
  const rng = new Rng(1);
  const rows = Array.from({ length: 64 }, () => randomLogits(rng, 1000));
  const params = { temperature: 0.9, top_p: 0.95, top_k: 100, min_p: 0.01, seed: 1234 };
  const a = draw(params, rows);
  assert.deepEqual(draw(params, rows), a);
  assert.notDeepEqual(draw({ ...params, seed: 1235 }, rows), a);
  assert.equal(new TokenSampler(parseSamplingParams({ seed: 7 })).seed, 7);
  // High seed bits matter.
  assert.notEqual(seedToU32(2 ** 33 + 5), seedToU32(5));
  // Without a seed, two requests draw independently.
  const unseeded = [draw({}, rows), draw({}, rows)];
  assert.notDeepEqual(unseeded[0], unseeded[1]);
});

test('draws follow the softmax distribution (temperature 1) and its sharpened form (temperature 0.5)', () => {
  const probs = [0.1, 0.2, 0.3, 0.4];
  const n = 20000;
  for (const [temperature, expected] of [
    [1, probs],
    [0.5, probs.map((p) => (p * p) / 0.3)],
  ] as const) {
    const s = new TokenSampler(parseSamplingParams({ temperature, seed: 99 }));
    const counts = [0, 0, 0, 0];
    const logits = logitsOf(probs);
    for (let i = 0; i < n; i++) counts[s.sample(logits)]!++;
    for (let i = 0; i < 4; i++) {
      // 4.5 standard deviations of a binomial proportion.
      const tol = 4.5 * Math.sqrt((expected[i]! * (1 - expected[i]!)) / n);
      assert.ok(Math.abs(counts[i]! / n - expected[i]!) < tol, `T ${temperature} token ${i}: ${counts[i]! / n} vs ${expected[i]}`);
    }
  }
});

test('filters hold: top-k / top-p / min-p never draw a filtered token, and draw every kept one', () => {
  const probs = [0.3, 0.25, 0.2, 0.15, 0.06, 0.04];
  const logits = logitsOf(probs);
  const seen = (params: Record<string, unknown>) => {
    const s = new TokenSampler(parseSamplingParams({ ...params, seed: 5 }));
    const set = new Set<number>();
    for (let i = 0; i < 3000; i++) set.add(s.sample(logits));
    return [...set].sort();
  };
  assert.deepEqual(seen({ top_k: 2 }), [0, 1]);
  assert.deepEqual(seen({ top_p: 0.7 }), [0, 1, 2]);
  assert.deepEqual(seen({ min_p: 0.5 }), [0, 1, 2]);
  assert.deepEqual(seen({ top_k: 4, top_p: 0.5 }), [0, 1]);
  assert.deepEqual(seen({}), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(seen({ logit_bias: { '5': -100 } }), [0, 1, 2, 3, 4]);
});

test('greedy: argmax, after penalties; the logits passed in are not modified', () => {
  const logits = Float32Array.from([1, 3, 2.9, 0]);
  const copy = Float32Array.from(logits);
  const g = new TokenSampler(parseSamplingParams({ temperature: 0, top_k: 1, seed: 0 }));
  assert.deepEqual([g.sample(logits), g.sample(logits)], [1, 1]);
  const p = new TokenSampler(parseSamplingParams({ temperature: 0, presence_penalty: 0.5 }));
  assert.deepEqual([p.sample(logits), p.sample(logits), p.sample(logits)], [1, 2, 1]);
  assert.deepEqual(p.generated, [1, 2, 1]);
  assert.deepEqual(logits, copy);
  const r = new TokenSampler(parseSamplingParams({ temperature: 0, repetition_penalty: 2 }), { promptIds: [1] });
  assert.equal(r.sample(logits), 2);
});

test('min_tokens: EOS cannot be drawn before the minimum', () => {
  const logits = Float32Array.from([0, 10, 0]); // EOS (1) dominates
  const s = new TokenSampler(parseSamplingParams({ temperature: 0, min_tokens: 2 }), { eosTokenIds: [1] });
  assert.deepEqual([s.sample(logits), s.sample(logits), s.sample(logits)], [0, 0, 1]);
});

test('Sampler keeps its API and draws: temperature sampling = sampleCategorical on the same generator', () => {
  const rng = new Rng(2);
  const rows = Array.from({ length: 32 }, () => randomLogits(rng, 300));
  const s = new Sampler(0.8, 42);
  // The tokens the Sampler drew before sampleCategorical was split out of it (commit 79cedbf).
  const before = [200, 34, 23, 0, 268, 51, 294, 230, 165, 168, 54, 74, 30, 157, 202, 258, 64, 14, 264, 134, 9, 158, 187, 272, 20, 276, 261, 193, 229, 191, 261, 204];
  assert.deepEqual(rows.map((r) => s.sample(r)), before);
  const ref = new Rng(42);
  assert.deepEqual(rows.map((r) => sampleCategorical(r, ref, 0.8)), before);
  const g = new Sampler(0, 1);
  for (const r of rows) assert.equal(g.sample(r), argmax(r));
  assert.throws(() => new Sampler(-1, 0), /temperature/);
  // A -Infinity logit is never drawn.
  const masked = Float32Array.from([0, -Infinity, 0]);
  const t = new Rng(3);
  for (let i = 0; i < 500; i++) assert.notEqual(sampleCategorical(masked, t), 1);
});
