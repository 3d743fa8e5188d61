/** The inference model as a task scorer: the rows it returns are the prefill's logits at the asked positions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../../src/backend/cpu.js';
import { Model } from '../../src/model/model.js';
import { Rng } from '../../src/generate/sampler.js';
import { evaluate, modelLogitsFn, passkeyTask } from '../../src/train/tasks/index.js';
import { fixture } from '../helpers/fixtures.js';

test('modelLogitsFn: the asked rows of a chunked prefill, sparse or dense; evaluate runs on the real model', async () => {
  const model = Model.load(fixture('tiny-bf16'), new CpuBackend());
  const V = model.config.vocabSize;
  const task = passkeyTask(V);
  const L = 120; // longer than index_topk (64): DSA selects
  const sample = task.sample(L, new Rng(3));
  const tokens = sample.tokens.subarray(0, L);

  const all = Int32Array.from({ length: L }, (_, i) => i);
  const full = await modelLogitsFn(model, { chunk: 128 })(tokens, all);
  const asked = Int32Array.from([L - 1, 5, 70, 5]);
  const some = await modelLogitsFn(model, { chunk: 32 })(tokens, asked);
  assert.equal(some.length, 4 * V);
  asked.forEach((p, i) => {
    const a = full.subarray(p * V, (p + 1) * V);
    const b = some.subarray(i * V, (i + 1) * V);
    let diff = 0;
    for (let j = 0; j < V; j++) diff = Math.max(diff, Math.abs(a[j]! - b[j]!));
    assert.ok(diff < 1e-4, `position ${p}: chunked rows differ by ${diff}`);
  });
  const dense = await modelLogitsFn(model, { dense: true })(tokens, Int32Array.of(L - 1));
  assert.notDeepEqual(dense, full.subarray((L - 1) * V), 'dense attention differs from DSA past index_topk');

  const r = await evaluate(task, modelLogitsFn(model), { contextLength: 80, samples: 2, seed: 1 });
  assert.deepEqual([r.samples, r.questions], [2, 2]);
  assert.ok(r.accuracy >= 0 && r.accuracy <= 1 && Number.isFinite(r.tokenAccuracy));
  await assert.rejects(async () => modelLogitsFn(model)(Int32Array.of(1, V), Int32Array.of(0)), /token 1024 at position 1 is outside the model's vocabulary/);
});
