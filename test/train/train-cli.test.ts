import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readMetrics } from '../../src/train/metrics.js';
import { cli } from '../helpers/cli.js';
import { tinyTrainConfig } from './model-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'dsa-train-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));
const config = join(root, 'config.json');
writeFileSync(config, JSON.stringify(tinyTrainConfig({ vocab_size: 40, index_topk: 4 })));
const task = ['--task', 'recall', '--pairs', '2', '--queries', '2'];
const shape = ['--batch', '2', '--seq-len', '32'];

test('dsa train: dense → resume → warmup → sparse, then dsa eval', async () => {
  const dense = join(root, 'dense');
  let r = await cli(['train', '--stage', 'dense', '--config', config, ...task, ...shape, '--steps', '3', '--out', dense, '--save-every', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /dense: step 3, loss \d/);
  assert.match(r.stderr, /stage dense, .*task recall/);
  for (const f of ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json', 'metrics.jsonl']) assert.ok(existsSync(join(dense, f)), f);
  r = await cli(['train', '--stage', 'dense', ...task, '--steps', '5', '--out', dense, '--resume']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /resuming .* at step 3\/5/);
  const { records } = readMetrics(join(dense, 'metrics.jsonl'));
  assert.deepEqual(records.map((x) => x.step), [1, 2, 3, 4, 5]);
  assert.ok(records.every((x) => typeof x.loss === 'number' && typeof x.tokens_per_s === 'number' && x.stage === 'dense'));

  const warm = join(root, 'warm');
  r = await cli(['train', '--stage', 'warmup', '--model', dense, ...task, ...shape, '--steps', '2', '--out', warm]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /indexer KL/);
  const sparse = join(root, 'sparse');
  r = await cli(['train', '--stage', 'sparse', '--model', warm, ...task, ...shape, '--steps', '2', '--topk', '4', '--out', sparse]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /top-k 4 \(k\/L = 1\/8\.0\)/);

  const json = join(root, 'eval.json');
  r = await cli(['eval', '--model', sparse, ...task, '--seq-len', '32', '--topk', '4', '--samples', '4', '--batches', '1', '--batch', '2', '--json', json]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /LM loss .* dense \d.*DSA top-4/);
  assert.match(r.stdout, /indexer recall at top-4 .*per layer: [\d.]+%, [\d.]+%/);
  const report = JSON.parse(readFileSync(json, 'utf8'));
  assert.deepEqual(report.accuracy.map((a: { contextLength: number }) => a.contextLength), [32, 64, 128]);
  assert.equal(report.recallPerLayer.length, 2);

  r = await cli(['eval', '--model', sparse, '--decode-cost', '48']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^decode at 48: dense [\d.]+ ms, DSA [\d.]+ ms per step \([\d.]+×\)\n$/);
});

test('dsa train: bad input gets a clear error', async () => {
  let r = await cli(['train', '--stage', 'bogus', '--out', join(root, 'x'), ...task]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--stage must be one of dense, warmup, sparse/);
  r = await cli(['train', '--stage', 'dense', '--out', join(root, 'x'), '--config', config]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no training data: give a data file or a task/);
  r = await cli(['train', '--stage', 'dense', '--out', join(root, 'x'), '--model', join(root, 'nope'), ...task]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /model directory not found/);
  const badConfig = join(root, 'bad.json');
  writeFileSync(badConfig, JSON.stringify({ ...tinyTrainConfig(), hidden_size: -1 }));
  r = await cli(['train', '--stage', 'dense', '--out', join(root, 'x'), '--config', badConfig, ...task]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /hidden_size/);
  r = await cli(['train', '--stage', 'dense', '--out', join(root, 'x'), '--config', config, '--task', 'nosuch']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown task 'nosuch'/);
});

test('dsa bench train prints its setup and a row per kernel and stage', async () => {
  const r = await cli(['bench', 'train', '--seq-len', '32', '--batch', '1', '--topk', '4', '--steps', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^setup: .*passkey batches 1 × 32, top-k 4/);
  for (const k of ['ts', 'wasm']) for (const s of ['dense', 'warmup', 'sparse']) assert.match(r.stdout, new RegExp(`${k} +${s} +[\\d.]+ +\\d+`));
});
