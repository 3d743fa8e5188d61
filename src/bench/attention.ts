/**
 * `dsa bench attention`: one DeepSeek-V3.2 attention layer with seeded random weights (built in
 * memory, FP8 block-quantized as the real checkpoint), its cache filled directly with random but
 * realistic content, then decode steps (or prefill chunks) at chosen context positions through the
 * real `attention()` of src/model/mla.ts: dense MLA (opts.dense) against DSA (its own indexer
 * selection). A timing wrapper attributes each step's time to the indexer's key scan, the top-k,
 * the attention kernel and everything else ("projections").
 */
import type { Backend, LatentFormat, Tensor } from '../backend/backend.js';
import { Rng } from '../generate/sampler.js';
import { KVCache, needsPrefillLatent, PAGE_SIZE, type IndexerFormat, type Sequence } from '../model/cache.js';
import type { ModelConfig } from '../model/config.js';
import { indexerKeys, indexerQueries, indexerScores } from '../model/indexer.js';
import { attention } from '../model/mla.js';
import { ropeTables, softmaxScale } from '../model/rope.js';
import type { BatchContext, Segment } from '../model/step.js';
import { selectsEverything } from '../model/topk.js';
import type { AttentionWeights } from '../model/weights.js';
import { cacheBytes, fillCache, Gaussian, randomAttentionWeights, type CacheBytes, type Rope } from './attention-layer.js';
import { median, timeIt } from './harness.js';
import { byCategory, TimingBackend, type Category, type OpTimes } from './timing-backend.js';
import { GpuDevice } from '../backend/webgpu/device.js';

export type Engine = 'dense' | 'dsa';

export interface EngineResult {
  /** Median milliseconds per step (all sequences of the batch, T rows each). */
  ms: number;
  runs: number;
  warmup: number;
  /** Median milliseconds per step of each category. */
  categories: Record<Category, number>;
  /** Median milliseconds per step of each op. */
  ops: Record<string, number>;
  /**
   * WebGPU only: the GPU's own milliseconds per op in one more step, from timestamp queries with
   * each kernel in a pass of its own (no overlap between kernels), and per category.
   */
  gpuOps?: Record<string, number>;
  gpuCategories?: Record<Category, number>;
}

export interface PointResult {
  ctx: number;
  /** Every row selects all its keys (position + 1 ≤ index_topk): DSA takes the dense path. */
  densePath: boolean;
  dense: EngineResult | null;
  dsa: EngineResult | null;
}

export interface AttentionBenchOptions {
  backend: Backend;
  cfg: ModelConfig;
  contexts: readonly number[];
  mode: 'decode' | 'prefill';
  /** Rows per step and sequence: 1 for decode, the chunk for prefill. */
  rows: number;
  batch: number;
  runs: number;
  /** Stop adding runs (after at least 3) once a point and engine has used this much. */
  budgetMs: number;
  /** Skip a point (and larger ones) whose single step is estimated longer than this. */
  maxStepMs: number;
  seed: number;
  /** How the cache stores the latent. */
  latentFormat: LatentFormat;
  /** The indexer key cache format (default 'fp8'). */
  indexerFormat?: IndexerFormat;
  /**
   * Issue the cache writes, indexer, top-k and attention once per sequence even where the backend
   * takes them in one call over all sequences (multiSequence): the per-sequence path, for comparison.
   */
  perSequence?: boolean;
  /** Called after each point and engine with work done and total (context tokens). */
  onProgress?: (done: number, total: number) => void;
  /** After the first point: the estimated time of the rest (from that point's breakdown). */
  onEstimate?: (remainingMs: number) => void;
  /** Notes while running (skips, per-op detail). */
  log?: (line: string) => void;
}

export interface AttentionBenchResult {
  points: PointResult[];
  cache: CacheBytes;
  /** Milliseconds per step (whole batch) of the indexer's key path (indexerKeys): in both engines' projections. */
  indexerKeysMs: number;
  /** … of its query path (indexerScores() without the key scan): in DSA's projections when it selects. */
  indexerQueryMs: number;
  skipped: string[];
  setupMs: number;
}

/** Σ over a step's rows of (keys attended by dense, keys scanned by the indexer, keys attended by DSA). */
function work(cfg: ModelConfig, ctx: number, rows: number): { dense: number; sparse: number } {
  let dense = 0;
  let sparse = 0;
  for (let p = ctx; p < ctx + rows; p++) {
    dense += p + 1;
    sparse += Math.min(cfg.indexTopk, p + 1);
  }
  return { dense, sparse };
}

