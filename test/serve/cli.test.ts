/** The serving commands through the CLI: `dsa serve` refuses what it cannot serve; `dsa bench serve` runs end to end. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cli } from '../helpers/cli.js';

test('dsa bench serve prints the setup and a row per concurrency', async () => {
  const r = await cli(['bench', 'serve', '--requests', '3', '--concurrency', '1,3', '--prompt-len', '8', '--max-tokens', '3', '--max-batch', '4']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /cores, Node/);
  assert.match(r.stdout, /3 greedy completions per run: 8 prompt tokens/);
  const rows = r.stdout.split('\n').filter((l) => /^\s+\d+\s+\d/.test(l));
  assert.deepEqual(rows.map((l) => Number(l.trim().split(/\s+/)[0])), [1, 3]);
  for (const l of rows) assert.ok(Number(l.trim().split(/\s+/)[1]) > 0);
});

test('dsa bench serve --per-sequence says which path the model takes', async () => {
  const base = ['bench', 'serve', '--requests', '2', '--concurrency', '2', '--prompt-len', '8', '--max-tokens', '2', '--max-batch', '2'];
  const one = await cli(base);
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /DSA ops in one call per step/);
  const per = await cli([...base, '--per-sequence']);
  assert.equal(per.code, 0, per.stderr);
  assert.match(per.stdout, /DSA ops per sequence \(--per-sequence\)/);
});

test('dsa serve: a missing model directory or a bad option is one clear line and exit code 1', async () => {
  const r = await cli(['serve', '--model', '/nonexistent/model', '--port', '0']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /dsa: .*model directory not found/);
  const bad = await cli(['serve', '--model', '/nonexistent/model', '--max-batch', '0']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--max-batch must be an integer ≥ 1/);
});
