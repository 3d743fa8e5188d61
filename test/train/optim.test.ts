import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdamW } from '../../src/train/adamw.js';
import { clipGradNorm } from '../../src/train/clip.js';
import { learningRate } from '../../src/train/schedule.js';

test('AdamW: two steps against the formula, decay only where asked', () => {
  const opt = new AdamW({ beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.5 });
  const params = new Map([['w', Float32Array.of(1, -2)], ['n', Float32Array.of(3)]]);
  const g1 = new Map([['w', Float32Array.of(0.5, -1)], ['n', Float32Array.of(2)]]);
  opt.step(params, g1, 0.1, (name) => name === 'w');
  // Step 1: m̂ = g, v̂ = g², update = lr · g/|g| = ±0.1; decay 0.1·0.5·p.
  assert.ok(Math.abs(params.get('w')![0]! - (1 - 0.05 * 1 - 0.1)) < 1e-6);
  assert.ok(Math.abs(params.get('w')![1]! - (-2 + 0.05 * 2 + 0.1)) < 1e-6);
  assert.ok(Math.abs(params.get('n')![0]! - (3 - 0.1)) < 1e-6);
  const p0 = params.get('n')![0]!;
  opt.step(params, new Map([['n', Float32Array.of(-2)]]), 0.1, () => false);
  const m = 0.9 * 0.1 * 2 + 0.1 * -2;
  const v = 0.99 * 0.01 * 4 + 0.01 * 4;
  const want = p0 - (0.1 * (m / (1 - 0.81))) / (Math.sqrt(v / (1 - 0.9801)) + 1e-8);
  assert.ok(Math.abs(params.get('n')![0]! - want) < 1e-6, `${params.get('n')![0]} vs ${want}`);
  assert.equal(opt.t, 2);
});

test('learning rate: linear warm-up, cosine to the floor', () => {
  const s = { peak: 1, warmup: 4, total: 104, minRatio: 0.1 };
  assert.equal(learningRate(s, 0), 0.25);
  assert.equal(learningRate(s, 3), 1);
  assert.ok(Math.abs(learningRate(s, 4) - 1) < 1e-12);
  assert.ok(Math.abs(learningRate(s, 54) - 0.55) < 1e-12);
  assert.ok(Math.abs(learningRate(s, 104) - 0.1) < 1e-12);
  assert.ok(Math.abs(learningRate(s, 500) - 0.1) < 1e-12);
});

test('global-norm clipping scales all gradients together, only above the limit', () => {
  const a = Float32Array.of(3, 0);
  const b = Float32Array.of(0, 4);
  assert.equal(clipGradNorm([a, b], 10), 5);
  assert.deepEqual([...a, ...b], [3, 0, 0, 4]);
  assert.equal(clipGradNorm([a, b], 1), 5);
  assert.ok(Math.abs(Math.hypot(...a, ...b) - 1) < 1e-5);
  assert.ok(Math.abs(a[0]! / b[1]! - 0.75) < 1e-6);
});