/** One step's time predicted from an earlier point: projections fixed, the rest scaled by the keys it touches. */
function predictMs(cfg: ModelConfig, engine: Engine, prev: { ctx: number; r: EngineResult }, ctx: number, rows: number): number {
  const a = work(cfg, prev.ctx, rows);
  const b = work(cfg, ctx, rows);
  const c = prev.r.categories;
  const attnRatio = engine === 'dense' ? b.dense / a.dense : b.sparse / a.sparse;
  return c.projections + (c.indexer + c.topk) * (b.dense / a.dense) + c.attention * attnRatio;
}

/** Time the given points will take: per engine, predicted step × (timed runs as timeIt will do them + warm-up). */
function estimateMs(o: AttentionBenchOptions, last: Record<Engine, { ctx: number; r: EngineResult } | null>, contexts: readonly number[]): number {
  let ms = 0;
  for (const engine of ['dense', 'dsa'] as const) {
    const prev = last[engine];
    if (!prev) continue;
    for (const ctx of contexts) {
      const step = predictMs(o.cfg, engine, prev, ctx, o.rows);
      if (step > o.maxStepMs) break;
      const runs = Math.min(o.runs, Math.max(3, Math.ceil(o.budgetMs / step)));
      ms += step * (runs + (step > 2000 ? 0 : 1));
    }
  }
  return ms;
}

/** A step over `seqs`, `rows` tokens each at positions start.., their x rows stacked in that order. */
function batchContext(b: Backend, seqs: readonly Sequence[], start: number, rows: number, rope: Rope, mode: 'decode' | 'prefill', dense: boolean): BatchContext {
  const opts = { mode, dense };
  const segments: Segment[] = seqs.map((seq, i) => {
    const positions = Int32Array.from({ length: rows }, (_, j) => start + j);
    const pages = seq.pages();
    return { start: i * rows, positions, posT: b.upload(positions, [rows]), pages, pageIds: seq.pageIds, nKeys: start + rows, cos: rope.cos, sin: rope.sin, opts };
  });
  const positions = new Int32Array(seqs.length * rows);
  segments.forEach((sg) => positions.set(sg.positions, sg.start));
  return { positions, posT: b.upload(positions, [positions.length]), cos: rope.cos, sin: rope.sin, opts, segments };
}

/** The GpuDevice of a WebGPU backend (it has one, with timestamp profiling), else null. */
function gpuDeviceOf(b: Backend): GpuDevice | null {
  const gpu = (b as { gpu?: unknown }).gpu;
  return gpu instanceof GpuDevice ? gpu : null;
}

