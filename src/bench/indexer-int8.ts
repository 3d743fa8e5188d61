/**
 * Would an int8 indexer choose the same keys? (`dsa bench indexer-int8`)
 *
 * The WebGPU issue names an int8 path for the lightning indexer: keys and queries re-quantized from
 * their FP8 codes to int8 with their scales, so the products run on int8 tensor cores (on the H200
 * the NT int8 GEMM runs at twice the f16 rate, and int8 operands need no decode) — and asks for its
 * effect on top-k agreement with the FP8 reference before adopting it. This measures that on the
 * CPU, with the reference scores from the CPU twin (cpu/kernels/indexer.ts):
 *  - data: keys [S, D] and queries [H, D] drawn per dimension from a normal distribution (what the
 *    indexer quantizes is Hadamard-rotated, which spreads a vector's outliers over its dimensions),
 *    or from Student's t with 4 degrees of freedom (heavier tails); per-head weights normal,
 *    signed; then FP8 e4m3 with one ue8m0 scale per vector, as the model quantizes them;
 *  - int8: each vector's e4m3 values v → round(127 · v / max|v|) with scale max|v| / 127; the score
 *    of key s is kScale(s) · Σ_h w_h · ReLU(dot_int(q_h, k_s) · sq_h · sk_s), integer dots exact;
 *  - agreement: recall of the FP8 top-k in the int8 top-k, and how many of the FP8 top k/8 (the
 *    keys that matter most) the int8 top-k keeps; for scale, both against the top-k of the
 *    unquantized vectors (FP8 is itself an approximation the model accepts).
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { indexerScores } from '../backend/cpu/kernels/indexer.js';
import { intArg } from '../cli/args.js';
import { parseContexts } from '../cli/bench.js';
import { io } from '../cli/io.js';
import { Rng } from '../generate/sampler.js';
import { actQuantRow } from '../numerics/block-quant.js';
import { requantInt8Row } from '../backend/cpu/kernels/indexer-int8.js';

export type Int8StudyData = 'normal' | 'student-t';
const INT8_STUDY_DATA: readonly Int8StudyData[] = ['normal', 'student-t'];

/**
 * Each row's e4m3 values as int8 with one scale per row: q = round(127 · v / max|v|) (halves away
 * from zero, so q(−v) = −q(v)), scale = max|v| / 127 (0 for a zero row).
 */
export function int8Requant(codes: Uint8Array, rows: number, dim: number): { q: Int8Array; scale: Float64Array } {
  const q = new Int8Array(rows * dim);
  const scale = new Float64Array(rows);
  for (let r = 0; r < rows; r++) scale[r] = requantInt8Row(codes, r * dim, dim, q) / 127;
  return { q, scale };
}

/** One query row's scores over nKeys keys (no mask), from int8 re-quantized queries [H, D] and keys [S, D]. */
export function indexerScoresInt8(q8: Uint8Array, heads: number, dim: number, w: Float32Array, k8: Uint8Array, kScale: Float32Array, nKeys: number): Float64Array {
  const qi = int8Requant(q8, heads, dim);
  const ki = int8Requant(k8, nKeys, dim);
  const out = new Float64Array(nKeys);
  for (let s = 0; s < nKeys; s++) {
    let score = 0;
    for (let h = 0; h < heads; h++) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += qi.q[h * dim + d]! * ki.q[s * dim + d]!;
      const x = dot * qi.scale[h]! * ki.scale[s]!;
      if (x > 0) score += w[h]! * x;
    }
    out[s] = kScale[s]! * score;
  }
  return out;
}

/** indexerScoresInt8 for one row whose first n keys sit in a paged cache (slot = table[s / pageSize] · pageSize + s % pageSize): the GPU kernel's twin. */
export function indexerScoresInt8Paged(
  q8: Uint8Array, heads: number, dim: number, w: Float32Array, kCache: Uint8Array, kScale: Float32Array, table: Int32Array, pageSize: number, n: number,
): Float64Array {
  const keys = new Uint8Array(n * dim);
  const scales = new Float32Array(n);
  for (let s = 0; s < n; s++) {
    const slot = table[Math.floor(s / pageSize)]! * pageSize + (s % pageSize);
    keys.set(kCache.subarray(slot * dim, (slot + 1) * dim), s * dim);
    scales[s] = kScale[slot]!;
  }
  return indexerScoresInt8(q8, heads, dim, w, keys, scales, n);
}

/** Indices of the k largest scores (ties by index). */
export function topkSet(scores: ArrayLike<number>, k: number): Set<number> {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
  return new Set(idx.slice(0, k));
}

/** |a ∩ b| / |a|. */
export function recall(a: Set<number>, b: Set<number>): number {
  let hit = 0;
  for (const x of a) if (b.has(x)) hit++;
  return a.size === 0 ? 1 : hit / a.size;
}

/** A value of the study's distribution. */
function draw(rng: Rng, data: Int8StudyData): number {
  const normal = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  if (data === 'normal') return normal();
  // Student's t, 4 degrees of freedom: a normal over the root of a χ²₄ / 4.
  let chi = 0;
  for (let i = 0; i < 4; i++) chi += normal() ** 2;
  return normal() / Math.sqrt(chi / 4);
}

/** Rows of vectors drawn from the distribution, FP8 with one ue8m0 scale per row (as the model's indexer quantizes). */
function fp8Rows(rng: Rng, rows: number, dim: number, data: Int8StudyData): { x: Float32Array; codes: Uint8Array; scale: Float32Array } {
  const x = new Float32Array(rows * dim);
  for (let i = 0; i < x.length; i++) x[i] = draw(rng, data);
  const codes = new Uint8Array(rows * dim);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) actQuantRow(x, r * dim, dim, dim, 'ue8m0', codes, r * dim, scale, r);
  return { x, codes, scale };
}

