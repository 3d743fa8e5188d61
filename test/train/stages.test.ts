import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CpuTrainBackend } from '../../src/autograd/cpu-backend.js';
import { forward } from '../../src/train/forward.js';
import { TrainModel } from '../../src/train/model.js';
import { meanIndexerLoss, stageForward } from '../../src/train/stages.js';
import { defaultTrainOptions, Trainer } from '../../src/train/trainer.js';
import { CountLoader, tinyTrainConfig } from './model-helpers.js';

const backend = new CpuTrainBackend();

function snapshot(model: TrainModel): Map<string, Float32Array> {
  return new Map([...model.params].map(([k, v]) => [k, Float32Array.from(v)]));
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

test('dense stage: the LM loss falls on a learnable pattern; the indexer is untouched', () => {
  const model = TrainModel.init(tinyTrainConfig(), 3);
  const before = snapshot(model);
  const t = new Trainer(model, backend, new CountLoader(1, 32, 4, 16), defaultTrainOptions('dense', { steps: 40, batch: 4, seqLen: 16, lr: 3e-3, warmupSteps: 4 }));
  const losses: number[] = [];
  while (!t.done) losses.push(t.trainStep().lmLoss);
  const first = losses.slice(0, 3).reduce((a, b) => a + b) / 3;
  const last = losses.slice(-3).reduce((a, b) => a + b) / 3;
  assert.ok(first > 3, `initial loss ${first} ≈ ln 32`);
  assert.ok(last < first - 1, `loss fell from ${first.toFixed(3)} to ${last.toFixed(3)}`);
  for (const s of model.specs) {
    const same = sameBits(before.get(s.name)!, model.get(s.name));
    assert.equal(same, s.indexer, `${s.name}: ${s.indexer ? 'indexer must stay' : 'main weight must change'}`);
  }
});

test('warmup stage (Eq. 3): only the indexer changes, bit for bit, and its KL falls', () => {
  const model = TrainModel.init(tinyTrainConfig(), 4);
  const before = snapshot(model);
  const t = new Trainer(model, backend, new CountLoader(2, 32, 4, 16), defaultTrainOptions('warmup', { steps: 30, batch: 4, seqLen: 16, lr: 1e-2, warmupSteps: 2 }));
  const kls: number[] = [];
  while (!t.done) kls.push(t.trainStep().indexerKl!);
  for (const s of model.specs) {
    const same = sameBits(before.get(s.name)!, model.get(s.name));
    assert.equal(same, !s.indexer, `${s.name}: ${s.indexer ? 'indexer must change' : 'frozen weight must stay bit-identical'}`);
  }
  assert.ok(kls.at(-1)! < kls[0]! * 0.8, `KL fell from ${kls[0]} to ${kls.at(-1)}`);
});

test('sparse stage (Eq. 4): LM gradients never reach the indexer, KL gradients never reach the main model', () => {
  const model = TrainModel.init(tinyTrainConfig(), 5);
  const { inputs: ids, targets } = new CountLoader(3, 32, 2, 16).next();
  const run = (which: 'lm' | 'kl') => {
    const fwd = forward(model, backend, ids, targets, 2, 16, stageForward('sparse'));
    const kl = meanIndexerLoss(fwd.tape, fwd.indexerLosses)!;
    fwd.tape.backward(which === 'lm' ? fwd.lmLoss : kl);
    return { fwd, specs: model.specs };
  };
  const nonzero = (g: Float32Array | null) => g !== null && g.some((x) => x !== 0);
  const lm = run('lm');
  for (const s of lm.specs) {
    const grad = lm.fwd.vars.get(s.name)!.grad;
    if (s.indexer) assert.ok(!nonzero(grad), `LM loss reached indexer parameter ${s.name}`);
    else assert.ok(nonzero(grad), `LM loss must reach main parameter ${s.name}`);
  }
  const kl = run('kl');
  for (const s of kl.specs) {
    const grad = kl.fwd.vars.get(s.name)!.grad;
    if (s.indexer) assert.ok(nonzero(grad), `KL must reach indexer parameter ${s.name}`);
    else assert.ok(!nonzero(grad), `KL reached main parameter ${s.name}`);
  }
  // Sparse attention really is sparse: rows past k attend exactly k keys.
  const trace = forward(model, backend, ids, targets, 2, 16, { ...stageForward('sparse'), trace: true }).traces[0]!;
  for (let r = 0; r < 32; r++) assert.equal(trace.attended.offsets[r + 1]! - trace.attended.offsets[r]!, Math.min(4, (r % 16) + 1));
});

test('whole-model gradient (dense, LM loss) matches finite differences', () => {
  const model = TrainModel.init(tinyTrainConfig({ num_hidden_layers: 1 }), 6);
  const { inputs: ids, targets } = new CountLoader(4, 32, 1, 8).next();
  const opts = stageForward('dense');
  const fwd = forward(model, backend, ids, targets, 1, 8, opts);
  fwd.tape.backward(fwd.lmLoss);
  const loss = () => forward(model, backend, ids, targets, 1, 8, { ...opts, trainable: () => false }).lmLoss.data[0]!;
  const eps = 1e-2;
  for (const name of ['model.layers.0.self_attn.q_b_proj.weight', 'model.layers.0.self_attn.kv_b_proj.weight', 'model.layers.0.self_attn.kv_a_proj_with_mqa.weight', 'model.layers.0.input_layernorm.weight', 'model.embed_tokens.weight']) {
    const p = model.get(name);
    const grad = fwd.vars.get(name)!.grad!;
    // The 6 largest-gradient entries.
    const idx = [...grad.keys()].sort((a, b) => Math.abs(grad[b]!) - Math.abs(grad[a]!)).slice(0, 6);
    for (const i of idx) {
      const keep = p[i]!;
      p[i] = keep + eps;
      const up = loss();
      p[i] = keep - eps;
      const down = loss();
      p[i] = keep;
      const numeric = (up - down) / (2 * eps);
      assert.ok(Math.abs(numeric - grad[i]!) <= 0.03 * Math.abs(numeric) + 2e-4, `${name}[${i}]: analytic ${grad[i]} vs numeric ${numeric}`);
    }
  }
});
