/**
 * `dsa cost`: FLOP and byte counts of a tiny config against hand-computed values, the roofline,
 * the shape of the curves (monotonic, DSA like dense at short positions and cheaper at 128K), the
 * paper's four 128K numbers within ±25% with the documented defaults, the JSON, the plot, and the
 * `measured` profile from a bench JSON (accepted, or a clear error naming the file).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { rooflineSeconds, specFromConfig, tokenOps, v31Spec, v32Spec, type Deployment, type Op } from '../../src/cost/model.js';
import { gpuProfile, GPU_DEPLOYMENT } from '../../src/cost/profiles.js';
import { costAt, crossover, JSON_POSITIONS, PAPER_128K, PHASES, type CostSetup } from '../../src/cost/report.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsa-cost-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** bf16 weights (no quantization_config): 2 bytes per weight, bf16 FLOPs. */
const TINY = {
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
  max_position_embeddings: 4096,
  index_n_heads: 4,
  index_head_dim: 32,
  index_topk: 16,
};
const ONE: Deployment = { batch: 1, prefillTokens: 1, expertParallel: 1, mtpTokens: 1, mtpAcceptance: 0, prefillDenseBelow: null };

const find = (ops: Op[], name: string): Op => {
  const op = ops.find((o) => o.name === name);
  assert.ok(op, `no op '${name}' in ${ops.map((o) => o.name).join(', ')}`);
  return op;
};

test('FLOPs and bytes of a tiny config match hand-computed values', () => {
  const dsa = specFromConfig(TINY, 'tiny', 'tiny.json');
  const dense = specFromConfig({ ...TINY, index_topk: undefined }, 'tiny-dense', 'tiny.json');
  assert.equal(dsa.dsa, true);
  assert.equal(dense.dsa, false);
  assert.equal(dense.latentBytes, 2 * (128 + 16)); // bf16 [c_kv | k_rope]
  assert.equal(dsa.latentBytes, 128 + 4 + 2 * 16); // FP8 c_kv + one fp32 scale + bf16 k_rope
  const t = 99; // N = 100 keys, above index_topk 16
  const dec = tokenOps(dense, 'decode', t, ONE);
  // q_a 256·128 + q_b 128·4·48 + kv_a 256·144 + kv_b 128·4·64 + o 4·32·256 = 159744 weights, 2 layers.
  assert.deepEqual(find(dec, 'attention projections').work, { bf16: 2 * 159744 * 2, fp8: 0, vector: 0, bytes: 159744 * 2 * 2 });
  // MQA: 100 keys · (2·4·(128+16) + 2·4·128) per layer; reads 100 · 288 B per layer.
  assert.deepEqual(find(dec, 'dense attention').work, { bf16: 2 * 100 * 2176, fp8: 0, vector: 0, bytes: 2 * 100 * 288 });
  // MHA prefill: 100 keys · (2·4·48 + 2·4·32) per layer, compute-bound.
  assert.deepEqual(find(tokenOps(dense, 'prefill', t, ONE), 'dense attention').work, { bf16: 2 * 100 * 640, fp8: 0, vector: 0, bytes: 0 });
  // MoE (1 layer): expert 3·256·64 = 49152; 2 routed + 1 shared, gate 256·8; batch 1 hits 2 experts.
  assert.deepEqual(find(dec, 'MoE FFN').work, { bf16: 2 * 3 * 49152 + 2 * 256 * 8, fp8: 0, vector: 0, bytes: 2 * (3 * 49152 + 256 * 8) });
  assert.deepEqual(find(dec, 'dense FFN').work, { bf16: 2 * 3 * 256 * 512, fp8: 0, vector: 0, bytes: 2 * 3 * 256 * 512 });
  assert.deepEqual(find(dec, 'lm_head').work, { bf16: 2 * 256 * 512, fp8: 0, vector: 0, bytes: 2 * 256 * 512 });
  assert.equal(tokenOps(dense, 'prefill', t, ONE).find((o) => o.name === 'lm_head'), undefined);

  const sdec = tokenOps(dsa, 'decode', t, ONE);
  // Indexer: 100 keys · 2·4·32 FP8 FLOPs + 3·4 epilogue FLOPs, reads 100 · (32 + 4) B, per layer.
  assert.deepEqual(find(sdec, 'indexer').work, { bf16: 0, fp8: 2 * 100 * 256, vector: 2 * 100 * 12, bytes: 2 * 100 * 36 });
  assert.deepEqual(find(sdec, 'top-k').work, { bf16: 0, fp8: 0, vector: 0, bytes: 2 * 100 * 8 });
  // Sparse MQA over the 16 selected entries, gathered from the FP8 cache.
  assert.deepEqual(find(sdec, 'sparse attention').work, { bf16: 2 * 16 * 2176, fp8: 0, vector: 0, bytes: 2 * 16 * 164 });
  // Indexer projections: wq_b 128·128 + wk 256·32, weights_proj 256·4.
  assert.deepEqual(find(sdec, 'indexer projections').work, { bf16: 2 * 2 * (128 * 128 + 256 * 32 + 256 * 4), fp8: 0, vector: 0, bytes: 2 * 2 * (128 * 128 + 256 * 32 + 256 * 4) });
  // Below index_topk: no indexer and no top-k; prefill below the threshold is dense MHA.
  assert.equal(tokenOps(dsa, 'decode', 10, ONE).find((o) => o.name === 'indexer'), undefined);
  assert.ok(tokenOps(dsa, 'prefill', 10, ONE).some((o) => o.name === 'dense attention'));
  assert.ok(tokenOps(dsa, 'prefill', 16, ONE).some((o) => o.name === 'sparse attention'));
  assert.ok(tokenOps(dsa, 'prefill', 40, { ...ONE, prefillDenseBelow: 64 }).some((o) => o.name === 'dense attention' || o.name === 'indexer'));
});