/** Scores of the unquantized vectors (float64): Σ_h g_h · ReLU(q_h · k_s), the weights without the queries' FP8 scales. */
function unquantizedScores(q: Float32Array, heads: number, dim: number, g: Float64Array, k: Float32Array, nKeys: number): Float64Array {
  const out = new Float64Array(nKeys);
  for (let s = 0; s < nKeys; s++) {
    let score = 0;
    for (let h = 0; h < heads; h++) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += q[h * dim + d]! * k[s * dim + d]!;
      if (dot > 0) score += g[h]! * dot;
    }
    out[s] = score;
  }
  return out;
}

export interface Int8StudyRow {
  data: Int8StudyData;
  ctx: number;
  topk: number;
  trials: number;
  /** Recall of the FP8 top-k in the int8 top-k: mean and worst over the trials. */
  recallMean: number;
  recallMin: number;
  /** Share of the FP8 top k/8 inside the int8 top-k: mean and worst. */
  headRecallMean: number;
  headRecallMin: number;
  /** For scale, the same recalls against the unquantized vectors' top-k: FP8's own, and int8's. */
  fp8VsExactMean: number;
  int8VsExactMean: number;
}

/** One context length: `trials` independent (query, keys) draws. */
export function int8Study(data: Int8StudyData, ctx: number, o: { heads: number; dim: number; topk: number; trials: number; seed: number }): Int8StudyRow {
  const k = Math.min(o.topk, ctx);
  const recalls: number[] = [];
  const heads: number[] = [];
  const fp8Exact: number[] = [];
  const int8Exact: number[] = [];
  for (let trial = 0; trial < o.trials; trial++) {
    const rng = new Rng(o.seed + 1000 * trial + ctx);
    const keys = fp8Rows(rng, ctx, o.dim, data);
    const q = fp8Rows(rng, o.heads, o.dim, data);
    // The model's per-head weight: weights_proj · H^-1/2, times each query's scale and d^-1/2.
    const g = Float64Array.from({ length: o.heads }, () => draw(rng, 'normal') / Math.sqrt(o.heads) / Math.sqrt(o.dim));
    const w = Float32Array.from(g, (gh, h) => gh * q.scale[h]!);
    const exact = indexerScores(q.codes, 1, o.heads, o.dim, w, keys.codes, keys.scale, { table: Int32Array.of(0), pageSize: ctx }, ctx, Int32Array.of(ctx - 1));
    const approx = indexerScoresInt8(q.codes, o.heads, o.dim, w, keys.codes, keys.scale, ctx);
    const fp8Top = topkSet(exact, k);
    const approxTop = topkSet(approx, k);
    const trueTop = topkSet(unquantizedScores(q.x, o.heads, o.dim, g, keys.x, ctx), k);
    recalls.push(recall(fp8Top, approxTop));
    heads.push(recall(topkSet(exact, Math.max(1, Math.floor(k / 8))), approxTop));
    fp8Exact.push(recall(trueTop, fp8Top));
    int8Exact.push(recall(trueTop, approxTop));
  }
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  return {
    data, ctx, topk: k, trials: o.trials, recallMean: mean(recalls), recallMin: Math.min(...recalls), headRecallMean: mean(heads), headRecallMin: Math.min(...heads),
    fp8VsExactMean: mean(fp8Exact), int8VsExactMean: mean(int8Exact),
  };
}

/** `dsa bench indexer-int8`: the study's table (and JSON lines with --json). */
export function addBenchIndexerInt8(bench: Command): void {
  bench
    .command('indexer-int8')
    .description("an int8 indexer's top-k against the FP8 reference (CPU): recall of the FP8 top-k, DeepSeek-V3.2's indexer shape")
    .option('--ctx <list>', 'context lengths', parseContexts, [4096, 32768, 131072])
    .option('--topk <k>', 'keys selected per query', intArg('--topk', 1), 2048)
    .option('--trials <n>', 'independent draws per context', intArg('--trials', 1), 3)
    .option('--heads <n>', 'indexer heads', intArg('--heads', 1), 64)
    .option('--dim <n>', 'indexer head dim', intArg('--dim', 1), 128)
    .option('--seed <n>', 'random seed', intArg('--seed', 0), 1)
    .option('--json <file>', 'also write the rows as JSON lines')
    .action((o: { ctx: number[]; topk: number; trials: number; heads: number; dim: number; seed: number; json?: string }) => {
      io().out(
        `setup: ${o.heads} heads × ${o.dim} dims, top-${o.topk}, ${o.trials} draws per context; vectors normal or Student-t (4 dof) per dim, ` +
          'FP8 e4m3 with one ue8m0 scale per vector; int8 = round(127 · v / max|v|) per vector (halves away from 0); reference: the CPU twin\n',
      );
      io().out('data        ctx    top-k  int8 vs FP8: recall (mean / worst)  FP8 top k/8 kept   | vs unquantized: FP8   int8\n');
      const rows: Int8StudyRow[] = [];
      for (const data of INT8_STUDY_DATA) {
        for (const ctx of o.ctx) {
          const r = int8Study(data, ctx, o);
          rows.push(r);
          const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
          io().out(
            `${data.padEnd(10)} ${String(ctx).padStart(6)} ${String(r.topk).padStart(6)}  ${pct(r.recallMean).padStart(16)} / ${pct(r.recallMin).padEnd(8)}  ` +
              `${pct(r.headRecallMean).padStart(8)} / ${pct(r.headRecallMin).padEnd(8)} | ${pct(r.fp8VsExactMean).padStart(17)} ${pct(r.int8VsExactMean).padStart(7)}\n`,
          );
        }
      }
      if (o.json) writeFileSync(o.json, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    });
}
