/**
 * DSA is really sparse: with a context longer than index_topk the logits differ from dense
 * attention, a decode step's attention reads exactly k cached entries per layer (entries it does not
 * select can be NaN without changing anything), and the cache keeps prefill and decode consistent.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { SeqPages, Tensor } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu.js';
import { diffLogits } from '../../src/model/compare.js';
import { Model } from '../../src/model/model.js';
import { writeRandomModel } from '../../src/model/random-model.js';
import type { Forcing } from '../../src/model/step.js';

const K = 16;
const work = mkdtempSync(join(tmpdir(), 'dsa-sparsity-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Counts what the attention and the indexer are asked to read. */
class CountingBackend extends CpuBackend {
  attention: { rows: number; perRow: number[]; dense: boolean }[] = [];
  indexer: { rows: number; nKeys: number }[] = [];
  override mlaAttention(qLat: Tensor, qPe: Tensor, latent: Tensor, pages: SeqPages, positions: Tensor, indices: Tensor | null, scale: number): Tensor {
    const rows = qLat.shape[0]!;
    const perRow: number[] = [];
    if (indices) {
      const idx = this.readSync(indices) as Int32Array;
      const w = indices.shape[1]!;
      for (let r = 0; r < rows; r++) perRow.push(idx.subarray(r * w, (r + 1) * w).filter((v) => v >= 0).length);
    }
    this.attention.push({ rows, perRow, dense: indices === null });
    return super.mlaAttention(qLat, qPe, latent, pages, positions, indices, scale);
  }
  override indexerScores(q8: Tensor, w: Tensor, kc: Tensor, ks: Tensor, pages: SeqPages, nKeys: number, positions: Tensor): Tensor {
    this.indexer.push({ rows: q8.shape[0]!, nKeys });
    return super.indexerScores(q8, w, kc, ks, pages, nKeys, positions);
  }
}

function promptOf(n: number, vocab: number, seed: number): Int32Array {
  const p = new Int32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    p[i] = (x >>> 8) % vocab;
  }
  return p;
}

async function prefillLogits(model: Model, prompt: Int32Array, opts: { dense?: boolean; chunk?: number; force?: Forcing } = {}) {
  const v = model.config.vocabSize;
  const seq = model.createCache(prompt.length + 8).newSequence();
  const out = new Float32Array(prompt.length * v);
  const selections: Int32Array[] = [];
  await model.prefill(seq, prompt, {
    logits: 'all',
    dense: opts.dense,
    chunk: opts.chunk,
    force: opts.force,
    onLogits: async (s, t) => out.set((await model.backend.read(t)) as Float32Array, s * v),
    observe: { topk: (_l, _p, own) => own && selections.push((model.backend as CpuBackend).readSync(own) as Int32Array) },
  });
  return { seq, logits: out, selections };
}

