/**
 * The serving engine on a small random model: continuous batching gives every request exactly the
 * tokens it gets alone; admission waits for pages; a full queue refuses; cancellation frees pages at
 * once; prompts sharing a prefix share its pages; afterwards nothing is held.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu.js';
import { runGenerate } from '../../src/cli/generate.js';
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import { QueueFullError, RequestError, type EngineRequest, type FinishReason } from '../../src/engine/request.js';
import { Sampler } from '../../src/generate/sampler.js';
import { Model } from '../../src/model/model.js';
import { writeRandomModel } from '../../src/model/random-model.js';
import { seededTokens } from '../helpers/tokens.js';

const work = mkdtempSync(join(tmpdir(), 'dsa-engine-'));
after(() => rmSync(work, { recursive: true, force: true }));
const dir = join(work, 'model');
writeRandomModel(dir, { seed: 5, config: { num_hidden_layers: 2, index_topk: 16, max_position_embeddings: 1024 } });
const model = Model.load(dir, new CpuBackend({ kernels: 'wasm', threads: 2, batchInvariant: true }));
const vocab = model.config.vocabSize;

const tokens = (n: number, seed: number): Int32Array => seededTokens(n, seed, vocab);

interface Done {
  tokens: number[];
  reason: FinishReason;
  req: EngineRequest;
}

/** Submits a greedy request; resolves with its tokens when it ends. */
function generate(engine: Engine, prompt: Int32Array, maxTokens: number, onToken?: (req: EngineRequest) => void): { req: EngineRequest; done: Promise<Done> } {
  let resolve!: (d: Done) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<Done>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const req = engine.submit({
    prompt,
    maxTokens,
    sampler: new Sampler(0, 0),
    onToken: (_t, r) => onToken?.(r),
    onFinish: (reason, r, err) => (err ? reject(err) : resolve({ tokens: [...r.generated], reason, req: r })),
  });
  return { req, done: promise };
}

function newEngine(opts: EngineOptions): Engine {
  return new Engine(model, { maxContext: 512, ...opts });
}

// Prompts of assorted lengths; 3 and 4 share a 150-token prefix with 2 (two full pages).
const shared = tokens(150, 77);
const prompts = [tokens(5, 1), tokens(70, 2), Int32Array.from([...shared, 9, 8, 7]), Int32Array.from([...shared, 1]), Int32Array.from([...shared]), tokens(1, 3), tokens(33, 4), tokens(129, 6)];
const maxTokens = [6, 9, 4, 7, 5, 8, 3, 6];

