/**
 * The whole model on the WebGPU backend against the reference fixtures, forced and free, with the
 * fixtures' own tolerances (as test/model/golden.test.ts does for the CPU backend); and with the
 * int8 indexer cache against the same run on the CPU backend (test/model/indexer-cache.test.ts
 * checks that one against the FP8 reference).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu.js';
import { WebGpuBackend } from '../../src/backend/webgpu.js';
import { runLogits } from '../../src/cli/logits.js';
import { compareFiles } from '../../src/model/compare.js';
import { Model } from '../../src/model/model.js';
import { fixture, fixtureMeta, fixturePrompt, selectionAgreement } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'dsa-gpu-golden-'));
let backend: WebGpuBackend;
before(async () => {
  backend = await WebGpuBackend.create();
});
after(() => {
  backend?.destroy();
  rmSync(work, { recursive: true, force: true });
});

for (const name of ['tiny-bf16', 'tiny-fp8']) {
  describe(`WebGPU golden ${name}`, () => {
    const dir = fixture(name);
    const expected = join(dir, 'expected.safetensors');
    const meta = fixtureMeta(name);
    const prompt = fixturePrompt(name);

    for (const mode of ['forced', 'free'] as const) {
      test(`${mode}: logits, selections and greedy tokens`, async () => {
        const model = Model.load(dir, backend);
        const out = join(work, `${name}-${mode}.safetensors`);
        await runLogits({ model, prompt, decode: meta.decode_steps, out, force: mode === 'forced' ? expected : undefined });
        const c = compareFiles(out, expected);
        const tol = meta[mode];
        console.log(`webgpu ${name} ${mode}: prefill rel ${c.prefill!.rel.toExponential(2)}, decode rel ${c.decode!.rel.toExponential(2)}, selections same ${(100 * selectionAgreement(c)).toFixed(2)}%`);
        assert.ok(c.prefill!.rel <= tol.rel_tol, `prefill logits rel diff ${c.prefill!.rel} > ${tol.rel_tol}`);
        assert.ok(c.decode!.rel <= tol.rel_tol, `decode logits rel diff ${c.decode!.rel} > ${tol.rel_tol}`);
        assert.ok(selectionAgreement(c) >= tol.min_same_selection, `selections agree ${selectionAgreement(c)}`);
        assert.equal(c.decodeTokensEqual, true);
      });
    }
  });
}

test('tiny-bf16, int8 indexer cache: WebGPU against CPU — logits, selections and greedy tokens (free)', async () => {
  const dir = fixture('tiny-bf16');
  const meta = fixtureMeta('tiny-bf16');
  const prompt = fixturePrompt('tiny-bf16');
  const cpuOut = join(work, 'int8-cpu.safetensors');
  const gpuOut = join(work, 'int8-gpu.safetensors');
  await runLogits({ model: Model.load(dir, new CpuBackend()), prompt, decode: meta.decode_steps, out: cpuOut, indexerCache: 'int8' });
  await runLogits({ model: Model.load(dir, backend), prompt, decode: meta.decode_steps, out: gpuOut, indexerCache: 'int8' });
  const c = compareFiles(gpuOut, cpuOut);
  console.log(`webgpu vs cpu, int8 indexer: prefill rel ${c.prefill!.rel.toExponential(2)}, decode rel ${c.decode!.rel.toExponential(2)}, selections same ${(100 * selectionAgreement(c)).toFixed(2)}%`);
  assert.ok(c.prefill!.rel <= meta.free.rel_tol, `prefill logits rel diff ${c.prefill!.rel} > ${meta.free.rel_tol}`);
  assert.ok(c.decode!.rel <= meta.free.rel_tol, `decode logits rel diff ${c.decode!.rel} > ${meta.free.rel_tol}`);
  assert.ok(selectionAgreement(c) >= meta.free.min_same_selection, `selections agree ${selectionAgreement(c)}`);
  assert.equal(c.decodeTokensEqual, true);
});