/** `b` as a backend that takes one sequence per call (the model then runs the per-sequence path). */
function withoutMultiSequence(b: Backend): Backend {
  return new Proxy(b, {
    get(target, prop) {
      if (prop === 'multiSequence') return false;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** Medians per op and per category over the timed runs. */
function summarize(runs: readonly OpTimes[]): { categories: Record<Category, number>; ops: Record<string, number> } {
  const cats = runs.map(byCategory);
  const categories = { indexer: 0, topk: 0, attention: 0, projections: 0 } as Record<Category, number>;
  for (const k of Object.keys(categories) as Category[]) categories[k] = median(cats.map((c) => c[k]));
  const names = new Set(runs.flatMap((r) => [...r.keys()]));
  const ops: Record<string, number> = {};
  for (const n of names) ops[n] = median(runs.map((r) => r.get(n)?.ms ?? 0));
  return { categories, ops };
}

export async function runAttentionBench(o: AttentionBenchOptions): Promise<AttentionBenchResult> {
  const started = performance.now();
  const { backend: b, cfg, rows } = o;
  const contexts = [...o.contexts].sort((x, y) => x - y);
  const maxCtx = contexts[contexts.length - 1]!;
  const capacity = maxCtx + rows;
  if (capacity > cfg.maxPositionEmbeddings) {
    throw new RangeError(`context ${maxCtx} + ${rows} rows exceeds max_position_embeddings (${cfg.maxPositionEmbeddings})`);
  }
  const layerCfg: ModelConfig = { ...cfg, numLayers: 1 };
  const w = randomAttentionWeights(b, cfg, o.seed);
  const t = ropeTables(cfg, capacity);
  const rope: Rope = { cos: b.upload(t.cos, [capacity, t.half]), sin: b.upload(t.sin, [capacity, t.half]) };
  const scale = softmaxScale(cfg);
  const g = new Gaussian(new Rng(o.seed + 1));

  // Every sequence has its own pages of one one-layer cache pool (as in a server), filled once to
  // the largest context. Each step writes its own entries at positions ctx.. (overwriting the
  // previous run's), and attention() never moves seq.length, so every run decodes at position ctx
  // against exactly ctx cached tokens.
  // The prefill copy of the latent exactly when the model keeps one (Model.createCache's rule).
  const prefillLatent = needsPrefillLatent(w.kvBIsFp8, o.latentFormat);
  const pagesPerSeq = Math.ceil(capacity / PAGE_SIZE);
  const pool = new KVCache(b, layerCfg, { capacity: o.batch * pagesPerSeq * PAGE_SIZE, prefillLatent, latentFormat: o.latentFormat, indexerFormat: o.indexerFormat });
  const seqs: Sequence[] = [];
  for (let i = 0; i < o.batch; i++) {
    const seq = pool.newSequence();
    seq.reserve(capacity);
    fillCache(b, cfg, pool.layers[0]!, seq.pages(), maxCtx, g, rope);
    seq.length = maxCtx;
    seqs.push(seq);
  }
  // The attention block's input: RMS-normalized hidden states, [rows, d] per sequence, stacked.
  const x = b.upload(g.normalizedRows(seqs.length * rows, cfg.hiddenSize), [seqs.length * rows, cfg.hiddenSize]);
  const setupMs = performance.now() - started;

  // On WebGPU the op's name labels its dispatches (for the GPU time per op, below).
  const gpu = gpuDeviceOf(b);
  const tb = new TimingBackend(o.perSequence ? withoutMultiSequence(b) : b, gpu ? (op) => (gpu.label = op) : undefined);
  const tbb = tb.backend;
  // One step for the whole batch, as the model runs it: projections once over all rows, the cache
  // writes, indexer, top-k and attention once over all sequences (per sequence with perSequence or
  // a backend without multiSequence).
  const step = (ctx: number, dense: boolean) => async () => {
    for (const seq of seqs) seq.length = ctx;
    const batch = batchContext(tbb, seqs, ctx, rows, rope, o.mode, dense);
    const out = tbb.scope(() => attention(tbb, cfg, 0, w, pool.layers[0]!, x, batch, scale));
    await tbb.read(out);
  };

  const measure = async (ctx: number, dense: boolean, warmup: number): Promise<EngineResult> => {
    const perRun: OpTimes[] = [];
    const run = step(ctx, dense);
    const timing = await timeIt(
      async () => {
        tb.reset();
        await run();
        perRun.push(tb.snapshot());
      },
      { warmup, runs: o.runs, budgetMs: o.budgetMs },
    );
    const result: EngineResult = { ms: timing.medianMs, runs: timing.runs, warmup, ...summarize(perRun.slice(warmup)) };
    if (gpu?.startProfiling('dispatch')) {
      await run();
      const gpuOps: OpTimes = new Map();
      for (const k of await gpu.stopProfiling()) {
        const e = gpuOps.get(k.label) ?? { ms: 0, calls: 0 };
        e.ms += k.ms;
        e.calls++;
        gpuOps.set(k.label, e);
      }
      result.gpuOps = Object.fromEntries([...gpuOps].map(([op, t]) => [op, t.ms]));
      result.gpuCategories = byCategory(gpuOps);
    }
    return result;
  };

  // Warm the code up (JIT) before anything is timed: two steps of each engine at the smallest context.
  for (let i = 0; i < 2; i++) for (const dense of [true, false]) await step(contexts[0]!, dense)();

  const total = contexts.reduce((s, c) => s + 2 * c, 0);
  let done = 0;
  const skipped: string[] = [];
  const last: Record<Engine, { ctx: number; r: EngineResult } | null> = { dense: null, dsa: null };
  const gaveUp: Record<Engine, boolean> = { dense: false, dsa: false };
  const points: PointResult[] = [];
  for (const ctx of contexts) {
    const densePath = selectsEverything(cfg, Int32Array.from({ length: rows }, (_, i) => ctx + i));
    const point: PointResult = { ctx, densePath, dense: null, dsa: null };
    for (const engine of ['dense', 'dsa'] as const) {
      const prev = last[engine];
      const predicted = prev ? predictMs(cfg, engine, prev, ctx, rows) : null;
      if (gaveUp[engine] || (predicted !== null && predicted > o.maxStepMs)) {
        if (!gaveUp[engine]) {
          skipped.push(`${engine} from ctx ${ctx} on: one step estimated at ${(predicted! / 1000).toFixed(1)} s (from ctx ${prev!.ctx}), over --max-step ${o.maxStepMs / 1000} s`);
        }
        gaveUp[engine] = true;
      } else {
        // One warm-up run, skipped for steps estimated over 2 s (the code is warm from smaller points by then).
        const r = await measure(ctx, engine === 'dense', predicted !== null && predicted > 2000 ? 0 : 1);
        point[engine] = r;
        last[engine] = { ctx, r };
        const opList = Object.entries(r.ops).sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
        o.log?.(`ctx ${ctx} ${engine}: ${r.ms.toFixed(2)} ms (median of ${r.runs}); ops ms: ${opList}`);
      }
      done += ctx;
      o.onProgress?.(done, total);
    }
    points.push(point);
    if (points.length === 1 && o.onEstimate) o.onEstimate(estimateMs(o, last, contexts.slice(1)));
  }

  const indexer = await indexerPaths(b, cfg, w, seqs, x, rows, rope, o.runs);
  const cache = cacheBytes(cfg, seqs[0]!.cache);
  return { points, cache, indexerKeysMs: indexer.keysMs, indexerQueryMs: indexer.queryMs, skipped, setupMs };
}

/**
 * The indexer's own projections, measured apart (they do not depend on the context): the key path
 * (indexerKeys: wk, LayerNorm, RoPE, Hadamard, FP8) and the query path
 * (indexerScores() of src/model/indexer.ts minus its key-scan op: wq_b, RoPE, Hadamard, FP8, head
 * weights). Medians per step (the whole batch) over `runs` runs after one warm-up; at position 0
 * (1 key to scan).
 */
async function indexerPaths(b: Backend, cfg: ModelConfig, w: AttentionWeights, seqs: readonly Sequence[], x: Tensor, rows: number, rope: Rope, runs: number) {
  const tb = new TimingBackend(b);
  const tbb = tb.backend;
  const cache = seqs[0]!.cache.layers[0]!;
  const aq = cfg.quant ? cfg.quant.scaleFormat : null;
  const cq = b.rmsNorm(b.linear(x, w.qA, aq), w.qANorm, cfg.rmsNormEps);
  const keys: number[] = [];
  const query: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const batch = batchContext(b, seqs, 0, rows, rope, 'decode', false);
    tb.reset();
    tbb.scope(() => {
      const k8 = indexerKeys(tbb, cfg, w.indexer, x, batch);
      if (cache.indexFormat === 'int8') tbb.requantInt8(k8.q, k8.s); // as the cache write does
    });
    const k = tb.totalMs();
    tb.reset();
    const scores = tbb.scope(() => {
      const { q8, weights } = indexerQueries(tbb, cfg, w.indexer, x, cq, batch);
      return batch.segments.map((sg) => indexerScores(tbb, cache, tbb.sliceRows(q8, sg.start, rows), tbb.sliceRows(weights, sg.start, rows), sg));
    });
    for (const sc of scores) await b.read(sc);
    const scan = tb.snapshot();
    const q = tb.totalMs() - (scan.get('indexerScores')?.ms ?? 0) - (scan.get('indexerScoresInt8')?.ms ?? 0);
    if (i > 0) {
      keys.push(k);
      query.push(q);
    }
  }
  return { keysMs: median(keys), queryMs: median(query) };
}

export interface Crossover {
  /** Where DSA becomes faster: interpolated between two measured contexts, else the smallest measured one. */
  ctx: number;
  /** The smallest measured context from which DSA is faster at every larger measured context. */
  measuredCtx: number;
  interpolated: boolean;
  /** The context below measuredCtx where DSA is not faster (measured, or the end of the dense path); null when none. */
  lowerCtx: number | null;
}

export interface CrossoverPoint {
  ctx: number;
  dense: number | null;
  dsa: number | null;
  /** DSA took the dense path here: the same computation as dense, never counted as faster. */
  densePath: boolean;
}

/**
 * The smallest measured ctx from which DSA is faster than dense at every larger measured ctx, and
 * the crossing interpolated linearly in log2(ctx) on (dense − DSA) between it and the point before.
 * When the point before took the dense path (equal work, its difference is noise) there is nothing to
 * interpolate from: the crossing lies between `denseUpTo` (the largest ctx with the dense path) and
 * the measured ctx. Null when DSA is not faster at the largest measured context.
 */
export function crossover(points: readonly CrossoverPoint[], denseUpTo: number): Crossover | null {
  const pts = points.filter((p) => p.dense !== null && p.dsa !== null).sort((a, b) => a.ctx - b.ctx);
  const faster = (p: CrossoverPoint) => !p.densePath && p.dsa! < p.dense!;
  let i = pts.length;
  while (i > 0 && faster(pts[i - 1]!)) i--;
  if (i === pts.length) return null;
  const at = pts[i]!;
  if (i === 0) return { ctx: at.ctx, measuredCtx: at.ctx, interpolated: false, lowerCtx: null };
  const before = pts[i - 1]!;
  if (before.densePath) return { ctx: at.ctx, measuredCtx: at.ctx, interpolated: false, lowerCtx: Math.max(before.ctx, denseUpTo) };
  const d0 = before.dense! - before.dsa!;
  const d1 = at.dense! - at.dsa!;
  const f = d0 === d1 ? 1 : d0 / (d0 - d1);
  const log = Math.log2(before.ctx) + f * (Math.log2(at.ctx) - Math.log2(before.ctx));
  return { ctx: 2 ** log, measuredCtx: at.ctx, interpolated: true, lowerCtx: before.ctx };
}