describe('sparsity', () => {
  const dir = join(work, 'bf16');
  writeRandomModel(dir, { seed: 11, config: { index_topk: K } });
  const backend = new CountingBackend();
  const model = Model.load(dir, backend);
  const v = model.config.vocabSize;
  const prompt = promptOf(64, v, 5);

  test('sparse logits differ from dense once the context exceeds index_topk', async () => {
    const sparse = await prefillLogits(model, prompt);
    const dense = await prefillLogits(model, prompt, { dense: true });
    // Rows whose context holds at most K keys select everything: identical to dense, bit for bit.
    const early = diffLogits(sparse.logits.subarray(0, K * v), dense.logits.subarray(0, K * v), v);
    assert.equal(early.maxAbs, 0);
    // Later rows attend to K of their t + 1 keys: the outputs change.
    let differing = 0;
    for (let r = K; r < prompt.length; r++) {
      const d = diffLogits(sparse.logits.subarray(r * v, (r + 1) * v), dense.logits.subarray(r * v, (r + 1) * v), v);
      if (d.maxAbs > 1e-3) differing++;
    }
    assert.ok(differing >= (prompt.length - K) * 0.9, `only ${differing} of ${prompt.length - K} long-context rows differ from dense`);
  });

  test('a decode step scores every key but attends exactly k entries per layer', async () => {
    const { seq } = await prefillLogits(model, prompt);
    backend.attention = [];
    backend.indexer = [];
    model.decode(seq, 7);
    const l = model.config.numLayers;
    assert.equal(backend.attention.length, l);
    assert.equal(backend.indexer.length, l);
    for (const a of backend.attention) {
      assert.equal(a.dense, false);
      assert.deepEqual(a.perRow, [K]);
    }
    for (const ix of backend.indexer) assert.deepEqual(ix, { rows: 1, nKeys: prompt.length + 1 });
  });

  test('entries a decode step does not select are never read', async () => {
    const first = await prefillLogits(model, prompt);
    const chosen: Int32Array[] = [];
    const clean = (await model.backend.read(
      model.decode(first.seq, 7, { observe: { topk: (_l, _p, own) => own && chosen.push(backend.readSync(own) as Int32Array) } }),
    )) as Float32Array;
    assert.equal(chosen.length, model.config.numLayers);

    // Same state again, then poison every cached latent entry outside each layer's selection.
    const again = await prefillLogits(model, prompt);
    const table = backend.readSync(again.seq.pages().blockTable) as Int32Array;
    const row = model.config.kvLoraRank + model.config.qkRopeHeadDim;
    again.seq.cache.layers.forEach((layer, l) => {
      const latent = backend.readSync(layer.latent) as Float32Array;
      const keep = new Set(chosen[l]);
      for (let pos = 0; pos < prompt.length; pos++) {
        if (keep.has(pos)) continue;
        const slot = table[Math.floor(pos / 64)]! * 64 + (pos % 64);
        latent.fill(NaN, slot * row, (slot + 1) * row);
      }
    });
    const poisoned = (await model.backend.read(model.decode(again.seq, 7))) as Float32Array;
    assert.ok(poisoned.every(Number.isFinite), 'a poisoned (unselected) entry was read');
    assert.equal(diffLogits(poisoned, clean, v).maxAbs, 0);

    // Dense attention does read them.
    const dense = await prefillLogits(model, prompt);
    dense.seq.cache.layers.forEach((layer) => (backend.readSync(layer.latent) as Float32Array).fill(NaN, 0, row));
    const denseOut = (await model.backend.read(model.decode(dense.seq, 7, { dense: true }))) as Float32Array;
    assert.ok(denseOut.some(Number.isNaN));
  });

  test('prefill in chunks equals one chunk (bit for bit with the TypeScript kernels)', async () => {
    const whole = await prefillLogits(model, prompt, { chunk: 64 });
    const chunked = await prefillLogits(model, prompt, { chunk: 5 });
    // The WASM kernels pick different SIMD code paths for 5 and 64 rows: float32 noise only.
    assert.ok(diffLogits(chunked.logits, whole.logits, v).maxAbs <= 1e-5);
    const ref = Model.load(dir, new CpuBackend({ kernels: 'js' }));
    const refWhole = await prefillLogits(ref, prompt, { chunk: 64 });
    const refChunked = await prefillLogits(ref, prompt, { chunk: 5 });
    assert.equal(diffLogits(refChunked.logits, refWhole.logits, v).maxAbs, 0);
  });

  test('prefill then decode agrees with one long prefill when the same selections are used', async () => {
    const steps = 6;
    const { seq } = await prefillLogits(model, prompt);
    const decodeSel: Int32Array[][] = [];
    const tokens: number[] = [];
    const decodeLogits: Float32Array[] = [];
    let next = 3;
    for (let i = 0; i < steps; i++) {
      const sel: Int32Array[] = [];
      tokens.push(next);
      const out = (await model.backend.read(model.decode(seq, next, { observe: { topk: (_l, _p, own) => own && sel.push(backend.readSync(own) as Int32Array) } }))) as Float32Array;
      decodeSel.push(sel);
      decodeLogits.push(out);
      next = out.indexOf(Math.max(...out));
    }
    // One prefill over prompt + decode inputs, replaying the decode steps' selections at their rows.
    const full = Int32Array.from([...prompt, ...tokens]);
    const own = await prefillLogits(model, prompt); // the prompt rows' own selections, per layer
    const l = model.config.numLayers;
    const force: Forcing = {
      topk: (layer, positions) => {
        const out = new Int32Array(positions.length * K).fill(-1);
        positions.forEach((pos, r) => {
          const src = pos < prompt.length ? own.selections[layer]!.subarray(pos * K, (pos + 1) * K) : decodeSel[pos - prompt.length]![layer]!;
          out.set(src, r * K);
        });
        return out;
      },
    };
    assert.equal(own.selections.length, l);
    const long = await prefillLogits(model, full, { force, chunk: full.length });
    for (let i = 0; i < steps; i++) {
      const row = long.logits.subarray((prompt.length + i) * v, (prompt.length + i + 1) * v);
      const d = diffLogits(row, decodeLogits[i]!, v);
      assert.ok(d.maxAbs <= 1e-5, `decode step ${i}: max abs diff ${d.maxAbs}`);
    }
  });
});
