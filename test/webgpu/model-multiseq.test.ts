/**
 * The model's batched step on the WebGPU backend: with `multiSequence` the model issues one call
 * per DSA op over every sequence of a step (one grid per op, rowSeq over a 2-D block table); its
 * logits equal the per-sequence path's bit for bit (a small random model, index_topk 16: decode
 * steps over sequences of different lengths, and prompt chunks batched with decode tokens).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Backend, Tensor } from '../../src/backend/backend.js';
import { WebGpuBackend } from '../../src/backend/webgpu.js';
import { Model, type BatchInput } from '../../src/model/model.js';
import { writeRandomModel } from '../../src/model/random-model.js';
import type { StepOptions } from '../../src/model/step.js';
import { rng } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'dsa-gpu-multiseq-'));
const dir = join(work, 'model');
writeRandomModel(dir, { seed: 33, config: { index_topk: 16 } });
let gpu: WebGpuBackend;
before(async () => {
  gpu = await WebGpuBackend.create();
});
after(() => {
  gpu?.destroy();
  rmSync(work, { recursive: true, force: true });
});

function tokens(n: number, seed: number, vocab: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * vocab));
}

test('WebGPU: batched steps in one call per DSA op over the sequences equal the per-sequence path bit for bit', async () => {
  const base = Model.load(dir, gpu);
  const v = base.config.vocabSize;
  const L = base.config.numLayers;
  // The same device and weights; `one` counts its indexer calls, `per` takes the per-sequence path.
  let indexerCalls = 0;
  const one = Object.create(gpu, {
    indexerScores: { value: (...a: Parameters<Backend['indexerScores']>) => (indexerCalls++, gpu.indexerScores(...a)) },
  }) as Backend;
  const per = Object.create(gpu, { multiSequence: { value: false } }) as Backend;
  const sides = [one, per].map((b) => {
    const model = new Model(base.config, base.weights, b);
    return { model, cache: model.createCache(1024) };
  });
  // Lengths 40, 70 and 17 select with top-k (> 16 keys); 9 attends every key.
  const prompts = [tokens(40, 1, v), tokens(9, 2, v), tokens(70, 3, v), tokens(17, 4, v)];
  const seqs = await Promise.all(
    sides.map(async (s) => {
      const list = prompts.map(() => s.cache.newSequence());
      for (let i = 0; i < prompts.length; i++) await s.model.prefill(list[i]!, prompts[i]!, { logits: 'none' });
      return list;
    }),
  );
  const step = async (inputs: Array<{ i: number; tokens: Int32Array; mode: StepOptions['mode'] }>, what: string) => {
    const outs: Uint32Array[] = [];
    for (const [k, s] of sides.entries()) {
      const ins: BatchInput[] = inputs.map((x) => ({ seq: seqs[k]![x.i]!, tokens: x.tokens, mode: x.mode }));
      const logits = (await gpu.read(s.model.stepBatch(ins, { mode: 'decode' }, 'all') as Tensor)) as Float32Array;
      outs.push(new Uint32Array(logits.buffer, logits.byteOffset, logits.length));
    }
    assert.ok(outs[0]!.length > 0);
    assert.deepEqual(outs[0], outs[1], `${what}: logits differ`);
  };
  for (let n = 0; n < 2; n++) {
    indexerCalls = 0;
    await step(prompts.map((_, i) => ({ i, tokens: Int32Array.of((5 + 13 * i + n) % v), mode: 'decode' as const })), `decode step ${n}`);
    assert.equal(indexerCalls, L, 'one indexer call per layer for the three sequences that select');
  }
  await step(
    [
      { i: 0, tokens: Int32Array.of(11), mode: 'decode' },
      { i: 1, tokens: tokens(12, 7, v), mode: 'prefill' },
      { i: 2, tokens: Int32Array.of(12), mode: 'decode' },
      { i: 3, tokens: tokens(5, 8, v), mode: 'prefill' },
    ],
    'prompt chunks with decode tokens',
  );
});