test('weights are shared by the tokens of a step; MTP tokens share cache reads', () => {
  const m = specFromConfig(TINY, 'tiny', 'tiny.json');
  const big: Deployment = { ...ONE, batch: 4, mtpTokens: 2, mtpAcceptance: 0.5 };
  const ops = tokenOps(m, 'decode', 99, big);
  assert.equal(find(ops, 'attention projections').work.bytes, (159744 * 2 * 2) / 8);
  assert.equal(find(ops, 'indexer').work.bytes, (2 * 100 * 36) / 2);
  // R = 8 routed tokens per step hit 8·(1 − (3/4)^8) experts in expectation.
  const hit = 8 * (1 - 0.75 ** 8);
  assert.ok(Math.abs(find(ops, 'MoE FFN').work.bytes - ((49152 + 256 * 8) * 2) / 8 - (hit * 49152 * 2) / 8) < 1e-6);
});

test('roofline: the larger of compute time and memory time; execution units add up', () => {
  const p = { bf16: 1e15, fp8: 2e15, vector: 1e14, bandwidth: 1e12 };
  assert.equal(rooflineSeconds({ bf16: 1e12, fp8: 0, vector: 0, bytes: 1e6 }, p, 0.5, 0.5), 2e-3);
  assert.equal(rooflineSeconds({ bf16: 0, fp8: 0, vector: 0, bytes: 1e9 }, p, 0.5, 0.5), 2e-3);
  assert.ok(Math.abs(rooflineSeconds({ bf16: 1e12, fp8: 2e12, vector: 1e11, bytes: 0 }, p, 1, 1) - 3e-3) < 1e-12);
});

const setup: CostSetup = { models: [v31Spec(), v32Spec()], profile: gpuProfile('h800'), price: 2 };
const [v31, v32] = setup.models as [ReturnType<typeof v31Spec>, ReturnType<typeof v32Spec>];

test('costs grow with the position; DSA is like dense below index_topk and far cheaper at 128K', () => {
  for (const phase of PHASES) {
    for (const m of setup.models) {
      const c = JSON_POSITIONS.map((t) => costAt(setup, m, phase, t));
      for (let i = 1; i < c.length; i++) assert.ok(c[i]! >= c[i - 1]!, `${phase} ${m.name} falls at ${JSON_POSITIONS[i]}`);
    }
    for (const t of [0, 512, 1024, 2000]) {
      const d = costAt(setup, v31, phase, t);
      const s = costAt(setup, v32, phase, t);
      assert.ok(s >= d * 0.999, `${phase} at ${t}: DSA ${s} is cheaper than dense ${d}`);
      assert.ok(s <= d * (phase === 'prefill' ? 1.05 : 1.3), `${phase} at ${t}: DSA ${s} vs dense ${d}`);
    }
    assert.ok(costAt(setup, v31, phase, 131072) > 3 * costAt(setup, v32, phase, 131072));
  }
  // The short-context crossover: DSA becomes cheaper after a few thousand tokens.
  const p = crossover(setup, v31, v32, 'prefill')!;
  const d = crossover(setup, v31, v32, 'decode')!;
  assert.ok(p > 2048 && p < 16384, `prefill crossover ${p}`);
  assert.ok(d > 2048 && d < 8192, `decode crossover ${d}`);
});

