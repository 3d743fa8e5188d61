/**
 * The three latent cache formats end to end (docs/cache-formats.md has the layouts and more numbers):
 * - tiny-bf16, forced (the reference's selections, routes and tokens replayed): the f32 cache still
 *   meets the golden tolerance; bf16 and fp8 caches stay within stated looser ones.
 * - a random model, prompt 300, decode 20, index_topk 32: bf16 and fp8 caches against the f32 cache,
 *   forced to the f32 run's choices (logits) and free (selections, greedy tokens). Numbers printed.
 * - bytes per token and layer, and the clear error for fp8 with kv_lora_rank not a multiple of 128.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { LatentFormat } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu.js';
import { runLogits } from '../../src/cli/logits.js';
import { KVCache } from '../../src/model/cache.js';
import { compareFiles, type Comparison } from '../../src/model/compare.js';
import { Model } from '../../src/model/model.js';
import { writeRandomModel } from '../../src/model/random-model.js';
import { fixture, fixtureMeta, fixturePrompt } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'dsa-cache-formats-'));
after(() => rmSync(work, { recursive: true, force: true }));

const FORMATS: readonly LatentFormat[] = ['f32', 'bf16', 'fp8'];

/** Rows identical as sets and mean key overlap, prefill and decode selections together. */
function selections(c: Comparison): { same: number; overlap: number } {
  const p = c.prefillTopk!;
  const d = c.decodeTopk!;
  return { same: (p.same + d.same) / (p.rows + d.rows), overlap: (p.meanOverlap * p.rows + d.meanOverlap * d.rows) / (p.rows + d.rows) };
}

function describeRun(label: string, c: Comparison): string {
  const s = selections(c);
  return (
    `${label}: prefill max abs ${c.prefill!.maxAbs.toExponential(2)} rel ${c.prefill!.rel.toExponential(2)}, ` +
    `decode max abs ${c.decode!.maxAbs.toExponential(2)} rel ${c.decode!.rel.toExponential(2)}, ` +
    `argmax differs ${c.prefill!.argmaxDiffers + c.decode!.argmaxDiffers}, selections identical ${(100 * s.same).toFixed(2)}% ` +
    `(keys shared ${(100 * s.overlap).toFixed(2)}%), greedy tokens ${c.decodeTokensMatching}/${c.decode!.rows} identical`
  );
}

describe('tiny-bf16, forced, with each cache format', () => {
  const dir = fixture('tiny-bf16');
  const expected = join(dir, 'expected.safetensors');
  const meta = fixtureMeta('tiny-bf16');
  const prompt = fixturePrompt('tiny-bf16');
  const model = Model.load(dir, new CpuBackend());
  /**
   * Forced logits rel diff allowed per format. f32: the fixture's own 1e-4 (measured 7.6e-7).
   * bf16 rounds c_kv and k_rope to 8 significant bits (measured 4.1e-4 prefill, 9.9e-5 decode);
   * fp8 quantizes c_kv to e4m3 in 128-blocks (measured 7.2e-3 prefill, 1.2e-3 decode).
   */
  const tol: Record<LatentFormat, number> = { f32: meta.forced.rel_tol, bf16: 2e-3, fp8: 2e-2 };

  for (const format of FORMATS) {
    test(`${format} cache: forced logits within ${tol[format]} of the reference, greedy tokens identical`, async () => {
      const out = join(work, `tiny-bf16-forced-${format}.safetensors`);
      await runLogits({ model, prompt, decode: meta.decode_steps, out, force: expected, cache: format });
      const c = compareFiles(out, expected);
      console.log(describeRun(`tiny-bf16 forced, ${format} cache vs reference`, c));
      assert.ok(c.prefill!.rel <= tol[format], `prefill logits rel diff ${c.prefill!.rel} > ${tol[format]}`);
      assert.ok(c.decode!.rel <= tol[format], `decode logits rel diff ${c.decode!.rel} > ${tol[format]}`);
      assert.equal(c.decodeTokensEqual, true);
      if (format === 'f32') {
        assert.equal(c.prefill!.argmaxDiffers + c.decode!.argmaxDiffers, 0);
        assert.ok(selections(c).same >= meta.forced.min_same_selection);
      } else {
        // The format is really in effect: the logits move.
        assert.ok(c.prefill!.maxAbs > 1e-5, `${format} cache: logits identical to the reference's`);
      }
    });
  }

  test('bytes per token and layer: latent row (+ the f32 prefill copy for FP8 kv_b_proj) + 132 B indexer key', () => {
    // tiny-bf16: r 128, d_r 32, d_I 128.
    const bytes = FORMATS.map((f) => model.createCache(64, { latentFormat: f }).bytesPerTokenLayer());
    assert.deepEqual(bytes, [640 + 132, 320 + 132, 128 + 4 + 64 + 132]);
    const fp8Model = Model.load(fixture('tiny-fp8'), new CpuBackend());
    const fp8Bytes = FORMATS.map((f) => fp8Model.createCache(64, { latentFormat: f }).bytesPerTokenLayer());
    // tiny-fp8 has FP8 kv_b_proj: only the f32 (reference-numerics) cache keeps a prefill copy.
    assert.deepEqual(fp8Bytes, [2 * 640 + 132, 320 + 132, 196 + 132]);
    const cache = model.createCache(64, { latentFormat: 'fp8' });
    assert.equal(cache.layers[0]!.latent.dtype, 'u8');
    assert.deepEqual(cache.layers[0]!.latent.shape, [64, 196]);
    assert.equal(model.createCache(64, { latentFormat: 'bf16' }).layers[0]!.latent.dtype, 'bf16');
  });
});

