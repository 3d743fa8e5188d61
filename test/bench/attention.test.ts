/**
 * `dsa bench attention` on a small config through the CLI: JSON rows, both engines, the breakdown,
 * the dense path below index_topk, the plot; the timing wrapper and the crossover rule on their own.
 * No timing assertions: speed is shown by benchmarks, not unit tests.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { CpuBackend } from '../../src/backend/cpu.js';
import { byCategory, categoryOf, TimingBackend } from '../../src/bench/timing-backend.js';
import { crossover } from '../../src/bench/attention.js';
import { hasGpuAdapter } from '../helpers/gpu-adapter.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsa-bench-attn-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const TOPK = 16;
const configFile = path.join(tmp, 'config.json');
fs.writeFileSync(
  configFile,
  JSON.stringify({
    model_type: 'deepseek_v32',
    vocab_size: 512,
    hidden_size: 256,
    intermediate_size: 512,
    moe_intermediate_size: 64,
    num_hidden_layers: 2,
    first_k_dense_replace: 1,
    num_attention_heads: 4,
    n_routed_experts: 8,
    n_shared_experts: 1,
    num_experts_per_tok: 2,
    n_group: 4,
    topk_group: 2,
    q_lora_rank: 128,
    kv_lora_rank: 128,
    qk_nope_head_dim: 32,
    qk_rope_head_dim: 16,
    v_head_dim: 32,
    rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 1024, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
    max_position_embeddings: 4096,
    index_n_heads: 4,
    index_head_dim: 32,
    index_topk: TOPK,
    quantization_config: { quant_method: 'fp8', fmt: 'e4m3', weight_block_size: [128, 128], scale_fmt: 'ue8m0' },
  }),
);

const MS_FIELDS = ['dense_ms', 'dsa_ms', 'ratio', 'indexer_ms', 'topk_ms', 'attn_ms', 'proj_ms', 'dense_attn_ms', 'dense_proj_ms'] as const;

type Row = Record<string, unknown> & Record<(typeof MS_FIELDS)[number], number>;

async function bench(args: string[]): Promise<{ stdout: string; rows: Row[] }> {
  const json = path.join(tmp, `rows-${Math.random().toString(36).slice(2)}.json`);
  const r = await cli(['bench', 'attention', '--config', configFile, '--runs', '2', '--budget', '2', '--json', json, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return { stdout: r.stdout, rows: JSON.parse(fs.readFileSync(json, 'utf8')) as Row[] };
}

test('decode: one row per context with both engines, the breakdown and the setup; dense path at ctx < index_topk; plot', async () => {
  const svgFile = path.join(tmp, 'plot.svg');
  const { stdout, rows } = await bench(['--ctx', '8,64,256', '--plot', svgFile]);
  assert.deepEqual(
    rows.map((r) => r.ctx),
    [8, 64, 256],
  );
  for (const r of rows) {
    for (const f of MS_FIELDS) assert.equal(typeof r[f], 'number', `${f} at ctx ${r.ctx}`);
    assert.ok(r.dense_ms > 0 && r.dsa_ms > 0, 'both engines ran');
    assert.ok((r.dense_runs as number) >= 1 && (r.dsa_runs as number) >= 1);
    assert.ok(Math.abs(r.ratio - r.dense_ms / r.dsa_ms) < 1e-9);
    assert.ok(r.attn_ms > 0 && r.dense_attn_ms > 0 && r.proj_ms > 0 && r.dense_proj_ms > 0);
    assert.equal(r.batch, 1);
    assert.equal(r.mode, 'decode');
    assert.equal(r.cache_format, 'bf16');
    // bf16 latent (128 + 16) · 2 = 288 B (no prefill copy outside the f32 cache), the indexer key 32 + 4.
    assert.equal(r.cache_bytes_per_token, 288 + 36);
    assert.equal(r.index_topk, TOPK);
    assert.equal(r.hidden_size, 256);
    assert.equal(typeof (r.machine as { cpu: string }).cpu, 'string');
  }
  const [small, ...large] = rows;
  // Position 8: 9 keys ≤ index_topk, every key is selected: no indexer scores, no top-k.
  assert.equal(small!.dsa_dense_path, true);
  assert.equal(small!.indexer_ms, 0);
  assert.equal(small!.topk_ms, 0);
  assert.equal(small!.indexer_query_ms, 0);
  for (const r of large) {
    assert.equal(r.dsa_dense_path, false);
    assert.ok(r.indexer_ms > 0 && r.topk_ms > 0, `indexer and top-k ran at ctx ${r.ctx}`);
    assert.ok((r.indexer_query_ms as number) > 0);
  }
  assert.match(stdout, /note: ctx 8: position \+ 1 ≤ index_topk \(16\): DSA takes the dense path/);
  assert.doesNotMatch(stdout, /note: ctx 64/);
  assert.match(stdout, /crossover: /);
  assert.match(stdout, /machine: /);
  assert.match(stdout, /\n\s+ctx\s+dense ms\s+DSA ms\s+dense÷DSA\s+indexer\s+top-k\s+attention\s+projections/);

  const svg = fs.readFileSync(svgFile, 'utf8');
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\s*$/);
  assert.ok(svg.includes('dense MLA') && svg.includes('DSA'), 'both series are named in the plot');
});

test('prefill chunks, a batch of two, the fp8 cache, --set, and a PNG plot', async () => {
  const png = path.join(tmp, 'plot.png');
  const { rows } = await bench(['--prefill', '--chunk', '4', '--ctx', '4,32', '--batch', '2', '--cache', 'fp8', '--set', '{"index_topk": 12}', '--plot', png]);
  assert.equal(rows.length, 2);
  for (const r of rows) {
    assert.equal(r.mode, 'prefill');
    assert.equal(r.rows_per_step, 4);
    assert.equal(r.batch, 2);
    assert.equal(r.dsa_ops_per_step, 'one call over all sequences');
    assert.equal(r.cache_format, 'fp8');
    assert.equal(r.index_topk, 12);
    // fp8 latent: 128 codes + 1 scale (4 B) + 16 bf16 = 164 B, plus the indexer key (no prefill copy
    // with ue8m0 activation scales: the cached c_kv already is the act-quantized one).
    assert.equal(r.cache_bytes_per_token, 164 + 36);
    assert.ok(r.dense_ms > 0 && r.dsa_ms > 0);
  }
  // Rows at positions 4..7 attend ≤ 8 keys ≤ 12: dense path. Positions 32..35: the indexer selects.
  assert.equal(rows[0]!.dsa_dense_path, true);
  assert.equal(rows[0]!.topk_ms, 0);
  assert.equal(rows[1]!.dsa_dense_path, false);
  assert.ok(rows[1]!.topk_ms > 0);
  assert.deepEqual([...fs.readFileSync(png).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
});

test('--indexer-cache int8: the int8 scan in the indexer column, recorded in the rows; heads the int8 kernels cannot tile are a one-line error', async () => {
  const { rows } = await bench(['--ctx', '32', '--batch', '2', '--indexer-cache', 'int8', '--set', '{"index_n_heads": 16}']);
  assert.equal(rows[0]!.indexer_cache, 'int8');
  assert.ok(rows[0]!.indexer_ms > 0, 'the int8 scan is timed as the indexer');
  const r = await cli(['bench', 'attention', '--config', configFile, '--ctx', '32', '--runs', '2', '--indexer-cache', 'int8']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /int8 indexer cache needs index_n_heads a multiple of 16 and index_head_dim of 32 \(this model: 4 heads of 32\)/);
  const u = await cli(['bench', 'attention', '--indexer-cache', 'int4']);
  assert.match(u.stderr, /--indexer-cache must be one of fp8, int8/);
});

test('--per-sequence: the batch’s cache writes, indexer, top-k and attention once per sequence', async () => {
  const { stdout, rows } = await bench(['--ctx', '32', '--batch', '3', '--per-sequence']);
  assert.equal(rows[0]!.dsa_ops_per_step, 'per sequence');
  assert.match(stdout, /indexer, top-k and attention per sequence \(--per-sequence\)/);
});

test('bad options are one-line errors', async () => {
  for (const args of [['--ctx', '4,x'], ['--cache', 'f16'], ['--set', '[1]'], ['--config', path.join(tmp, 'missing.json')]]) {
    const r = await cli(['bench', 'attention', ...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.ok(r.stderr.trim().split('\n').length <= 2, r.stderr);
  }
});

test('the timing wrapper times every op by name and attributes ops to categories', async () => {
  const tb = new TimingBackend(new CpuBackend());
  const b = tb.backend;
  assert.equal(b.name, 'cpu+timing');
  const x = b.upload(Float32Array.from([3, 1, 4, 1, 5, 9, 2, 6]), [1, 8]);
  b.scope(() => b.add(x, x));
  const sel = b.topk(x, 3, b.upload(Int32Array.of(7), [1]));
  assert.deepEqual([...(await b.read(sel))], [4, 5, 7]);
  const t = tb.snapshot();
  assert.deepEqual([...t.keys()].sort(), ['add', 'read', 'topk', 'upload']);
  assert.equal(t.get('upload')!.calls, 2);
  assert.equal(t.has('scope'), false);
  const c = byCategory(t);
  assert.deepEqual(Object.keys(c).sort(), ['attention', 'indexer', 'projections', 'topk']);
  assert.equal(c.topk, t.get('topk')!.ms);
  assert.equal(c.attention, 0);
  assert.ok(Math.abs(c.projections - (t.get('add')!.ms + t.get('upload')!.ms + t.get('read')!.ms)) < 1e-9);
  assert.equal(categoryOf('indexerScores'), 'indexer');
  assert.equal(categoryOf('mlaAttention'), 'attention');
  assert.equal(categoryOf('linear'), 'projections');
  tb.reset();
  assert.equal(tb.totalMs(), 0);
});

test('crossover: the smallest ctx from which DSA stays faster, interpolated in log2(ctx)', () => {
  const p = (ctx: number, dense: number, dsa: number, densePath = false) => ({ ctx, dense, dsa, densePath });
  // Slower at 1024, faster from 4096: the crossing where dense − DSA = 0 between them (2048 here).
  const c = crossover([p(1024, 10, 13), p(4096, 30, 27), p(16384, 100, 30)], 0)!;
  assert.equal(c.measuredCtx, 4096);
  assert.equal(c.interpolated, true);
  assert.ok(Math.abs(c.ctx - 2048) < 1e-6);
  // A dip back above dense moves the crossover to after it.
  assert.equal(crossover([p(1024, 10, 9), p(4096, 30, 31), p(16384, 100, 30)], 0)!.measuredCtx, 16384);
  // Dense-path points never count as faster, and nothing is interpolated across them.
  assert.deepEqual(crossover([p(1024, 12, 10, true), p(4096, 30, 20)], 2047), { ctx: 4096, measuredCtx: 4096, interpolated: false, lowerCtx: 2047 });
  assert.equal(crossover([p(1024, 10, 12), p(4096, 30, 31)], 0), null);
  assert.deepEqual(crossover([p(4096, 30, 20), p(8192, 60, 21)], 0), { ctx: 4096, measuredCtx: 4096, interpolated: false, lowerCtx: null });
});

test('--backend webgpu: the GPU\'s own time per op and category from timestamp queries (rows and table)', async (t) => {
  if (!(await hasGpuAdapter(t))) return;
  const { rows, stdout } = await bench(['--backend', 'webgpu', '--ctx', '32', '--batch', '2']);
  const row = rows[0]!;
  const dsa = row.gpu_dsa_ms as Record<string, number>;
  const ops = row.gpu_dsa_ops_ms as Record<string, number>;
  assert.ok(dsa && ops, JSON.stringify(row));
  for (const c of ['indexer', 'topk', 'attention', 'projections']) assert.ok(dsa[c]! > 0, `${c}: ${dsa[c]}`);
  assert.ok(ops.indexerScores! > 0 && ops.mlaAttention! > 0 && ops.linear! > 0, JSON.stringify(ops));
  // The categories are the ops summed.
  const total = Object.values(ops).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(Object.values(dsa).reduce((a, b) => a + b, 0) - total) <= 1e-9 * total + 1e-12);
  assert.match(stdout, /GPU time per step \(timestamp queries/);
});
