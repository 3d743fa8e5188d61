import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { MixedBatchLoader, openTrainingData, TokenBatchLoader, writeTokenFile } from '../../src/train/data/index.js';
import { TaskBatchLoader } from '../../src/train/tasks/index.js';
import { tempDir } from './helpers.js';

const dir = tempDir('dsa-dataset-');

test('training data from a token file, a task, or both', () => {
  const file = path.join(dir, 'train.bin');
  writeTokenFile(file, Int32Array.from({ length: 10_000 }, (_, i) => i % 200), 256);
  const shape = { seqLen: 64, batchSize: 4, seed: 3, vocabSize: 256 };

  const tokens = openTrainingData({ data: file, ...shape, valFraction: 0.1, valBatches: 2 });
  assert.ok(tokens.train instanceof TokenBatchLoader);
  assert.equal(tokens.describe, `${file}: 10000 tokens (9000 train, 1000 validation)`);
  assert.deepEqual(tokens.val.map((b) => [b.batchSize, b.mask]), [[4, null], [4, null]]);
  assert.equal(tokens.val[0]!.inputs[0], 9000 % 200);
  tokens.close();

  const task = openTrainingData({ task: 'passkey', ...shape, valBatches: 3 });
  assert.ok(task.train instanceof TaskBatchLoader);
  assert.equal(task.val.length, 3);
  assert.equal(task.val[0]!.mask!.reduce((a, v) => a + v, 0), 4 * 4);
  assert.notDeepEqual(task.val[0]!.inputs, task.train.batchAt(0).inputs);

  const mix = openTrainingData({ data: file, task: 'recall', taskOptions: { pairs: 4, queries: 2 }, taskWeight: 0.25, ...shape });
  assert.ok(mix.train instanceof MixedBatchLoader);
  assert.ok(mix.valTokens.length > 0 && mix.valTokens.every((b) => b.mask === null));
  assert.ok(mix.valTask.length > 0 && mix.valTask.every((b) => b.mask !== null));
  assert.deepEqual(mix.val, [...mix.valTokens, ...mix.valTask]);
  assert.match(mix.describe, /\+ task recall\(V=256,keyLength=1,valueLength=1,pairs=4,queries=2\)$/);
  mix.close();

  assert.throws(() => openTrainingData({ data: file, ...shape, vocabSize: 128 }), /its vocabulary \(256 ids\) is larger than the model's \(128\)/);
  assert.throws(() => openTrainingData({ ...shape }), /no training data/);
  assert.throws(() => openTrainingData({ data: file, task: 'passkey', taskWeight: 1, ...shape }), /task weight must be in \(0, 1\)/);
});