test("the documented defaults give the paper's four 128K numbers within ±25%", () => {
  assert.equal(GPU_DEPLOYMENT.batch, 128);
  for (const phase of PHASES) {
    for (const m of setup.models) {
      const ours = costAt(setup, m, phase, 131072);
      const paper = PAPER_128K[phase][m.name as 'v3.1' | 'v3.2'];
      assert.ok(Math.abs(ours - paper) / paper <= 0.25, `${phase} ${m.name}: ${ours.toFixed(3)} vs the paper's ${paper}`);
    }
  }
});

test('dsa cost --json and --plot: keys v3.1 and v3.2, positions 0…131072', async () => {
  const json = path.join(tmp, 'cost.json');
  const svg = path.join(tmp, 'cost.svg');
  const r = await cli(['cost', '--json', json, '--plot', svg, '--price', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /128K/);
  assert.match(r.stdout, /paper \(Figure 3/);
  const j = JSON.parse(fs.readFileSync(json, 'utf8')) as { positions: number[]; prefill: Record<string, number[]>; decode: Record<string, number[]> };
  assert.equal(j.positions[0], 0);
  assert.equal(j.positions[j.positions.length - 1], 131072);
  for (const phase of ['prefill', 'decode'] as const) {
    assert.deepEqual(Object.keys(j[phase]).sort(), ['v3.1', 'v3.2']);
    for (const v of Object.values(j[phase])) assert.equal(v.length, j.positions.length);
  }
  assert.match(fs.readFileSync(svg, 'utf8'), /^<svg/);
});

test('dsa cost --model: one model, a config path, other hardware and batch', async () => {
  const cfg = path.join(tmp, 'config.json');
  fs.writeFileSync(cfg, JSON.stringify(TINY));
  const r = await cli(['cost', '--model', cfg, '--hardware', 'b200', '--batch', '8', '--json', path.join(tmp, 'one.json')]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(fs.readFileSync(path.join(tmp, 'one.json'), 'utf8')) as { prefill: Record<string, number[]> };
  assert.deepEqual(Object.keys(j.prefill), [cfg]);
  const bad = await cli(['cost', '--hardware', 'tpu']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--hardware: unknown 'tpu'/);
});

/** Bench rows in the documented shape of `dsa bench attention --json` (decode, batch 1). */
function benchRows(): Record<string, unknown>[] {
  const setupFields = { mode: 'decode', rows_per_step: 1, unit: 'ms per decode step', backend: 'cpu', cache_bytes_per_token: 1284, hidden_size: 7168, num_heads: 128, kv_lora_rank: 512, index_topk: 2048, weights: 'fp8' };
  return [1024, 4096, 16384].map((ctx) => ({
    ctx,
    batch: 1,
    dense_ms: 40 + ctx / 200,
    dsa_ms: 50 + ctx / 2000,
    ratio: 1,
    indexer_ms: ctx > 2048 ? ctx / 4000 : 0,
    topk_ms: ctx > 2048 ? ctx / 100000 : 0,
    attn_ms: 10,
    proj_ms: 40,
    dense_attn_ms: ctx / 200,
    dense_proj_ms: 38,
    dsa_dense_path: ctx < 2048,
    ...setupFields,
  }));
}

test('--bench: a bench JSON is the measured profile; a malformed one is an error naming the file', async () => {
  const good = path.join(tmp, 'bench.json');
  fs.writeFileSync(good, JSON.stringify(benchRows()));
  const r = await cli(['cost', '--hardware', 'measured', '--bench', good, '--json', path.join(tmp, 'm.json')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /measured/);
  const j = JSON.parse(fs.readFileSync(path.join(tmp, 'm.json'), 'utf8')) as { decode: Record<string, number[]> };
  assert.ok(j.decode['v3.1']!.every((x) => Number.isFinite(x) && x > 0));

  const broken = benchRows();
  delete broken[1]!.dense_attn_ms;
  const bad = path.join(tmp, 'bad-bench.json');
  fs.writeFileSync(bad, JSON.stringify(broken));
  const e = await cli(['cost', '--bench', bad]);
  assert.equal(e.code, 1);
  assert.match(e.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: row 1, dense_attn_ms`));
  fs.writeFileSync(bad, '{"not": "rows"}');
  assert.match((await cli(['cost', '--bench', bad])).stderr, /bad-bench\.json: expected a non-empty JSON array/);
  assert.match((await cli(['cost', '--hardware', 'measured'])).stderr, /needs --bench/);
});
