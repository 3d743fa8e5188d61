/** `dsa bench attention`: options, the printed report, --json rows and the --plot figure. */
import { writeFileSync } from 'node:fs';
import { readTextFile } from '../io/text-file.js';
import { loadavg } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import type { LatentFormat } from '../backend/backend.js';
import type { IndexerFormat } from '../model/cache.js';
import { CACHE_HELP, INDEXER_CACHE_HELP, indexerCacheArg, intArg, latentCacheArg } from './args.js';
import { BACKENDS, createBackend } from '../backend/registry.js';
import { parseConfig, type ModelConfig } from '../model/config.js';
import {
  crossover,
  runAttentionBench,
  type AttentionBenchResult,
  type Crossover,
  type EngineResult,
  type PointResult,
} from '../bench/attention.js';
import { DEEPSEEK_V32_CONFIG } from '../bench/attention-layer.js';
import { machineInfo } from '../bench/harness.js';
import { linePlot, writePlot } from '../bench/plot.js';
import { progressBar } from './progress.js';
import { io } from './io.js';

const DECODE_CONTEXTS = [1, 2, 4, 8, 16, 32, 64, 128].map((k) => k * 1024);
const PREFILL_CONTEXTS = [1, 2, 4, 8, 16].map((k) => k * 1024);

function secondsArg(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number of seconds`);
    return n;
  };
}

/** "4096,16K,128k" → [4096, 16384, 131072]. */
export function parseContexts(value: string): number[] {
  const out = value.split(',').map((part) => {
    const m = /^\s*(\d+)\s*([kK]?)\s*$/.exec(part);
    const n = m ? Number(m[1]) * (m[2] ? 1024 : 1) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`--ctx: '${part}' is not a token count (e.g. 4096 or 4K)`);
    return n;
  });
  return [...new Set(out)].sort((a, b) => a - b);
}

function readJsonObject(file: string, what: string): Record<string, unknown> {
  return parseJsonObject(readTextFile(file), file, what);
}

function parseJsonObject(text: string, where: string, what: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where}: expected a JSON object (${what})`);
  return raw as Record<string, unknown>;
}

interface BenchAttentionOptions {
  ctx?: number[];
  batch: number;
  runs: number;
  budget: number;
  maxStep: number;
  prefill: boolean;
  chunk: number;
  config?: string;
  set?: string;
  seed: number;
  cache: LatentFormat;
  indexerCache: IndexerFormat;
  json?: string;
  plot?: string;
  backend: string;
  verbose: boolean;
  perSequence: boolean;
}

/** Adds `attention` to the `bench` command group. */
export function addBenchAttention(bench: Command): void {
  bench
    .command('attention')
    .description('one full-size DeepSeek-V3.2 attention layer (random FP8 weights, caches filled directly): dense MLA vs DSA per decode step, with a breakdown')
    .option('--ctx <list>', `context positions, comma-separated (e.g. 4096,16K,128K) (default: 1K…128K powers of two; with --prefill 1K…16K)`, parseContexts)
    .option('--batch <n>', 'sequences per step, each with its own pages of one cache pool', intArg('--batch', 1), 1)
    .option('--per-sequence', 'issue the cache writes, indexer, top-k and attention once per sequence instead of once over the batch (for comparison)', false)
    .option('--runs <n>', 'timed runs per point (median reported)', intArg('--runs', 1), 5)
    .option('--budget <s>', 'seconds per point and engine after which runs stop (after at least 3)', secondsArg('--budget'), 20)
    .option('--max-step <s>', 'skip points whose single step is estimated longer than this', secondsArg('--max-step'), 60)
    .option('--prefill', 'measure prefill chunks instead of decode steps (time per token = chunk time / rows)', false)
    .option('--chunk <n>', 'rows per prefill chunk', intArg('--chunk', 1), 64)
    .option('--config <file>', 'a config.json to bench instead of the built-in DeepSeek-V3.2 one')
    .option('--set <json>', 'config.json keys to override, as a JSON object (e.g. \'{"index_topk": 1024}\')')
    .option('--seed <n>', 'random seed of weights and cache content', intArg('--seed', 0), 1)
    .option('--cache <format>', CACHE_HELP, latentCacheArg, 'bf16')
    .option('--indexer-cache <format>', INDEXER_CACHE_HELP, indexerCacheArg, 'fp8')
    .option('--json <file>', 'write one JSON object per context')
    .option('--plot <file>', 'draw time against context (.svg, or .png)')
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, 'cpu')
    .option('-v, --verbose', 'per-op times of every point on stderr (and the progress bar when stderr is not a terminal)', false)
    .action(async (o: BenchAttentionOptions) => {
      await benchAttention(o);
    });
}