describe('random model (prompt 300, decode 20, index_topk 32): bf16 and fp8 caches against f32', () => {
  const dir = join(work, 'random');
  writeRandomModel(dir, { seed: 21, config: { index_topk: 32, kv_lora_rank: 128 } });
  const model = Model.load(dir, new CpuBackend());
  const v = model.config.vocabSize;
  const prompt = Int32Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) % v);
  const decode = 20;
  const f32Run = join(work, 'random-f32.safetensors');
  /** Allowed rel diff of the forced logits (the f32 run's choices replayed), per format. */
  const tol: Record<'bf16' | 'fp8', number> = { bf16: 5e-3, fp8: 5e-2 };

  test('f32 run (the baseline)', async () => {
    await runLogits({ model, prompt, decode, out: f32Run, cache: 'f32' });
  });

  for (const format of ['bf16', 'fp8'] as const) {
    test(`${format} cache: logits, selections and greedy tokens against the f32 cache`, async () => {
      const forced = join(work, `random-forced-${format}.safetensors`);
      const free = join(work, `random-free-${format}.safetensors`);
      await runLogits({ model, prompt, decode, out: forced, force: f32Run, cache: format });
      await runLogits({ model, prompt, decode, out: free, cache: format });
      const cf = compareFiles(forced, f32Run);
      const cr = compareFiles(free, f32Run);
      console.log(describeRun(`random forced to the f32 run, ${format} cache vs f32 cache`, cf));
      console.log(describeRun(`random free, ${format} cache vs f32 cache`, cr));
      assert.ok(cf.prefill!.maxAbs > 0, `${format} cache: logits identical to the f32 cache's`);
      assert.ok(cf.prefill!.rel <= tol[format] && cf.decode!.rel <= tol[format], `forced logits rel ${cf.prefill!.rel} / ${cf.decode!.rel} > ${tol[format]}`);
      // Selections move where neighbouring index scores are closer than the perturbation, but the
      // bulk of the selected keys stays.
      assert.ok(selections(cr).overlap >= 0.9, `keys shared ${selections(cr).overlap}`);
    });
  }
});

test('tiny-fp8 (FP8 kv_b_proj, ue8m0): an fp8 latent needs no prefill copy; with one, the logits are bit-identical', async () => {
  const model = Model.load(fixture('tiny-fp8'), new CpuBackend());
  const b = model.backend;
  const v = model.config.vocabSize;
  const prompt = fixturePrompt('tiny-fp8').subarray(0, 150);
  const run = async (cache: KVCache): Promise<Float32Array> => {
    const seq = cache.newSequence();
    const out = new Float32Array((prompt.length + 3) * v);
    await model.prefill(seq, prompt, { logits: 'all', chunk: 64, onLogits: async (s, t) => out.set((await b.read(t)) as Float32Array, s * v) });
    for (let i = 0; i < 3; i++) out.set((await b.read(model.decode(seq, 5 + i))) as Float32Array, (prompt.length + i) * v);
    return out;
  };
  const without = model.createCache(prompt.length + 3, { latentFormat: 'fp8' });
  assert.equal(without.layers[0]!.latentPrefill, null);
  const withCopy = new KVCache(b, model.config, { capacity: prompt.length + 3, prefillLatent: true, latentFormat: 'fp8' });
  assert.deepEqual(await run(without), await run(withCopy));
  // With an f32 latent the copy does matter (prefill attends over act-quantized c_kv).
  assert.notEqual(model.createCache(16).layers[0]!.latentPrefill, null);
});

test('an fp8 cache needs kv_lora_rank to be a multiple of 128', () => {
  const dir = join(work, 'r64');
  writeRandomModel(dir, { seed: 3 });
  const model = Model.load(dir, new CpuBackend());
  assert.throws(() => model.createCache(64, { latentFormat: 'fp8' }), /fp8 latent cache needs kv_lora_rank to be a multiple of 128, got 64/);
  assert.equal(model.createCache(64, { latentFormat: 'bf16' }).bytesPerTokenLayer(), 2 * (64 + 16) + 64 + 4);
});
