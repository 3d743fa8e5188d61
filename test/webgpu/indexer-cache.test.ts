/**
 * The int8 indexer cache (--indexer-cache int8) on the WebGPU backend against the same run on the
 * CPU backend (test/model/indexer-cache.test.ts checks that one against the FP8 reference): tiny-bf16,
 * free, the fixture's free tolerances between the two backends.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CpuBackend } from '../../src/backend/cpu.js';
import { WebGpuBackend } from '../../src/backend/webgpu.js';
import { runLogits } from '../../src/cli/logits.js';
import { compareFiles } from '../../src/model/compare.js';
import { Model } from '../../src/model/model.js';
import { fixture, fixtureMeta, fixturePrompt, selectionAgreement } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'dsa-gpu-indexer-cache-'));
let backend: WebGpuBackend;
before(async () => {
  backend = await WebGpuBackend.create();
});
after(() => {
  backend?.destroy();
  rmSync(work, { recursive: true, force: true });
});

test('tiny-bf16, int8 indexer cache: WebGPU against CPU — logits, selections and greedy tokens', async () => {
  const dir = fixture('tiny-bf16');
  const meta = fixtureMeta('tiny-bf16');
  const prompt = fixturePrompt('tiny-bf16');
  const cpuOut = join(work, 'cpu.safetensors');
  const gpuOut = join(work, 'gpu.safetensors');
  await runLogits({ model: Model.load(dir, new CpuBackend()), prompt, decode: meta.decode_steps, out: cpuOut, indexerCache: 'int8' });
  await runLogits({ model: Model.load(dir, backend), prompt, decode: meta.decode_steps, out: gpuOut, indexerCache: 'int8' });
  const c = compareFiles(gpuOut, cpuOut);
  console.log(`webgpu vs cpu, int8 indexer: prefill rel ${c.prefill!.rel.toExponential(2)}, decode rel ${c.decode!.rel.toExponential(2)}, selections same ${(100 * selectionAgreement(c)).toFixed(2)}%`);
  assert.ok(c.prefill!.rel <= meta.free.rel_tol, `prefill logits rel diff ${c.prefill!.rel} > ${meta.free.rel_tol}`);
  assert.ok(c.decode!.rel <= meta.free.rel_tol, `decode logits rel diff ${c.decode!.rel} > ${meta.free.rel_tol}`);
  assert.ok(selectionAgreement(c) >= meta.free.min_same_selection, `selections agree ${selectionAgreement(c)}`);
  assert.equal(c.decodeTokensEqual, true);
});