function benchConfig(o: BenchAttentionOptions): { cfg: ModelConfig; source: string } {
  const base = o.config ? readJsonObject(o.config, 'a config.json') : { ...DEEPSEEK_V32_CONFIG };
  const overrides = o.set ? parseJsonObject(o.set, '--set', 'config.json keys') : {};
  const source = `${o.config ?? 'built-in DeepSeek-V3.2 config'}${o.set ? ` with ${JSON.stringify(overrides)}` : ''}`;
  return { cfg: parseConfig({ ...base, ...overrides }, o.config ?? 'built-in DeepSeek-V3.2 config'), source };
}

const fmt = (ms: number | null | undefined): string =>
  ms === null || ms === undefined ? '–' : ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3);

const kTokens = (n: number): string => (n >= 1024 ? `${Number((n / 1024).toFixed(1))}K` : `${Math.round(n)}`);

function configSummary(cfg: ModelConfig): string[] {
  const q = cfg.quant;
  const weights = q
    ? `FP8 e4m3 in ${q.weightBlockSize.join('×')} blocks, ${q.scaleFormat === 'ue8m0' ? 'ue8m0 (power-of-two)' : 'float32'} scales (weights_proj bf16)`
    : 'bf16';
  const y = cfg.yarn;
  return [
    `hidden ${cfg.hiddenSize}, heads ${cfg.numHeads}, q_lora ${cfg.qLoraRank}, kv_lora ${cfg.kvLoraRank}, d_n ${cfg.qkNopeHeadDim}, d_r ${cfg.qkRopeHeadDim}, d_v ${cfg.vHeadDim}; ` +
      `indexer ${cfg.indexNHeads} heads × ${cfg.indexHeadDim}, index_topk ${cfg.indexTopk}`,
    `weights ${weights}; ${y ? `YaRN ×${y.factor} over ${y.originalMaxPositionEmbeddings}` : 'plain RoPE'}, max positions ${cfg.maxPositionEmbeddings}`,
  ];
}

function crossoverText(c: Crossover | null, measured: number, topk: number): string {
  if (measured < 2) return 'crossover: needs two or more contexts measured by both engines';
  if (!c) return 'crossover: none, DSA is not faster than dense at the largest measured context';
  if (c.lowerCtx === null) return `crossover: DSA is faster at every measured context (from ${c.measuredCtx} on)`;
  if (!c.interpolated) {
    return (
      `crossover: DSA is faster from ctx ${c.measuredCtx} on (measured); up to ctx ${c.lowerCtx} it takes the dense path (index_topk ${topk}), ` +
      `so the crossing lies between ${c.lowerCtx} and ${c.measuredCtx} (not interpolated: no sparse-path point measured below ${c.measuredCtx})`
    );
  }
  return (
    `crossover: DSA is faster from ctx ${c.measuredCtx} on (measured); the crossing, interpolated linearly in log2(ctx) on dense − DSA ` +
    `between ${c.lowerCtx} and ${c.measuredCtx}, is ≈ ${kTokens(c.ctx)} (${Math.round(c.ctx)})`
  );
}

function plotLabel(c: Crossover): string {
  if (c.interpolated) return `crossover ≈ ${kTokens(c.ctx)} (interpolated)`;
  return c.lowerCtx === null ? `DSA faster from ${kTokens(c.ctx)}` : `crossover in (${kTokens(c.lowerCtx)}, ${kTokens(c.ctx)}]`;
}

/** The GPU's own times of a point (WebGPU): per category and per op, DSA and dense; none on the CPU. */
function gpuJson(p: PointResult, perUnit: number): Record<string, unknown> {
  if (!p.dsa?.gpuCategories && !p.dense?.gpuCategories) return {};
  const cats = (e: EngineResult | null) => (e?.gpuCategories ? Object.fromEntries(Object.entries(e.gpuCategories).map(([k, v]) => [k, v * perUnit])) : null);
  const ops = (e: EngineResult | null) => (e?.gpuOps ? Object.fromEntries(Object.entries(e.gpuOps).map(([k, v]) => [k, v * perUnit])) : null);
  return { gpu_dsa_ms: cats(p.dsa), gpu_dense_ms: cats(p.dense), gpu_dsa_ops_ms: ops(p.dsa), gpu_dense_ops_ms: ops(p.dense) };
}

