/**
 * One backend call per DSA op over all sequences of a step (src/model/multi-seq.ts): the batched
 * step must give exactly what the per-sequence path gives (bit for bit, with the batch-invariant
 * WASM kernels and with the JavaScript kernels), issue the ops once per group of rows instead of
 * once per sequence, and fall back to the per-sequence path where hooks are set.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Backend, Tensor } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu.js';
import type { KVCache, Sequence } from '../../src/model/cache.js';
import { Model, type BatchInput } from '../../src/model/model.js';
import { writeRandomModel } from '../../src/model/random-model.js';
import type { StepOptions } from '../../src/model/step.js';
import { fixture } from '../helpers/fixtures.js';
import { seededTokens } from '../helpers/tokens.js';

const work = mkdtempSync(join(tmpdir(), 'dsa-multiseq-'));
after(() => rmSync(work, { recursive: true, force: true }));
const randomDir = join(work, 'model');
writeRandomModel(randomDir, { seed: 33, config: { index_topk: 16 } });


/** `inner` with its op calls counted, and multiSequence as given (false: the per-sequence path). */
function counted(inner: Backend, multiSequence: boolean): { b: Backend; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const b = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'multiSequence') return multiSequence && target.multiSequence === true;
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        if (typeof prop === 'string') calls.set(prop, (calls.get(prop) ?? 0) + 1);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { b, calls };
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} differs: ${a[i]} vs ${b[i]}`);
}

/**
 * Two models on one backend and one set of weights: `one` issues one call per op over all
 * sequences, `per` the per-sequence path. Each has its own cache holding the same sequences.
 */
function pair(dir: string, inner: Backend) {
  const base = Model.load(dir, inner);
  const one = counted(inner, true);
  const per = counted(inner, false);
  const side = (c: ReturnType<typeof counted>) => {
    const model = new Model(base.config, base.weights, c.b);
    return { model, calls: c.calls, cache: model.createCache(2048) };
  };
  return { config: base.config, one: side(one), per: side(per) };
}

type Side = ReturnType<typeof pair>['one'];

async function prefillBoth(p: ReturnType<typeof pair>, prompts: Int32Array[]): Promise<[Sequence[], Sequence[]]> {
  const mk = async (s: Side) => {
    const seqs = prompts.map(() => s.cache.newSequence());
    for (let i = 0; i < prompts.length; i++) await s.model.prefill(seqs[i]!, prompts[i]!, { logits: 'none' });
    return seqs;
  };
  return [await mk(p.one), await mk(p.per)];
}

/** One step on both sides; asserts equal logits bit for bit; returns each side's op counts of the step. */
async function stepBoth(
  p: ReturnType<typeof pair>,
  seqs: [Sequence[], Sequence[]],
  inputs: Array<{ i: number; tokens: Int32Array; mode?: StepOptions['mode'] }>,
  opts: StepOptions,
  what: string,
): Promise<[Map<string, number>, Map<string, number>]> {
  const run = async (s: Side, list: Sequence[]) => {
    s.calls.clear();
    const ins: BatchInput[] = inputs.map((x) => ({ seq: list[x.i]!, tokens: x.tokens, mode: x.mode }));
    const out = (await s.model.backend.read(s.model.stepBatch(ins, opts, 'all') as Tensor)) as Float32Array;
    return { out, calls: new Map(s.calls) };
  };
  const a = await run(p.one, seqs[0]);
  const b = await run(p.per, seqs[1]);
  sameBits(a.out, b.out, what);
  return [a.calls, b.calls];
}

const backends = [
  { name: 'wasm kernels, batch-invariant, 2 threads', make: () => new CpuBackend({ kernels: 'wasm', threads: 2, minParallelWork: 0, batchInvariant: true }) },
  { name: 'js kernels', make: () => new CpuBackend({ kernels: 'js' }) },
];

for (const be of backends) {
  describe(`one call per DSA op over a step's sequences (random model, index_topk 16, ${be.name})`, () => {
    const p = pair(randomDir, be.make());
    const L = p.config.numLayers;
    const v = p.config.vocabSize;
    // Lengths 40, 70 and 17 select with top-k (> 16 keys); 9 selects every key (dense).
    const prompts = [seededTokens(40, 1, v), seededTokens(9, 2, v), seededTokens(70, 3, v), seededTokens(17, 4, v)];

    test('decode steps over four sequences of different lengths equal the per-sequence path bit for bit, in two calls per layer', async () => {
      const seqs = await prefillBoth(p, prompts);
      for (let step = 0; step < 3; step++) {
        const inputs = prompts.map((_, i) => ({ i, tokens: Int32Array.of((5 + 13 * i + step) % v) }));
        const [one, per] = await stepBoth(p, seqs, inputs, { mode: 'decode' }, `decode step ${step}`);
        // Top-k rows (three sequences) in one group, the dense row in another.
        assert.equal(one.get('indexerScores'), L, 'indexerScores: once per layer');
        assert.equal(one.get('topk'), L, 'topk: once per layer');
        assert.equal(one.get('mlaAttention'), 2 * L, 'mlaAttention: once per group and layer');
        assert.equal(one.get('writeRows'), 3 * L, 'writeRows: the latent, the indexer keys and scales, once per layer');
        assert.equal(per.get('mlaAttention'), 4 * L, 'the per-sequence path: once per sequence');
        assert.equal(per.get('indexerScores'), 3 * L);
      }
    });

    test('sequences that all select with top-k run in a single call per op', async () => {
      const seqs = await prefillBoth(p, [prompts[0]!, prompts[2]!, prompts[3]!]);
      const [one] = await stepBoth(p, seqs, [0, 1, 2].map((i) => ({ i, tokens: Int32Array.of(3 + i) })), { mode: 'decode' }, 'decode');
      assert.equal(one.get('mlaAttention'), L);
      assert.equal(one.get('gatherRows') ?? 0, 0, 'no rows regrouped');
    });

    test('prompt chunks of two sequences and decode tokens of two others in one step', async () => {
      const seqs = await prefillBoth(p, prompts);
      const inputs = [
        { i: 0, tokens: Int32Array.of(11), mode: 'decode' as const },
        { i: 1, tokens: seededTokens(12, 7, v), mode: 'prefill' as const }, // crosses index_topk within the chunk
        { i: 2, tokens: Int32Array.of(12), mode: 'decode' as const },
        { i: 3, tokens: seededTokens(5, 8, v), mode: 'prefill' as const },
      ];
      const [one] = await stepBoth(p, seqs, inputs, { mode: 'decode' }, 'mixed step');
      assert.equal(one.get('mlaAttention'), L, 'every row selects with top-k: one call');
      // Then decode again after the chunks.
      await stepBoth(p, seqs, prompts.map((_, i) => ({ i, tokens: Int32Array.of(20 + i) })), { mode: 'decode' }, 'decode after chunks');
    });

    test('dense steps (opts.dense) run in one call per op and equal the per-sequence path', async () => {
      const seqs = await prefillBoth(p, prompts);
      const [one] = await stepBoth(p, seqs, prompts.map((_, i) => ({ i, tokens: Int32Array.of(30 + i) })), { mode: 'decode', dense: true }, 'dense');
      assert.equal(one.get('mlaAttention'), L);
      assert.equal(one.get('indexerScores') ?? 0, 0);
    });

    test('observing or forcing hooks keep the per-sequence path', async () => {
      const seqs = await prefillBoth(p, prompts);
      const seen: number[] = [];
      const observe = { topk: (_l: number, positions: Int32Array) => void seen.push(positions.length) };
      const [one] = await stepBoth(p, seqs, prompts.map((_, i) => ({ i, tokens: Int32Array.of(40 + i) })), { mode: 'decode', observe }, 'observed');
      assert.equal(one.get('mlaAttention'), 4 * L);
      assert.equal(seen.length, 2 * 4 * L, 'the observer sees each sequence on its own, on both sides');
    });
  });
}

