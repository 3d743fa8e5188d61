/**
 * Several sequences in one step (continuous batching): the projections run once over all rows, the
 * indexer, top-k and attention per sequence — and every sequence gets what it would alone.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu.js';
import type { Tensor } from '../../src/backend/backend.js';
import { diffLogits } from '../../src/model/compare.js';
import { Model } from '../../src/model/model.js';
import { writeRandomModel } from '../../src/model/random-model.js';
import { seededTokens } from '../helpers/tokens.js';

const K = 16;
const work = mkdtempSync(join(tmpdir(), 'dsa-batch-'));
after(() => rmSync(work, { recursive: true, force: true }));
const dir = join(work, 'model');
writeRandomModel(dir, { seed: 21, config: { index_topk: K } });


for (const kernels of ['js', 'wasm'] as const) {
  describe(`multi-sequence steps (${kernels} kernels)`, () => {
    const model = Model.load(dir, new CpuBackend({ kernels, threads: 2 }));
    const v = model.config.vocabSize;
    const read = async (t: Tensor | null) => (await model.backend.read(t!)) as Float32Array;
    // The JavaScript kernels compute every row alone: bit-identical. The WASM kernels choose SIMD
    // code paths by row count: float32 noise.
    const tol = kernels === 'js' ? 0 : 1e-5;
    const prompts = [seededTokens(30, 1, v), seededTokens(5, 2, v), seededTokens(50, 3, v)];

    test('decode tokens of three sequences in one step equal three single steps', async () => {
      const alone = model.createCache(256);
      const together = model.createCache(256);
      const a = prompts.map(() => alone.newSequence());
      const t = prompts.map(() => together.newSequence());
      for (let i = 0; i < prompts.length; i++) {
        await model.prefill(a[i]!, prompts[i]!, { logits: 'none' });
        await model.prefill(t[i]!, prompts[i]!, { logits: 'none' });
      }
      for (let step = 0; step < 3; step++) {
        const next = prompts.map((_, i) => 7 + 11 * i + step);
        const single = [];
        for (let i = 0; i < prompts.length; i++) single.push(await read(model.decode(a[i]!, next[i]!)));
        const batched = await read(model.stepBatch(t.map((seq, i) => ({ seq, tokens: Int32Array.of(next[i]!) })), { mode: 'decode' }, 'last'));
        assert.equal(batched.length, prompts.length * v);
        for (let i = 0; i < prompts.length; i++) {
          const d = diffLogits(batched.subarray(i * v, (i + 1) * v), single[i]!, v);
          assert.ok(d.maxAbs <= tol, `step ${step}, sequence ${i}: max abs diff ${d.maxAbs}`);
        }
      }
      t.forEach((seq, i) => assert.equal(seq.length, prompts[i]!.length + 3));
    });

    test('a prompt chunk and other sequences’ decode tokens in one step (continuous batching)', async () => {
      const alone = model.createCache(256);
      const together = model.createCache(256);
      const [p0, p1] = [prompts[0]!, prompts[2]!];
      const a0 = alone.newSequence();
      const a1 = alone.newSequence();
      const t0 = together.newSequence();
      const t1 = together.newSequence();
      await model.prefill(a0, p0, { logits: 'none' });
      await model.prefill(t0, p0, { logits: 'none' });
      // Sequence 1's whole prompt arrives while sequence 0 decodes one token.
      const chosen: { positions: number[]; width: number }[] = [];
      const out = await read(
        model.stepBatch(
          [
            { seq: t0, tokens: Int32Array.of(9) },
            { seq: t1, tokens: p1 },
          ],
          { mode: 'prefill', observe: { topk: (layer, positions, own) => layer === 0 && chosen.push({ positions: [...positions], width: own?.shape[1] ?? 0 }) } },
          'all',
        ),
      );
      const s0 = (await read(model.step(a0, Int32Array.of(9), { mode: 'prefill' }, 'all')));
      const s1 = (await read(model.step(a1, p1, { mode: 'prefill' }, 'all')));
      assert.ok(diffLogits(out.subarray(0, v), s0, v).maxAbs <= tol);
      assert.ok(diffLogits(out.subarray(v), s1, v).maxAbs <= tol);
      // The observer sees each sequence's rows with its own positions.
      assert.deepEqual(chosen.map((c) => c.positions.length), [1, p1.length]);
      assert.equal(chosen[0]!.positions[0], p0.length);
      assert.equal(chosen[1]!.positions[0], 0);
    });

    test('bad batches are clear errors', () => {
      const cache = model.createCache(64);
      const seq = cache.newSequence();
      assert.throws(() => model.stepBatch([], { mode: 'decode' }, 'last'), /no sequences/);
      assert.throws(() => model.stepBatch([{ seq, tokens: Int32Array.of(1) }, { seq, tokens: Int32Array.of(2) }], { mode: 'decode' }, 'last'), /appears twice/);
      const other = model.createCache(64).newSequence();
      assert.throws(() => model.stepBatch([{ seq, tokens: Int32Array.of(1) }, { seq: other, tokens: Int32Array.of(2) }], { mode: 'decode' }, 'last'), /share one cache/);
    });
  });
}
