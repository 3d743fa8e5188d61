import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attention } from '../../src/autograd/ops/attention.js';
import { add, mul, relu, scale, swiglu } from '../../src/autograd/ops/elementwise.js';
import { embedding } from '../../src/autograd/ops/embedding.js';
import { indexerScore } from '../../src/autograd/ops/indexer-score.js';
import { linear } from '../../src/autograd/ops/linear.js';
import { crossEntropy, klDivergence } from '../../src/autograd/ops/loss.js';
import { layerNorm, rmsNorm } from '../../src/autograd/ops/norm.js';
import { rope } from '../../src/autograd/ops/rope.js';
import { reshape, sliceCols } from '../../src/autograd/ops/shape.js';
import { logSoftmaxRows } from '../../src/autograd/ops/softmax.js';
import { causalKeys, topkKeys } from '../../src/autograd/keysets.js';
import { Var } from '../../src/autograd/var.js';
import { Rng } from '../../src/generate/sampler.js';
import { gradCheck, input, randn } from './gradcheck.js';

const rng = new Rng(42);

test('linear: gradients of x and w', () => {
  const x = input(rng, [5, 7]);
  const w = input(rng, [6, 7]);
  gradCheck('linear', [x, w], (g) => linear(g, x, w));
});

test('add, mul (element-wise and per-row), scale, relu, swiglu', () => {
  const a = input(rng, [4, 6]);
  const b = input(rng, [4, 6]);
  const rowScale = input(rng, [4, 1]);
  gradCheck('add', [a, b], (g) => add(g, a, b));
  gradCheck('mul', [a, b], (g) => mul(g, a, b));
  gradCheck('mul per row', [a, rowScale], (g) => mul(g, a, rowScale));
  gradCheck('scale', [a], (g) => scale(g, a, -0.7));
  gradCheck('relu', [a], (g) => relu(g, a), { eps: 1e-3 });
  gradCheck('swiglu', [a, b], (g) => swiglu(g, a, b));
});

test('reshape and sliceCols', () => {
  const x = input(rng, [3, 8]);
  gradCheck('reshape', [x], (g) => reshape(g, x, [3, 2, 4]));
  gradCheck('sliceCols', [x], (g) => sliceCols(g, x, 2, 5));
});

test('embedding scatters into the table (repeated ids accumulate)', () => {
  const table = input(rng, [5, 4]);
  gradCheck('embedding', [table], (g) => embedding(g, table, Int32Array.of(1, 3, 1, 0)));
  assert.throws(() => gradCheck('bad id', [table], (g) => embedding(g, table, Int32Array.of(5))), /outside the vocabulary/);
});

test('RMSNorm and LayerNorm: input, weight, bias', () => {
  const x = input(rng, [4, 8]);
  const w = input(rng, [8]);
  const b = input(rng, [8]);
  gradCheck('rmsNorm', [x, w], (g) => rmsNorm(g, x, w, 1e-6));
  gradCheck('layerNorm', [x, w, b], (g) => layerNorm(g, x, w, b, 1e-6));
});

test('RoPE interleaved and half-split on a sub-range of dims', () => {
  const x = input(rng, [3, 2, 10]);
  const half = 3;
  const cos = new Float32Array(4 * half);
  const sin = new Float32Array(4 * half);
  for (let p = 0; p < 4; p++) for (let i = 0; i < half; i++) [cos[p * half + i], sin[p * half + i]] = [Math.cos(p * (i + 1) * 0.7), Math.sin(p * (i + 1) * 0.7)];
  const pos = Int32Array.of(3, 1, 2);
  gradCheck('rope interleaved', [x], (g) => rope(g, x, 4, pos, { cos, sin, half }, true));
  gradCheck('rope half-split', [x], (g) => rope(g, x, 0, pos, { cos, sin, half }, false));
});

const dims = { heads: 2, dn: 3, dr: 2, dv: 4, scale: 0.6 };

test('attention (dense causal over two sequences): q, kv, kPe', () => {
  const keys = causalKeys(2, 4);
  const q = input(rng, [8, 2, 5]);
  const kv = input(rng, [8, 2, 7]);
  const kPe = input(rng, [8, 2]);
  gradCheck('attention dense', [q, kv, kPe], (g) => attention(g, q, kv, kPe, keys, dims).out);
});

test('attention over a sparse selection equals dense attention restricted to it', () => {
  const dense = causalKeys(1, 6);
  const sel = topkKeys(dense, randn(rng, dense.keys.length), 2);
  const q = input(rng, [6, 2, 5]);
  const kv = input(rng, [6, 2, 7]);
  const kPe = input(rng, [6, 2]);
  gradCheck('attention sparse', [q, kv, kPe], (g) => attention(g, q, kv, kPe, sel, dims).out);
});

test('indexer score: q, k, head weights', () => {
  const keys = causalKeys(2, 5);
  const q = input(rng, [10, 3, 4]);
  const k = input(rng, [10, 4]);
  const w = input(rng, [10, 3]);
  gradCheck('indexerScore', [q, k, w], (g) => indexerScore(g, q, k, w, keys, { heads: 3, dim: 4 }), { eps: 1e-3 });
});

test('log-softmax over variable rows, cross-entropy, KL', () => {
  const keys = causalKeys(1, 5);
  const x = input(rng, [keys.keys.length]);
  gradCheck('logSoftmaxRows', [x], (g) => logSoftmaxRows(g, x, keys.offsets));
  const logits = input(rng, [4, 6]);
  gradCheck('crossEntropy', [logits], (g) => crossEntropy(g, logits, Int32Array.of(1, 5, -1, 0)));
  const p = new Float32Array(keys.keys.length);
  for (let r = 0; r < 5; r++) {
    let s = 0;
    for (let i = keys.offsets[r]!; i < keys.offsets[r + 1]!; i++) s += (p[i] = rng.next());
    for (let i = keys.offsets[r]!; i < keys.offsets[r + 1]!; i++) p[i] /= s;
  }
  gradCheck('KL(p ‖ softmax(x))', [x], (g) => klDivergence(g, p, logSoftmaxRows(g, x, keys.offsets), keys.offsets));
});

test('KL(p ‖ softmax(x)) is zero exactly when softmax(x) = p', async () => {
  const { Tape } = await import('../../src/autograd/var.js');
  const { CpuTrainBackend } = await import('../../src/autograd/cpu-backend.js');
  const offsets = Int32Array.of(0, 3);
  const p = Float32Array.of(0.2, 0.3, 0.5);
  const x = new Var(Float32Array.from(p, Math.log), [3], true);
  const g = new Tape(new CpuTrainBackend());
  const kl = klDivergence(g, p, logSoftmaxRows(g, x, offsets), offsets);
  assert.ok(Math.abs(kl.data[0]!) < 1e-6);
});