/** The GPU's own times per step (WebGPU), category by category, and the ops that take most of the DSA step. */
function gpuTable(r: AttentionBenchResult, perUnit: number, w: (s?: string) => void): void {
  if (!r.points.some((p) => p.dsa?.gpuCategories || p.dense?.gpuCategories)) return;
  w();
  w('GPU time per step (timestamp queries, each kernel in a pass of its own; one more step after the timed runs), ms:');
  const widths = [8, 10, 10, 9, 8, 10, 12, 11, 11];
  const line = (cells: string[]) => w(cells.map((x, i) => x.padStart(widths[i]!)).join(' '));
  line(['ctx', 'dense', 'DSA', 'indexer', 'top-k', 'attention', 'projections', 'dense attn', 'dense proj']);
  const sum = (c: Record<string, number> | undefined) => (c ? Object.values(c).reduce((a, b) => a + b, 0) * perUnit : undefined);
  for (const p of r.points) {
    const d = p.dsa?.gpuCategories;
    const n = p.dense?.gpuCategories;
    const u = (x: number | undefined) => (x === undefined ? undefined : x * perUnit);
    line([String(p.ctx), fmt(sum(n)), fmt(sum(d)), fmt(u(d?.indexer)), fmt(u(d?.topk)), fmt(u(d?.attention)), fmt(u(d?.projections)), fmt(u(n?.attention)), fmt(u(n?.projections))]);
  }
  const lastDsa = [...r.points].reverse().find((p) => p.dsa?.gpuOps);
  if (lastDsa?.dsa?.gpuOps) {
    const top = Object.entries(lastDsa.dsa.gpuOps).sort((a, b) => b[1] - a[1]).slice(0, 6);
    w(`  most of the DSA step at ${lastDsa.ctx}: ${top.map(([op, ms]) => `${op} ${fmt(ms * perUnit)}`).join(', ')}`);
  }
}

/** One JSON object per context. Times are per step (decode) or per token (prefill). */
export function jsonRows(r: AttentionBenchResult, setup: Record<string, unknown>, perUnit: number, c: Crossover | null, batch: number) {
  const v = (e: EngineResult | null, f: (e: EngineResult) => number) => (e ? f(e) * perUnit : null);
  return r.points.map((p) => ({
    ctx: p.ctx,
    batch,
    dense_ms: v(p.dense, (e) => e.ms),
    dsa_ms: v(p.dsa, (e) => e.ms),
    ratio: p.dense && p.dsa ? p.dense.ms / p.dsa.ms : null,
    indexer_ms: v(p.dsa, (e) => e.categories.indexer),
    topk_ms: v(p.dsa, (e) => e.categories.topk),
    attn_ms: v(p.dsa, (e) => e.categories.attention),
    proj_ms: v(p.dsa, (e) => e.categories.projections),
    dense_attn_ms: v(p.dense, (e) => e.categories.attention),
    dense_proj_ms: v(p.dense, (e) => e.categories.projections),
    ...gpuJson(p, perUnit),
    dense_runs: p.dense?.runs ?? 0,
    dsa_runs: p.dsa?.runs ?? 0,
    dsa_dense_path: p.densePath,
    indexer_keys_ms: r.indexerKeysMs * perUnit,
    indexer_query_ms: p.densePath ? 0 : r.indexerQueryMs * perUnit,
    cache_bytes_per_token: r.cache.used,
    crossover_ctx: c ? c.ctx : null,
    crossover_measured_ctx: c ? c.measuredCtx : null,
    crossover_interpolated: c ? c.interpolated : null,
    crossover_lower_ctx: c ? c.lowerCtx : null,
    ...setup,
  }));
}

