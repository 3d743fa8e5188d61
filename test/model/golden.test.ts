/**
 * Golden tests against the reference fixtures (float32 PyTorch port of the DeepSeek-V3.2-Exp demo):
 * forced (the reference's selections, routes and decode tokens replayed: logits within float32 noise
 * for bf16 weights, ~1e-2 for FP8 weights) and free (own choices: selections nearly all identical,
 * logits close, greedy tokens identical), plus the dense baseline, the indexer's scores, the
 * rotary tables and the per-layer hidden states.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu.js';
import { runLogits } from '../../src/cli/logits.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { compareFiles, diffLogits } from '../../src/model/compare.js';
import { Model } from '../../src/model/model.js';
import { ropeTables } from '../../src/model/rope.js';
import type { Tensor } from '../../src/backend/backend.js';
import { fixture, fixtureMeta, fixturePrompt, selectionAgreement } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'dsa-golden-'));
after(() => rmSync(work, { recursive: true, force: true }));

for (const name of ['tiny-bf16', 'tiny-fp8']) {
  describe(`golden ${name}`, () => {
    const dir = fixture(name);
    const expected = join(dir, 'expected.safetensors');
    const meta = fixtureMeta(name);
    const prompt = fixturePrompt(name);
    const model = Model.load(dir, new CpuBackend());

    test('forced: the reference choices replayed give its logits', async () => {
      const out = join(work, `${name}-forced.safetensors`);
      await runLogits({ model, prompt, decode: meta.decode_steps, out, force: expected });
      const c = compareFiles(out, expected);
      console.log(`${name} forced: prefill rel ${c.prefill!.rel.toExponential(2)}, decode rel ${c.decode!.rel.toExponential(2)}, own selections same ${(100 * selectionAgreement(c)).toFixed(2)}%`);
      assert.ok(c.prefill!.rel <= meta.forced.rel_tol, `prefill logits rel diff ${c.prefill!.rel} > ${meta.forced.rel_tol}`);
      assert.ok(c.decode!.rel <= meta.forced.rel_tol, `decode logits rel diff ${c.decode!.rel} > ${meta.forced.rel_tol}`);
      assert.ok(selectionAgreement(c) >= meta.forced.min_same_selection, `own selections agree ${selectionAgreement(c)}`);
      assert.equal(c.decodeTokensEqual, true);
      assert.equal(c.prefill!.argmaxDiffers + c.decode!.argmaxDiffers, 0);
    });

    test('free: own selections, routes and greedy tokens', async () => {
      const out = join(work, `${name}-free.safetensors`);
      await runLogits({ model, prompt, decode: meta.decode_steps, out });
      const c = compareFiles(out, expected);
      console.log(`${name} free: prefill rel ${c.prefill!.rel.toExponential(2)}, decode rel ${c.decode!.rel.toExponential(2)}, selections same ${(100 * selectionAgreement(c)).toFixed(2)}%, experts same ${(100 * c.experts!.fraction).toFixed(2)}%`);
      assert.ok(selectionAgreement(c) >= meta.free.min_same_selection, `selections agree ${selectionAgreement(c)}`);
      assert.ok(c.prefill!.rel <= meta.free.rel_tol, `prefill logits rel diff ${c.prefill!.rel}`);
      assert.ok(c.decode!.rel <= meta.free.rel_tol, `decode logits rel diff ${c.decode!.rel}`);
      if (meta.free.tokens_must_match) assert.equal(c.decodeTokensEqual, true, 'greedy decode tokens differ');
      assert.ok(c.experts!.fraction >= 0.99, `expert routes agree ${c.experts!.fraction}`);
    });

    test('dense baseline (no selection) matches the dense reference', async () => {
      const ref = SafetensorsFile.open(expected);
      try {
        const v = model.config.vocabSize;
        const b = model.backend;
        const seq = model.createCache(prompt.length + meta.decode_steps).newSequence();
        const prefill = new Float32Array(prompt.length * v);
        await model.prefill(seq, prompt, { logits: 'all', dense: true, onLogits: async (s, t) => prefill.set((await b.read(t)) as Float32Array, s * v) });
        const ids = ref.readInt32('decode_input_ids');
        const decode = new Float32Array(ids.length * v);
        for (let i = 0; i < ids.length; i++) decode.set((await b.read(model.decode(seq, ids[i]!, { dense: true }))) as Float32Array, i * v);
        const last = diffLogits(prefill.subarray((prompt.length - 1) * v), ref.readF32('dense_prefill_logits_last'), v);
        const dec = diffLogits(decode, ref.readF32('dense_decode_logits'), v);
        console.log(`${name} dense: last prefill rel ${last.rel.toExponential(2)}, decode rel ${dec.rel.toExponential(2)}`);
        assert.ok(last.rel <= meta.forced.rel_tol && dec.rel <= meta.forced.rel_tol);
        if (ref.has('dense_prefill_logits')) {
          const all = diffLogits(prefill, ref.readF32('dense_prefill_logits'), v);
          assert.ok(all.rel <= meta.forced.rel_tol, `dense prefill rel ${all.rel}`);
        }
      } finally {
        ref.close();
      }
    });

    test('indexer scores, rotary tables and hidden states', async () => {
      const ref = SafetensorsFile.open(expected);
      try {
        const b = model.backend;
        const p = prompt.length;
        const l = model.config.numLayers;
        // Rotary tables: the reference's cos/sin of every position.
        const refCos = ref.readF32('rope_cos');
        const half = model.config.qkRopeHeadDim / 2;
        const ours = ropeTables(model.config, refCos.length / half);
        assert.ok(diffLogits(ours.cos, refCos, half).maxAbs <= 1e-6);
        assert.ok(diffLogits(ours.sin, ref.readF32('rope_sin'), half).maxAbs <= 1e-6);

        // Scores of every row (forced selections keep the run on the reference's path).
        const scores: Tensor[][] = Array.from({ length: l }, () => []);
        const hidden: Tensor[][] = Array.from({ length: l }, () => []);
        const seq = model.createCache(p).newSequence();
        const { Replay } = await import('../../src/model/replay.js');
        const replay = new Replay(expected, model.config, prompt, 0);
        await model.prefill(seq, prompt, {
          logits: 'none',
          chunk: p,
          force: replay,
          observe: { indexScores: (layer, _pos, s) => scores[layer]!.push(s), hidden: (layer, _pos, h) => hidden[layer]!.push(h) },
        });
        const refLast = ref.readF32('prefill_index_scores_last');
        for (let layer = 0; layer < l; layer++) {
          const all = (await b.read(scores[layer]![0]!)) as Float32Array;
          const last = all.subarray((p - 1) * p, p * p);
          const d = diffLogits(last, refLast.subarray(layer * p, (layer + 1) * p), p);
          // Most entries match to ~1e-6 relative; an fp8 rounding flip moves a few by one fp8 step.
          assert.ok(d.rel <= 1e-2, `layer ${layer} last-row scores rel ${d.rel}`);
          // Float32 summation order: ~1e-7 of the row's largest |score| (with w_h of both signs, a
          // per-entry relative bound would be meaningless for small scores).
          const rowMax = Math.max(...refLast.subarray(layer * p, (layer + 1) * p).map(Math.abs));
          let close = 0;
          for (let s = 0; s < p; s++) if (Math.abs(last[s]! - refLast[layer * p + s]!) <= 1e-6 * rowMax) close++;
          assert.ok(close / p >= 0.95, `layer ${layer}: only ${close}/${p} last-row scores within 1e-6 of the row max`);
          if (ref.has('prefill_index_scores')) {
            const full = ref.readF32('prefill_index_scores').subarray(layer * p * p, (layer + 1) * p * p);
            let ok = 0;
            let n = 0;
            for (let t = 0; t < p; t++) {
              let rm = 0;
              for (let s = 0; s <= t; s++) rm = Math.max(rm, Math.abs(full[t * p + s]!));
              for (let s = 0; s < p; s++) {
                const i = t * p + s;
                if (s > t) {
                  assert.equal(all[i], -Infinity, `score of query ${t} for future key ${s} must be -inf`);
                  continue;
                }
                n++;
                if (Math.abs(all[i]! - full[i]!) <= 1e-6 * rm) ok++;
              }
            }
            assert.ok(ok / n >= 0.95, `layer ${layer}: ${ok}/${n} scores within 1e-6 of their row max`);
          }
        }
        if (ref.has('prefill_hidden')) {
          const refHidden = ref.readF32('prefill_hidden');
          const d = model.config.hiddenSize;
          for (let layer = 0; layer < l; layer++) {
            const h = (await b.read(hidden[layer]![0]!)) as Float32Array;
            const diff = diffLogits(h, refHidden.subarray(layer * p * d, (layer + 1) * p * d), d);
            assert.ok(diff.rel <= 1e-5, `layer ${layer} hidden rel ${diff.rel}`);
          }
        }
      } finally {
        ref.close();
      }
    });
  });
}
