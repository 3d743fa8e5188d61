import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cli } from '../helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'dsa-experiment-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('dsa experiment --smoke: dense → warm-up → sparse, with the measurements and sane relations', async () => {
  const json = join(root, 'smoke.json');
  const r = await cli(['experiment', '--smoke', '--json', json]);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(readFileSync(json, 'utf8'));
  for (const key of ['recall_before', 'recall_after', 'loss_dense', 'loss_sparse', 'needle_acc_dense', 'needle_acc_sparse']) {
    assert.equal(typeof res[key], 'number', key);
    assert.ok(Number.isFinite(res[key]), `${key} = ${res[key]}`);
  }
  assert.ok(res.k_over_l <= 1 / 8);
  assert.ok(res.recall_after > res.recall_before, `warm-up must raise recall: ${res.recall_before} → ${res.recall_after}`);
  for (const l of res.recall_ceiling_per_layer) assert.ok(l <= 1 + 1e-6 && l > 0);
  res.recall_after_per_layer.forEach((x: number, i: number) => assert.ok(x <= res.recall_ceiling_per_layer[i] + 1e-6, 'recall never exceeds its ceiling'));
  for (const key of ['needle_acc_dense', 'needle_acc_sparse', 'recall_before', 'recall_after']) assert.ok(res[key] >= 0 && res[key] <= 1, key);
  assert.ok(res.loss_dense > 0 && res.loss_sparse > 0);
  // Loss of a 64-symbol answer: far below ln(64) means something was learned; never above it by much.
  assert.ok(res.loss_sparse < Math.log(64) + 0.5 && res.loss_dense < Math.log(64) + 0.5);
  assert.deepEqual(res.needle_by_length.map((n: { context_length: number }) => n.context_length), [64, 128, 256]);
  assert.match(r.stdout, /indexer recall: before warm-up [\d.]+%, after [\d.]+%/);
});
