import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CpuTrainBackend } from '../../src/autograd/cpu-backend.js';
import { CpuBackend } from '../../src/backend/cpu.js';
import { Model } from '../../src/model/model.js';
import { forward } from '../../src/train/forward.js';
import { loadTrainer, saveTrainer } from '../../src/train/checkpoint.js';
import { TrainModel } from '../../src/train/model.js';
import { stageForward, type Stage } from '../../src/train/stages.js';
import { defaultTrainOptions, Trainer } from '../../src/train/trainer.js';
import { CountLoader, tinyTrainConfig } from './model-helpers.js';
import { assertClose } from '../autograd/gradcheck.js';

const backend = new CpuTrainBackend();
const root = mkdtempSync(join(tmpdir(), 'dsa-train-ckpt-'));
after(() => rmSync(root, { recursive: true, force: true }));

for (const stage of ['dense', 'sparse'] as Stage[]) {
  test(`${stage}: a run killed after k steps and resumed gives the same losses, bit for bit`, () => {
    const opts = defaultTrainOptions(stage, { steps: 8, batch: 2, seqLen: 16, lr: 5e-3, warmupSteps: 2 });
    const straight = new Trainer(TrainModel.init(tinyTrainConfig(), 9), backend, new CountLoader(5, 32, 2, 16), opts);
    const want: number[] = [];
    while (!straight.done) want.push(straight.trainStep().loss);

    const first = new Trainer(TrainModel.init(tinyTrainConfig(), 9), backend, new CountLoader(5, 32, 2, 16), opts);
    const got: number[] = [];
    for (let i = 0; i < 3; i++) got.push(first.trainStep().loss);
    const dir = join(root, stage);
    saveTrainer(first, dir);
    const resumed = loadTrainer(dir, backend, new CountLoader(5, 32, 2, 16));
    assert.equal(resumed.step, 3);
    while (!resumed.done) got.push(resumed.trainStep().loss);
    assert.deepEqual(got, want);
    for (const [name, p] of straight.model.params) assert.deepEqual(resumed.model.get(name), p, name);
  });
}

test('a corrupt trainer state is reported by name', () => {
  const dir = join(root, 'dense');
  writeFileSync(join(dir, 'trainer_state.json'), '{"format":"x"}');
  assert.throws(() => loadTrainer(dir, backend, new CountLoader(5, 32, 2, 16)), /trainer_state\.json: not a dsa trainer state/);
  writeFileSync(join(dir, 'trainer_state.json'), '{oops');
  assert.throws(() => loadTrainer(dir, backend, new CountLoader(5, 32, 2, 16)), /trainer_state\.json: not valid JSON/);
});

test('a trained checkpoint loads in the inference engine, whose logits match training', async () => {
  const model = TrainModel.init(tinyTrainConfig(), 11);
  const t = new Trainer(model, backend, new CountLoader(6, 32, 2, 16), defaultTrainOptions('dense', { steps: 3, batch: 2, seqLen: 16 }));
  while (!t.done) t.trainStep();
  const dir = join(root, 'infer');
  model.save(dir);
  const { inputs: ids, targets } = new CountLoader(7, 32, 1, 12).next();
  const train = forward(model, backend, ids, targets, 1, 12, { ...stageForward('dense'), trainable: () => false }).logits.data;
  const cpu = new CpuBackend();
  const engine = Model.load(dir, cpu);
  const seq = engine.createCache(64).newSequence();
  const out = engine.step(seq, ids, { mode: 'prefill', dense: true }, 'all')!;
  const infer = (await cpu.read(out)) as Float32Array;
  assertClose(infer, train, 1e-4, 'inference vs training logits');
});
