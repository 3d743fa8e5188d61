/**
 * What a serving engine needs from multi-sequence steps: each sequence carries its own path
 * (prompt chunks 'prefill', generated tokens 'decode'), and with batch-invariant kernels a
 * sequence's numbers do not depend on what it is batched with — bit for bit.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu.js';
import type { Tensor } from '../../src/backend/backend.js';
import { Model } from '../../src/model/model.js';
import { fixture, fixturePrompt } from '../helpers/fixtures.js';
import { seededTokens } from '../helpers/tokens.js';


/** Index of the first element where a and b differ as float32 bit patterns, or −1. */
function firstDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

for (const name of ['tiny-bf16', 'tiny-fp8'] as const) {
  describe(`${name}: per-sequence modes and batch-invariant kernels`, () => {
    const model = Model.load(fixture(name), new CpuBackend({ kernels: 'wasm', threads: 2, minParallelWork: 0, batchInvariant: true }));
    const v = model.config.vocabSize;
    const read = async (t: Tensor | null) => (await model.backend.read(t!)) as Float32Array;
    const prompt = fixturePrompt(name);
    const other = seededTokens(40, 5, v);

    test('a decode token batched with another sequence’s prompt chunk equals it alone, bit for bit', async () => {
      // The f32 cache keeps the prefill copy of the latent when kv_b_proj is FP8: the modes differ.
      const alone = model.createCache(512);
      const together = model.createCache(512);
      const a = alone.newSequence();
      const t = together.newSequence();
      await model.prefill(a, prompt, { logits: 'none' });
      await model.prefill(t, prompt, { logits: 'none' });
      const aOther = alone.newSequence();
      const tOther = together.newSequence();
      const single = await read(model.decode(a, 7));
      const otherAlone = await read(model.step(aOther, other, { mode: 'prefill' }, 'last'));
      const both = await read(
        model.stepBatch(
          [
            { seq: t, tokens: Int32Array.of(7), mode: 'decode' },
            { seq: tOther, tokens: other, mode: 'prefill' },
          ],
          { mode: 'prefill' },
          'last',
        ),
      );
      assert.equal(firstDiff(both.subarray(0, v), single), -1, 'the decode row changed when batched');
      assert.equal(firstDiff(both.subarray(v), otherAlone), -1, 'the prompt chunk changed when batched');
    });

    test('batched decode of three sequences equals one at a time, bit for bit', async () => {
      const prompts = [prompt, other, seededTokens(3, 9, v)];
      const alone = model.createCache(512);
      const together = model.createCache(512);
      const a = prompts.map(() => alone.newSequence());
      const t = prompts.map(() => together.newSequence());
      for (let i = 0; i < prompts.length; i++) {
        await model.prefill(a[i]!, prompts[i]!, { logits: 'none' });
        await model.prefill(t[i]!, prompts[i]!, { logits: 'none' });
      }
      for (let step = 0; step < 2; step++) {
        const next = prompts.map((_, i) => (3 + 17 * i + step) % v);
        const batched = await read(model.stepBatch(t.map((seq, i) => ({ seq, tokens: Int32Array.of(next[i]!), mode: 'decode' as const })), { mode: 'decode' }, 'last'));
        for (let i = 0; i < prompts.length; i++) {
          const single = await read(model.decode(a[i]!, next[i]!));
          assert.equal(firstDiff(batched.subarray(i * v, (i + 1) * v), single), -1, `step ${step}, sequence ${i}`);
        }
      }
    });

    test('a prompt split into other chunks gives the same last-row logits', async () => {
      const whole = model.createCache(512).newSequence();
      const ref = await read(model.step(whole, prompt, { mode: 'prefill' }, 'last'));
      const cache = model.createCache(512);
      const split = cache.newSequence();
      const side = cache.newSequence();
      await model.prefill(side, other, { logits: 'none' });
      const cut = 17;
      model.stepBatch([{ seq: split, tokens: prompt.subarray(0, cut), mode: 'prefill' }, { seq: side, tokens: Int32Array.of(4), mode: 'decode' }], { mode: 'decode' }, 'none');
      const last = await read(model.stepBatch([{ seq: side, tokens: Int32Array.of(5), mode: 'decode' }, { seq: split, tokens: prompt.subarray(cut), mode: 'prefill' }], { mode: 'decode' }, 'last'));
      assert.equal(firstDiff(last.subarray(v), ref), -1);
    });
  });
}

describe('per-sequence modes matter where the paths differ', () => {
  test('tiny-fp8, f32 cache: a decode token run on the prefill path gives other logits', async () => {
    const model = Model.load(fixture('tiny-fp8'), new CpuBackend({ kernels: 'js' }));
    const read = async (t: Tensor | null) => (await model.backend.read(t!)) as Float32Array;
    const prompt = fixturePrompt('tiny-fp8');
    const run = async (mode: 'prefill' | 'decode') => {
      const seq = model.createCache(256).newSequence();
      await model.prefill(seq, prompt, { logits: 'none' });
      return read(model.stepBatch([{ seq, tokens: Int32Array.of(7), mode }], { mode: mode === 'decode' ? 'prefill' : 'decode' }, 'last'));
    };
    const decodePath = await run('decode');
    const prefillPath = await run('prefill');
    const seq = model.createCache(256).newSequence();
    await model.prefill(seq, prompt, { logits: 'none' });
    const reference = await read(model.decode(seq, 7));
    assert.equal(firstDiff(decodePath, reference), -1, 'the per-sequence mode overrides the step mode');
    assert.notEqual(firstDiff(prefillPath, reference), -1, 'FP8 kv_b_proj: the prefill path reads the act-quantized latent');
  });
});
