/**
 * The engine on the golden fixtures, with the reference-numerics cache (f32; on tiny-fp8 the prompt
 * path then reads the act-quantized latent, so per-sequence modes matter): the fixture prompt,
 * prefilled in chunks beside other requests' prompt chunks and decode tokens, generates exactly the
 * reference's greedy tokens, and every request gets what it gets alone.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu.js';
import { Engine } from '../../src/engine/engine.js';
import { Sampler } from '../../src/generate/sampler.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Model } from '../../src/model/model.js';
import { fixture, fixtureMeta, fixturePrompt } from '../helpers/fixtures.js';

function run(engine: Engine, prompt: Int32Array, maxTokens: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    engine.submit({ prompt, maxTokens, sampler: new Sampler(0, 0), onFinish: (_r, req, err) => (err ? reject(err) : resolve([...req.generated])) });
  });
}

for (const name of ['tiny-bf16', 'tiny-fp8'] as const) {
  describe(`engine on ${name}`, () => {
    test('batched with other requests, the fixture prompt generates the reference tokens', async () => {
      const meta = fixtureMeta(name);
      const ref = SafetensorsFile.open(`${fixture(name)}/expected.safetensors`);
      const expected = Array.from(ref.readInt32('decode_input_ids'));
      ref.close();
      const model = Model.load(fixture(name), new CpuBackend({ kernels: 'wasm', threads: 2, batchInvariant: true }));
      const prompt = fixturePrompt(name);
      const others = [prompt.subarray(0, 70), prompt.subarray(30, 60), prompt.subarray(5, 150)];
      const opts = { latentFormat: 'f32' as const, maxContext: 512, maxStepTokens: 48 };
      const together = new Engine(model, { ...opts, maxBatch: 4 });
      const outs = await Promise.all([run(together, prompt, meta.decode_steps), ...others.map((p) => run(together, p, 6))]);
      assert.deepEqual(outs[0], expected, 'the reference greedy chain');
      const alone = new Engine(model, { ...opts, maxBatch: 1, prefixCaching: false });
      for (let i = 0; i < others.length; i++) assert.deepEqual(outs[i + 1], await run(alone, others[i]!, 6), `request ${i + 1}`);
      await together.close();
      await alone.close();
      (model.backend as CpuBackend).close();
    });
  });
}
