/**
 * `dsa bench gpu --from FILE --plot OUT`: a saved kernel-lab run (and the PyTorch peer's rows)
 * redrawn without a GPU; malformed files are named with their line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'dsa-gpu-plot-'));
const lab = join(dir, 'lab.jsonl');
const peer = join(dir, 'peer.jsonl');
writeFileSync(
  lab,
  [
    { section: 'copy', GBps: 3000 },
    { section: 'core', batch: 1, ctx: 4096, dsa_ms: 0.29, dense_ms: 0.26, dsa_batched_ms: 0.3, dense_batched_ms: 0.27 },
    { section: 'core', batch: 1, ctx: 131072, dsa_ms: 0.62, dense_ms: 6.9 },
    { section: 'core', batch: 16, ctx: 131072, dsa_ms: 10.3, dense_ms: 110, dsa_batched_ms: 6.1, dense_batched_ms: 104 },
  ].map((r) => JSON.stringify(r)).join('\n') + '\n',
);
writeFileSync(peer, [{ gpu: 'x' }, { ctx: 131072, batch: 16, dense_ms: 4.1, dsa_ms: 1.26 }].map((r) => JSON.stringify(r)).join('\n'));

test('bench gpu --from --plot draws our lines and the peer\'s', async () => {
  const out = join(dir, 'core.svg');
  const r = await cli(['bench', 'gpu', '--from', lab, '--peer', peer, '--plot', out]);
  assert.equal(r.code, 0, r.stderr);
  const svg = readFileSync(out, 'utf8');
  for (const line of ['ours DSA, batch 1', 'ours dense, batch 16', 'ours DSA one grid, batch 16', 'ours dense one grid, batch 16', 'PyTorch DSA, batch 16', 'PyTorch dense, batch 16']) {
    assert.ok(svg.includes(line), line);
  }
  assert.ok(!svg.includes('one grid, batch 1<') && !svg.includes('one grid, batch 1 '), 'no one-grid line at batch 1 (the same as per sequence)');
  assert.ok(!svg.includes('batch 16…') && !svg.includes('batch…'), 'legend labels are whole');
});

test('bench gpu --from: needs --plot; a malformed line is named', async () => {
  let r = await cli(['bench', 'gpu', '--from', lab]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--from needs --plot/);
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"section":"core"}\n{oops\n');
  r = await cli(['bench', 'gpu', '--from', bad, '--plot', join(dir, 'x.svg')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad\.jsonl, line 2/);
  r = await cli(['bench', 'gpu', '--from', peer, '--plot', join(dir, 'x.svg')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no attention-core rows/);
});