describe('engine', () => {
  let reference: number[][] = [];

  test('one at a time, the engine generates what `dsa generate` does', async () => {
    const engine = newEngine({ maxBatch: 1, prefixCaching: false });
    reference = [];
    for (let i = 0; i < prompts.length; i++) {
      const out = await generate(engine, prompts[i]!, maxTokens[i]!).done;
      assert.equal(out.reason, 'length');
      reference.push(out.tokens);
    }
    for (const i of [0, 7]) {
      const direct = await runGenerate({ model, prompt: prompts[i]!, maxNewTokens: maxTokens[i]!, temperature: 0, seed: 0, stopAtEos: false });
      assert.deepEqual(reference[i], direct, `prompt ${i}`);
    }
    await engine.close();
  });

  test('continuous batching (prompt chunks beside decode tokens, shared prefixes) gives the same tokens', async () => {
    const engine = newEngine({ maxBatch: 8, maxStepTokens: 40 });
    let maxRunning = 0;
    const runs = prompts.map((p, i) => generate(engine, p, maxTokens[i]!, () => (maxRunning = Math.max(maxRunning, engine.stats().running))));
    const outs = await Promise.all(runs.map((r) => r.done));
    assert.deepEqual(outs.map((o) => o.tokens), reference);
    assert.ok(maxRunning > 1, 'requests ran together');
    // Prompts 3 and 4 found the two full pages prompt 2 wrote (submitted in order, admitted together
    // or later: at least one of them shares).
    const cached = outs.map((o) => o.req.cachedTokens);
    assert.equal(cached[0], 0);
    await engine.idle();
    const s = engine.stats();
    assert.deepEqual([s.running, s.waiting, s.pagesUsed], [0, 0, 0]);
    // A later request with the same long prompt reuses the cached pages and still gets the same tokens.
    const again = await generate(engine, prompts[2]!, maxTokens[2]!).done;
    assert.equal(again.req.cachedTokens, 128);
    assert.deepEqual(again.tokens, reference[2]);
    const again4 = await generate(engine, prompts[4]!, maxTokens[4]!).done;
    assert.equal(again4.req.cachedTokens, 128, 'a 150-token prompt shares its two full pages');
    assert.deepEqual(again4.tokens, reference[4]);
    assert.ok(engine.stats().cachedPromptTokens >= 256);
    await engine.close();
  });

  test('admission waits for pages: a small cache runs fewer requests at once, and all finish', async () => {
    // 6 pages; each request needs ceil((70 + 9) / 64) = 2 pages → at most 3 at once.
    const engine = newEngine({ maxBatch: 8, cacheTokens: 6 * 64, maxContext: 256, prefixCaching: false });
    let maxRunning = 0;
    let maxUsed = 0;
    const runs = [0, 1, 2, 3, 4].map(() =>
      generate(engine, prompts[1]!, maxTokens[1]!, () => {
        const s = engine.stats();
        maxRunning = Math.max(maxRunning, s.running);
        maxUsed = Math.max(maxUsed, s.pagesUsed);
      }),
    );
    const outs = await Promise.all(runs.map((r) => r.done));
    for (const o of outs) assert.deepEqual(o.tokens, reference[1]);
    assert.equal(maxRunning, 3);
    assert.ok(maxUsed <= 6);
    assert.equal(engine.stats().pagesUsed, 0);
    await engine.close();
  });

  test('a full waiting queue refuses; bad prompts are clear errors', async () => {
    const engine = newEngine({ maxBatch: 1, maxWaiting: 2 });
    const a = generate(engine, prompts[0]!, 3);
    const b = generate(engine, prompts[0]!, 3);
    assert.throws(() => generate(engine, prompts[0]!, 3), QueueFullError);
    assert.throws(() => engine.submit({ prompt: tokens(500, 1), maxTokens: 20, sampler: new Sampler(0, 0) }), (e: unknown) => e instanceof RequestError && e.code === 'context_length_exceeded');
    assert.throws(() => engine.submit({ prompt: Int32Array.of(vocab), maxTokens: 2, sampler: new Sampler(0, 0) }), /outside the vocabulary/);
    assert.throws(() => engine.submit({ prompt: new Int32Array(0), maxTokens: 2, sampler: new Sampler(0, 0) }), /empty/);
    await Promise.all([a.done, b.done]);
    await engine.close();
    assert.throws(() => generate(engine, prompts[0]!, 3), /shutting down/);
  });

  test('cancellation frees the pages at once, running or waiting', async () => {
    const engine = newEngine({ maxBatch: 1, prefixCaching: false });
    let seen = 0;
    let usedAtAbort = -1;
    const first = generate(engine, prompts[7]!, 50, (req) => {
      if (++seen === 2) {
        usedAtAbort = engine.stats().pagesUsed;
        engine.abort(req);
        assert.equal(engine.stats().pagesUsed, 0);
      }
    });
    const second = generate(engine, prompts[0]!, 4);
    engine.abort(second.req);
    const [o1, o2] = await Promise.all([first.done, second.done]);
    assert.equal(o1.reason, 'abort');
    assert.equal(o1.tokens.length, 2);
    assert.ok(usedAtAbort >= 3, `the running request held its pages (${usedAtAbort})`);
    assert.equal(o2.reason, 'abort');
    assert.equal(o2.tokens.length, 0);
    await engine.idle();
    assert.deepEqual([engine.stats().running, engine.stats().waiting, engine.stats().pagesUsed], [0, 0, 0]);
    await engine.close();
  });

  test('a failing callback ends its request with an error; the engine keeps serving', async () => {
    const engine = newEngine({ maxBatch: 4 });
    let failed: { reason: FinishReason; err?: Error } | null = null;
    const ok = generate(engine, prompts[0]!, maxTokens[0]!);
    engine.submit({
      prompt: prompts[1]!,
      maxTokens: 5,
      sampler: new Sampler(0, 0),
      onToken: () => {
        throw new Error('client callback broke');
      },
      onFinish: (reason, _r, err) => (failed = { reason, err }),
    });
    assert.deepEqual((await ok.done).tokens, reference[0]);
    await engine.idle();
    assert.equal(failed!.reason, 'error');
    assert.match(failed!.err!.message, /callback broke/);
    assert.equal(engine.stats().pagesUsed, 0);
    await engine.close();
  });
});