export async function benchAttention(o: BenchAttentionOptions): Promise<void> {
  const { cfg, source } = benchConfig(o);
  const mode = o.prefill ? 'prefill' : 'decode';
  const rows = o.prefill ? o.chunk : 1;
  const contexts = o.ctx ?? (o.prefill ? PREFILL_CONTEXTS : DECODE_CONTEXTS);
  const last = contexts[contexts.length - 1]!;
  if (last + rows > cfg.maxPositionEmbeddings) {
    throw new Error(`--ctx: position ${last + rows - 1} exceeds the config's max_position_embeddings (${cfg.maxPositionEmbeddings})`);
  }
  const perUnit = 1 / rows;
  const unit = o.prefill ? `ms per token (prefill chunks of ${rows} rows, chunk time / ${rows})` : 'ms per decode step';
  const machine = await machineInfo();
  const backend = await createBackend(o.backend);
  // The CPU backend may say which kernel set it runs (e.g. 'wasm' or 'js'); other backends need not.
  const kernels = (backend as { kernels?: unknown }).kernels;
  const backendName = typeof kernels === 'string' ? `${backend.name} (${kernels} kernels)` : backend.name;
  const w = (s = '') => io().out(`${s}\n`);

  w(`dsa bench attention: one DeepSeek-V3.2 attention layer, ${o.prefill ? `prefill chunks of ${rows} rows` : 'decode (1 token per sequence per step)'}, dense MLA vs DSA`);
  w(`machine:  ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, node ${machine.node}, ${machine.platform}`);
  const load = loadavg()[0]!;
  if (load > 0.5) w(`load:     ${load.toFixed(2)} (1-minute load average at start: other processes share the CPU, expect noise)`);
  w(
    backend.name === 'cpu'
      ? `backend:  ${backendName}, every op timed by a wrapper (CPU ops are synchronous: exact wall time per op)`
      : `backend:  ${backendName}; step times are exact (each step waits for its result), but a GPU runs ops after they are issued, so the per-op breakdown below measures issuing, not the GPU's work`,
  );
  w(`config:   ${source}`);
  for (const line of configSummary(cfg)) w(`          ${line}`);
  w(`          seeded random weights (seed ${o.seed}) built in memory; cache content random (normalized c_kv, roped k_rope, FP8 indexer keys) written directly`);
  const perSeq = o.perSequence || !backend.multiSequence;
  const dsaOps = o.batch === 1 ? '' : perSeq ? `; cache writes, indexer, top-k and attention per sequence${o.perSequence ? ' (--per-sequence)' : ` (the ${backend.name} backend takes one sequence per call)`}` : '; cache writes, indexer, top-k and attention in one call over all sequences';
  w(`batch:    ${o.batch} sequence${o.batch > 1 ? 's' : ''}, each with its own pages of one cache pool, in one step (projections over all rows at once${dsaOps}); times are for the whole batch`);
  w(`runs:     median of up to ${o.runs} timed runs after 1 warm-up (none for steps estimated over 2 s); runs stop after 3 once ${o.budget} s are spent on a point; steps estimated over ${o.maxStep} s are skipped`);

  const bar = progressBar('attention', contexts.reduce((s, c) => s + 2 * c, 0), o.verbose);
  let result: AttentionBenchResult;
  try {
    result = await runAttentionBench({
      backend,
      cfg,
      contexts,
      mode,
      rows,
      batch: o.batch,
      runs: o.runs,
      budgetMs: o.budget * 1000,
      maxStepMs: o.maxStep * 1000,
      seed: o.seed,
      latentFormat: o.cache,
      indexerFormat: o.indexerCache,
      perSequence: o.perSequence,
      onProgress: (done) => bar.update(done),
      onEstimate: (ms) => {
        if (ms > 60_000) io().err(`\nestimated time for the remaining points: ~${Math.ceil(ms / 60_000)} min (from the first point's breakdown)\n`);
      },
      log: o.verbose ? (line) => io().err(`${line}\n`) : undefined,
    });
  } finally {
    bar.stop();
  }
  const cb = result.cache;
  w(`cache:    ${cb.format} latent (--cache), ${o.indexerCache} indexer keys (--indexer-cache): ${cb.used} B per token and layer = ${cb.parts}`);
  w(`          latent + indexer key per layout: f32 ${cb.layouts.f32} B, bf16 ${cb.layouts.bf16} B, fp8 (FlashMLA's layout) ${cb.layouts.fp8} B`);
  w(`setup:    weights and caches built in ${(result.setupMs / 1000).toFixed(1)} s`);
  w();

  const pts = result.points.map((p) => ({ ctx: p.ctx, dense: p.dense ? p.dense.ms : null, dsa: p.dsa ? p.dsa.ms : null, densePath: p.densePath }));
  // The largest ctx whose step still selects every key (positions ctx .. ctx + rows - 1 all below index_topk).
  const c = crossover(pts, cfg.indexTopk - rows);
  const head = ['ctx', 'dense ms', 'DSA ms', 'dense÷DSA', 'indexer', 'top-k', 'attention', 'projections', 'dense attn', 'dense proj'];
  const widths = [8, 10, 10, 10, 9, 8, 10, 12, 11, 11];
  const line = (cells: string[]) => w(cells.map((s, i) => s.padStart(widths[i]!)).join(' '));
  w(`${unit}; indexer … projections: DSA's breakdown; dense attn, dense proj: dense MLA's`);
  line(head);
  for (const p of result.points) {
    const u = (x: number | undefined) => (x === undefined ? undefined : x * perUnit);
    line([
      String(p.ctx),
      fmt(u(p.dense?.ms)),
      fmt(u(p.dsa?.ms)),
      p.dense && p.dsa ? `${(p.dense.ms / p.dsa.ms).toFixed(2)}×` : '–',
      fmt(u(p.dsa?.categories.indexer)),
      fmt(u(p.dsa?.categories.topk)),
      fmt(u(p.dsa?.categories.attention)),
      fmt(u(p.dsa?.categories.projections)),
      fmt(u(p.dense?.categories.attention)),
      fmt(u(p.dense?.categories.projections)),
    ]);
  }
  w();
  w('breakdown: medians over the timed runs of a per-op timer around the backend. indexer = the indexerScores op (the FP8 scan of every cached key,');
  w('  O(ctx)); top-k = the topk op; attention = the mlaAttention op (dense: all ctx + 1 entries; DSA: the index_topk selected); projections = every');
  w('  other op of the step (q/kv/o projections, norms, RoPE, W_UK/W_UV, the indexer\'s own projections and FP8 quantization, cache writes).');
  w('  The categories add up to slightly less than the step (the JavaScript between ops is not in any category).');
  w(
    `  of projections, the indexer's own (measured apart, independent of ctx): key path ${fmt(result.indexerKeysMs * perUnit)} ms (both engines: keys are cached ` +
      `either way), query path ${fmt(result.indexerQueryMs * perUnit)} ms (DSA, when it selects)`,
  );
  for (const p of result.points) {
    if (!p.densePath) continue;
    const where = rows === 1 ? 'position + 1' : `positions ${p.ctx}..${p.ctx + rows - 1}, last + 1`;
    w(`note: ctx ${p.ctx}: ${where} ≤ index_topk (${cfg.indexTopk}): DSA takes the dense path (every key selected, no indexer scores, no top-k)`);
  }
  gpuTable(result, perUnit, w);
  for (const s of result.skipped) w(`skipped: ${s}`);
  w(crossoverText(c, pts.filter((p) => p.dense !== null && p.dsa !== null).length, cfg.indexTopk));

  const setup = {
    mode,
    rows_per_step: rows,
    dsa_ops_per_step: o.batch === 1 ? 'one sequence' : perSeq ? 'per sequence' : 'one call over all sequences',
    unit,
    backend: backendName,
    config_source: source,
    hidden_size: cfg.hiddenSize,
    num_heads: cfg.numHeads,
    kv_lora_rank: cfg.kvLoraRank,
    index_topk: cfg.indexTopk,
    weights: cfg.quant ? 'fp8' : 'bf16',
    cache_format: cb.format,
    indexer_cache: o.indexerCache,
    cache_bytes_layouts: cb.layouts,
    runs_requested: o.runs,
    seed: o.seed,
    machine,
  };
  if (o.json) {
    writeFileSync(o.json, `${JSON.stringify(jsonRows(result, setup, perUnit, c, o.batch), null, 2)}\n`);
    w(`wrote ${o.json}`);
  }
  if (o.plot) {
    const data = result.points.flatMap((p) => [
      ...(p.dense ? [{ ctx: p.ctx, ms: p.dense.ms * perUnit, engine: 'dense MLA' }] : []),
      ...(p.dsa ? [{ ctx: p.ctx, ms: p.dsa.ms * perUnit, engine: 'DSA' }] : []),
    ]);
    const svg = await linePlot({
      title: `One DeepSeek-V3.2 attention layer, ${mode}: dense MLA vs DSA (${backendName}, batch ${o.batch})`,
      x: { field: 'ctx', title: 'context position (tokens)', log2: true },
      y: { field: 'ms', title: unit },
      series: 'engine',
      data,
      rules: c ? [{ x: c.ctx, label: plotLabel(c) }] : [],
    });
    writePlot(o.plot, svg);
    w(`wrote ${o.plot}`);
  }
}
