/**
 * The int8 indexer cache (--indexer-cache int8) end to end on the CPU: keys re-quantized to int8
 * when written, queries at each step, the scan over int8. Against the reference FP8 indexer:
 * - tiny-bf16 free (nothing replayed): the top-k selections and the greedy tokens;
 * - a random model, prompt 300, decode 20, index_topk 32: the selections stay within the agreement
 *   the int8 study measured (docs/webgpu.md), and forced to the FP8 run's choices the logits are
 *   the FP8 run's bit for bit (the indexer only selects);
 * - the clear error for index heads that the int8 kernels cannot tile.
 * The WebGPU backend's int8 run against this CPU one is in test/webgpu/golden.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu.js';
import { runLogits } from '../../src/cli/logits.js';
import { compareFiles, type Comparison } from '../../src/model/compare.js';
import { Model } from '../../src/model/model.js';
import { writeRandomModel } from '../../src/model/random-model.js';
import { fixture, fixtureMeta, fixturePrompt } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'dsa-indexer-cache-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Mean share of selected keys two runs have in common, prefill and decode rows together. */
function keysShared(c: Comparison): number {
  const p = c.prefillTopk!;
  const d = c.decodeTopk!;
  return (p.meanOverlap * p.rows + d.meanOverlap * d.rows) / (p.rows + d.rows);
}

function describeRun(label: string, c: Comparison): string {
  return (
    `${label}: keys shared ${(100 * keysShared(c)).toFixed(2)}%, prefill rel ${c.prefill!.rel.toExponential(2)}, ` +
    `decode rel ${c.decode!.rel.toExponential(2)}, greedy tokens ${c.decodeTokensMatching}/${c.decode!.rows} identical`
  );
}

describe('tiny-bf16, free, int8 indexer cache against the reference', () => {
  test('selections share ≥ 97% of their keys with the FP8 indexer, greedy tokens identical', async () => {
    const dir = fixture('tiny-bf16');
    const meta = fixtureMeta('tiny-bf16');
    const model = Model.load(dir, new CpuBackend());
    const out = join(work, 'tiny-int8.safetensors');
    await runLogits({ model, prompt: fixturePrompt('tiny-bf16'), decode: meta.decode_steps, out, indexerCache: 'int8' });
    const c = compareFiles(out, join(dir, 'expected.safetensors'));
    console.log(describeRun('tiny-bf16 free, int8 indexer vs the reference', c));
    assert.ok(keysShared(c) >= 0.97, `keys shared ${keysShared(c)}`);
    assert.ok(keysShared(c) < 1, 'the int8 indexer is not in effect: selections identical to the FP8 reference');
    assert.equal(c.decodeTokensEqual, true);
  });
});

describe('random model (prompt 300, decode 20, index_topk 32): int8 indexer cache against fp8', () => {
  const dir = join(work, 'random');
  writeRandomModel(dir, { seed: 21, config: { index_topk: 32, index_n_heads: 16, index_head_dim: 64 } });
  const model = Model.load(dir, new CpuBackend());
  const v = model.config.vocabSize;
  const prompt = Int32Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) % v);
  const decode = 20;
  const fp8Run = join(work, 'random-fp8.safetensors');

  test('fp8 run (the baseline)', async () => {
    await runLogits({ model, prompt, decode, out: fp8Run });
  });

  test('free: selections share ≥ 90% of their keys; forced to the fp8 run: logits bit-identical', async () => {
    const free = join(work, 'random-free-int8.safetensors');
    const forced = join(work, 'random-forced-int8.safetensors');
    await runLogits({ model, prompt, decode, out: free, indexerCache: 'int8' });
    await runLogits({ model, prompt, decode, out: forced, force: fp8Run, indexerCache: 'int8' });
    const cr = compareFiles(free, fp8Run);
    const cf = compareFiles(forced, fp8Run);
    console.log(describeRun('random free, int8 vs fp8 indexer', cr));
    assert.ok(keysShared(cr) >= 0.9 && keysShared(cr) < 1, `keys shared ${keysShared(cr)}`);
    assert.equal(cf.prefill!.maxAbs, 0);
    assert.equal(cf.decode!.maxAbs, 0);
  });
});

test('an int8 indexer cache needs index_n_heads a multiple of 16 and index_head_dim of 32', () => {
  const dir = join(work, 'h8');
  writeRandomModel(dir, { seed: 3, config: { index_n_heads: 8 } });
  const model = Model.load(dir, new CpuBackend());
  assert.throws(() => model.createCache(64, { indexerFormat: 'int8' }), /int8 indexer cache needs index_n_heads a multiple of 16 and index_head_dim of 32 \(this model: 8 heads of \d+\)/);
  assert.equal(model.createCache(64).indexerFormat, 'fp8');
});
