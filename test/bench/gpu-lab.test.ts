/**
 * `dsa bench gpu` end to end on the machine's WebGPU adapter (lavapipe in CI), at toy sizes: every
 * section runs, every check passes, the rows carry the fields the docs read (the numbers are the
 * device's own: only an H200 run means anything, this guards the lab's code).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hasGpuAdapter } from '../helpers/gpu-adapter.js';
import { cli } from '../helpers/cli.js';

test('bench gpu: copy, matmul, core and indexer sections at toy sizes, every check within its bound', async (t) => {
  if (!(await hasGpuAdapter(t))) return;
  const json = join(mkdtempSync(join(tmpdir(), 'dsa-gpu-lab-')), 'lab.jsonl');
  const r = await cli(['bench', 'gpu', '--sections', 'copy,matmul,core,indexer', '--ctx', '128', '--batch', '1,2', '--runs', '1', '--matmul-n', '128', '--json', json]);
  assert.equal(r.code, 0, r.stderr);
  const rows = readFileSync(json, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const of = (section: string) => rows.filter((x) => x.section === section);
  assert.ok((of('copy')[0]?.GBps as number) > 0, 'the copy kernel measured');
  assert.ok(of('matmul').some((x) => x.variant === 'f32-tiled' && x.maxAbsErrVsCpu === 0 && (x.TFLOPs as number) > 0), 'the f32 GEMM checked and timed');
  const checks = of('check');
  assert.ok(checks.length >= 10, `${checks.length} checks`);
  for (const c of checks) {
    const bound = String(c.kernel).startsWith('attention-matrix') ? 1e-3 : 1e-4;
    assert.ok(c.error === undefined && (c.maxErrOverScale as number) <= bound, `${c.kernel}: ${JSON.stringify(c)}`);
  }
  const core = of('core');
  assert.deepEqual(core.map((x) => x.batch), [1, 2]);
  for (const x of core) {
    for (const f of ['dsa_ms', 'dense_ms', 'dsa_batched_ms', 'dense_batched_ms', 'dsa_batched_indexer_ms']) assert.ok((x[f] as number) > 0, `${f}: ${x[f]}`);
  }
  assert.equal(of('indexer').length > 0, true, 'the indexer section reports (its kernels, or that the device has none)');
  assert.match(r.stdout, /one grid per op over the batch/);
});