describe('one call per DSA op: tiny-fp8 (FP8 kv_b_proj: prompt chunks attend the prefill copy of the latent)', () => {
  const p = pair(fixture('tiny-fp8'), new CpuBackend({ kernels: 'wasm', threads: 2, minParallelWork: 0, batchInvariant: true }));
  const L = p.config.numLayers;
  const v = p.config.vocabSize;
  // index_topk 48: lengths 60, 100 and 49 select; 20 is dense.
  const prompts = [seededTokens(60, 11, v), seededTokens(20, 12, v), seededTokens(100, 13, v), seededTokens(49, 14, v)];

  test('a prompt chunk batched with decode tokens equals the per-sequence path, in one call per group', async () => {
    const seqs = await prefillBoth(p, prompts);
    for (let step = 0; step < 2; step++) {
      type Input = { i: number; tokens: Int32Array; mode: StepOptions['mode'] };
      const inputs: Input[] = prompts.map((_, i) => ({ i, tokens: Int32Array.of((9 + 5 * i + step) % v), mode: 'decode' }));
      inputs[2] = { i: 2, tokens: seededTokens(8, 20 + step, v), mode: 'prefill' };
      const [one, per] = await stepBoth(p, seqs, inputs, { mode: 'decode' }, `step ${step}`);
      // Groups: decode rows with top-k (0, 3), the dense decode row (1), the prompt chunk (2).
      assert.equal(one.get('mlaAttention'), 3 * L);
      assert.equal(one.get('indexerScores'), 2 * L);
      assert.equal(one.get('writeRows'), 4 * L, 'the latent, its prefill copy and the indexer keys and scales');
      assert.equal(per.get('mlaAttention'), 4 * L);
    }
  });
});

test('the cache holds every sequence’s entries at its own pages after a batched step', async () => {
  const p = pair(randomDir, new CpuBackend({ kernels: 'js' }));
  const v = p.config.vocabSize;
  const seqs = await prefillBoth(p, [seededTokens(30, 1, v), seededTokens(50, 2, v)]);
  await stepBoth(p, seqs, [0, 1].map((i) => ({ i, tokens: seededTokens(3, 40 + i, v) })), { mode: 'prefill' }, 'chunks');
  const cacheOf = (s: Side): KVCache => s.cache;
  for (let l = 0; l < p.config.numLayers; l++) {
    for (const key of ['latent', 'indexKeys', 'indexScales'] as const) {
      const a = (await p.one.model.backend.read(cacheOf(p.one).layers[l]![key])) as ArrayLike<number>;
      const b = (await p.per.model.backend.read(cacheOf(p.per).layers[l]![key])) as ArrayLike<number>;
      assert.deepEqual(Array.from(a), Array.from(b), `layer ${l} ${key}`);
    }
  }
});
