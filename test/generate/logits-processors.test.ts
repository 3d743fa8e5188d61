import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildLogitsProcessors,
  LogitBiasProcessor,
  MinPProcessor,
  MinTokensProcessor,
  PresenceFrequencyProcessor,
  RepetitionPenaltyProcessor,
  softmax,
  TemperatureProcessor,
  TopKProcessor,
  TopPProcessor,
  kthLargest,
} from '../../src/generate/logits-processors.js';
import { parseSamplingParams } from '../../src/generate/params.js';
import { Rng } from '../../src/generate/sampler.js';

/** Logits whose softmax is exactly `probs`. */
function logitsOf(probs: number[]): Float32Array {
  return Float32Array.from(probs, (p) => (p > 0 ? Math.log(p) : -Infinity));
}

function kept(scores: Float32Array): number[] {
  return [...scores.keys()].filter((i) => scores[i]! > -Infinity);
}

test('top-p keeps exactly the nucleus: the fewest most likely tokens reaching p', () => {
  const probs = [0.05, 0.4, 0.1, 0.25, 0.2];
  // Sorted: 0.4 (1), 0.25 (3), 0.2 (4), 0.1 (2), 0.05 (0); cumulative 0.4, 0.65, 0.85, 0.95, 1.
  const cases: Array<[number, number[]]> = [
    [0.3, [1]],
    [0.4, [1]],
    [0.41, [1, 3]],
    [0.65, [1, 3]],
    [0.7, [1, 3, 4]],
    [0.9, [1, 2, 3, 4]],
    [0.96, [0, 1, 2, 3, 4]],
    [1, [0, 1, 2, 3, 4]],
  ];
  for (const [p, want] of cases) {
    const s = logitsOf(probs);
    // 0.4 and 0.65 are reached only up to float32 rounding of the logits: ask a hair below.
    new TopPProcessor(p === 0.4 || p === 0.65 ? p - 1e-6 : p).apply(s);
    assert.deepEqual(kept(s), want, `top_p ${p}`);
  }
  // Kept tokens keep their logits; after renormalization their ratios are unchanged.
  const s = logitsOf(probs);
  new TopPProcessor(0.7).apply(s);
  const q = softmax(s);
  assert.ok(Math.abs(q[1]! / q[3]! - 0.4 / 0.25) < 1e-6);
  assert.ok(Math.abs(q[1]! - 0.4 / 0.85) < 1e-6);
});

test('top-p on random logits: kept mass ≥ p, and without its least likely token it would be < p', () => {
  const rng = new Rng(3);
  for (let trial = 0; trial < 60; trial++) {
    // Narrow spreads keep every token a candidate; wide ones (a large vocabulary) make the
    // processor sort only the likely tokens.
    const [n, spread] = trial % 2 === 0 ? [200, 4] : [20000, 40];
    const scores = Float32Array.from({ length: n }, () => spread * rng.next() ** 2 - spread / 2);
    const p = 0.05 + 0.9 * rng.next();
    const probs = softmax(scores);
    const s = Float32Array.from(scores);
    new TopPProcessor(p).apply(s);
    const ids = kept(s);
    const mass = ids.reduce((a, i) => a + probs[i]!, 0);
    const least = Math.min(...ids.map((i) => probs[i]!));
    assert.ok(mass >= p - 1e-12, `mass ${mass} < ${p}`);
    assert.ok(mass - least < p, 'not the fewest tokens');
    // Everything kept is at least as likely as everything dropped.
    const dropped = [...scores.keys()].filter((i) => s[i] === -Infinity);
    assert.ok(dropped.every((i) => probs[i]! <= least));
  }
});

test('kthLargest: the heap selection agrees with a sort', () => {
  const rng = new Rng(4);
  const v = Float32Array.from({ length: 5000 }, () => Math.round(100 * rng.next()) / 10);
  const sorted = v.slice().sort();
  for (const k of [1, 2, 7, 50, 600, 1024, 1025, 4999, 5000]) assert.equal(kthLargest(v, k), sorted[v.length - k], `k ${k}`);
});

test('top-k keeps the k largest (ties with the k-th stay); min-p keeps p ≥ min_p · p_max', () => {
  const s = Float32Array.from([1, 5, 3, 5, 2, 4]);
  new TopKProcessor(3).apply(s);
  assert.deepEqual(kept(s), [1, 3, 5]);
  const t = Float32Array.from([1, 5, 3, 4, 4]);
  new TopKProcessor(2).apply(t);
  assert.deepEqual(kept(t), [1, 3, 4], 'tie at the boundary');
  const all = Float32Array.from([1, 2]);
  new TopKProcessor(5).apply(all);
  assert.deepEqual(kept(all), [0, 1]);

  const m = logitsOf([0.5, 0.3, 0.1, 0.06, 0.04]);
  new MinPProcessor(0.19).apply(m); // keep p ≥ 0.095
  assert.deepEqual(kept(m), [0, 1, 2]);
});

test('temperature divides; logit bias adds; penalties follow OpenAI and transformers', () => {
  const s = Float32Array.from([2, -4, 1]);
  new TemperatureProcessor(0.5).apply(s);
  assert.deepEqual([...s], [4, -8, 2]);
  assert.throws(() => new TemperatureProcessor(0), /temperature/);

  const b = Float32Array.from([0, 0, 0]);
  new LogitBiasProcessor({ '2': -100, '0': 5, '99': 1 }).apply(b);
  assert.deepEqual([...b], [5, 0, -100]);

  const r = Float32Array.from([2, -2, 2, -2]);
  new RepetitionPenaltyProcessor(2, [0]).apply(r, [1, 1]);
  assert.deepEqual([...r], [1, -4, 2, -2]);

  const pf = Float32Array.from([1, 1, 1]);
  new PresenceFrequencyProcessor(0.5, 0.25).apply(pf, [0, 0, 0, 2]);
  assert.deepEqual([...pf], [1 - 0.5 - 0.75, 1, 1 - 0.5 - 0.25]);

  const mt = Float32Array.from([1, 1, 1]);
  new MinTokensProcessor(2, [2]).apply(mt, [0]);
  assert.equal(mt[2], -Infinity);
  const mt2 = Float32Array.from([1, 1, 1]);
  new MinTokensProcessor(2, [2]).apply(mt2, [0, 0]);
  assert.equal(mt2[2], 1);
});

test('buildLogitsProcessors: only what the request asks, in order; greedy skips temperature and filters', () => {
  const names = (input: Record<string, unknown>, eos: number[] = []) =>
    buildLogitsProcessors(parseSamplingParams(input), { eosTokenIds: eos }).processors.map((p) => p.constructor.name);
  assert.deepEqual(names({}), []);
  assert.deepEqual(names({ temperature: 0.7, top_k: 40, top_p: 0.9, min_p: 0.05, presence_penalty: 0.1, repetition_penalty: 1.1, logit_bias: { '1': 2 } }), [
    'LogitBiasProcessor',
    'RepetitionPenaltyProcessor',
    'PresenceFrequencyProcessor',
    'TemperatureProcessor',
    'TopKProcessor',
    'TopPProcessor',
    'MinPProcessor',
  ]);
  assert.deepEqual(names({ temperature: 0, top_k: 40, top_p: 0.9, frequency_penalty: 1 }), ['PresenceFrequencyProcessor']);
  assert.deepEqual(names({ min_tokens: 3 }, [1]), ['MinTokensProcessor']);
  assert.deepEqual(names({ min_tokens: 3, ignore_eos: true }, [1]), []);
});
