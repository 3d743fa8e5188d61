/**
 * Hardware profiles for `dsa cost`: GPUs priced by a roofline over public peak numbers and stated
 * achievable fractions, and `measured`, which prices each kernel class at the rates our own
 * `dsa bench attention --json` measured.
 */
import { readTextFile } from '../io/text-file.js';
import { z } from 'zod';
import { DEEPSEEK_V32_CONFIG } from '../bench/attention-layer.js';
import { parseConfig } from '../model/config.js';
import {
  KERNELS,
  rooflineSeconds,
  tokenOps,
  type CostModelSpec,
  type Deployment,
  type Efficiency,
  type Kernel,
  type Op,
  type Peaks,
  type Phase,
  type TimeModel,
} from './model.js';

export const GPUS = ['h800', 'h200', 'b200'] as const;
export type GpuName = (typeof GPUS)[number];
export const HARDWARE = [...GPUS, 'measured'] as const;

/** The paper's rental price (USD per GPU-hour), the default for every profile. */
export const DEFAULT_PRICE = 2;

const T = 1e12;

/**
 * Dense (not 2:4-sparse) peaks from NVIDIA's public spec sheets. H800 SXM: the H100 SXM's compute
 * (989 TFLOPS bf16, 1979 FP8, 67 FP32) with 3.35 TB/s HBM3. H200 SXM: the same compute, 4.8 TB/s
 * HBM3e. B200 (HGX B200, per GPU): ≈2.25 PFLOPS bf16, 4.5 FP8, ≈80 TFLOPS FP32, 8 TB/s HBM3e.
 */
export const PEAKS: Record<GpuName, Peaks> = {
  h800: { bf16: 989 * T, fp8: 1979 * T, vector: 67 * T, bandwidth: 3.35 * T },
  h200: { bf16: 989 * T, fp8: 1979 * T, vector: 67 * T, bandwidth: 4.8 * T },
  b200: { bf16: 2250 * T, fp8: 4500 * T, vector: 80 * T, bandwidth: 8 * T },
};

/**
 * Achievable fractions, from the best published kernels on H800 (see docs/cost-model.md), used for
 * every GPU. Linear layers 0.4: the MoE's grouped FP8 GEMMs in service (uneven expert loads,
 * expert-parallel dispatch and combine, and the small ops this model does not count), about half
 * of what a large dense FP8 GEMM reaches. Dense prefill attention 0.6 (FlashAttention-3 class MHA);
 * dense decode 0.67 (FlashMLA dense decode: 660 TFLOPS); sparse prefill 0.65 (FlashMLA: 640);
 * sparse decode 0.41 (FlashMLA FP8 sparse decode: 410, dequantization-bound); the indexer 0.65 of
 * the tensor and CUDA-core time (a tuned FP8 GEMM with its epilogue); top-k moves bytes only.
 * Memory: 0.9 of the bandwidth (FlashMLA dense decode: 3000 GB/s of 3350).
 */
export const DEFAULT_EFFICIENCY: Efficiency = {
  compute: {
    prefill: { gemm: 0.4, 'dense-attention': 0.6, 'sparse-attention': 0.65, indexer: 0.65, topk: 1 },
    decode: { gemm: 0.4, 'dense-attention': 0.67, 'sparse-attention': 0.41, indexer: 0.65, topk: 1 },
  },
  memory: 0.9,
};

/**
 * DeepSeek's serving setup as published: data-parallel attention with 128 sequences per GPU per decode
 * step (FlashMLA's benchmark batch), routed experts spread over 144 GPUs in decode (the
 * DeepSeek-V3/R1 inference system: EP144), 8192 prompt tokens per GPU per prefill step, one MTP draft
 * token accepted 85% of the time (DeepSeek-V3 report: 85–90%), masked dense prefill below index_topk.
 */
export const GPU_DEPLOYMENT: Deployment = {
  batch: 128,
  prefillTokens: 8192,
  expertParallel: 144,
  mtpTokens: 2,
  mtpAcceptance: 0.85,
  prefillDenseBelow: null,
};

/** A hardware profile: how long ops take, the deployment it assumes, and a description for reports. */
export interface Profile extends TimeModel {
  name: string;
  description: string[];
  deployment: Deployment;
}

export function gpuProfile(name: GpuName, efficiency: Efficiency = DEFAULT_EFFICIENCY): Profile {
  const p = PEAKS[name];
  const tf = (x: number) => `${Math.round(x / T)}`;
  return {
    name,
    deployment: { ...GPU_DEPLOYMENT },
    description: [
      `${name.toUpperCase()}: ${tf(p.bf16)} TFLOPS bf16, ${tf(p.fp8)} FP8, ${tf(p.vector)} FP32 (CUDA cores), ${p.bandwidth / T} TB/s (dense peaks, public spec sheets)`,
      `achievable fractions (prefill / decode): linear layers ${efficiency.compute.prefill.gemm} / ${efficiency.compute.decode.gemm}, ` +
        `dense attention ${efficiency.compute.prefill['dense-attention']} / ${efficiency.compute.decode['dense-attention']}, ` +
        `sparse attention ${efficiency.compute.prefill['sparse-attention']} / ${efficiency.compute.decode['sparse-attention']}, ` +
        `indexer ${efficiency.compute.prefill.indexer} / ${efficiency.compute.decode.indexer}; memory bandwidth ${efficiency.memory}`,
    ],
    opSeconds: (op: Op, phase: Phase) => rooflineSeconds(op.work, p, efficiency.compute[phase][op.kernel], efficiency.memory),
  };
}

// ---------------------------------------------------------------------------------------------
// measured: rates from `dsa bench attention --json`

const ms = z.number().nonnegative().nullable();
const benchRowSchema = z
  .object({
    ctx: z.number().int().nonnegative(),
    batch: z.number().int().positive(),
    mode: z.enum(['decode', 'prefill']),
    rows_per_step: z.number().int().positive(),
    dense_ms: ms,
    dsa_ms: ms,
    indexer_ms: ms,
    topk_ms: ms,
    attn_ms: ms,
    proj_ms: ms,
    dense_attn_ms: ms,
    dense_proj_ms: ms,
    dsa_dense_path: z.boolean(),
    cache_bytes_per_token: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    num_heads: z.number().int().positive(),
    kv_lora_rank: z.number().int().positive(),
    index_topk: z.number().int().positive(),
    weights: z.enum(['fp8', 'bf16']),
    backend: z.string().optional(),
  })
  .loose();
export type BenchRow = z.infer<typeof benchRowSchema>;

/** Parses the rows of a bench JSON file; every problem names the file, the row and the field. */
export function parseBenchRows(raw: unknown, file: string): BenchRow[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new Error(`${file}: expected a non-empty JSON array of rows (the output of \`dsa bench attention --json\`)`);
  const r = z.array(benchRowSchema).safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const [row, ...key] = issue.path;
    const what = issue.code === 'invalid_type' && issue.message.includes('received undefined') ? 'missing' : issue.message;
    throw new Error(`${file}: row ${String(row)}${key.length > 0 ? `, ${key.join('.')}` : ''}: ${what} (expected the output of \`dsa bench attention --json\`)`);
  }
  return r.data;
}

/** Reads and parses a bench JSON file. */
export function readBenchFile(file: string): BenchRow[] {
  const text = readTextFile(file);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseBenchRows(raw, file);
}

/** Achieved rates of one kernel class at one position: FLOP/s and bytes/s (null where the op moves none). */
interface RatePoint {
  t: number;
  flops: number | null;
  bytes: number | null;
}

/**
 * The one-layer attention model the bench ran: the built-in V3.2 config with the four fields the
 * bench records, its cache entry size (cache_bytes_per_token less the 132-byte indexer key), and the
 * bench's own deployment: its batch in one step (projection weights read once for all its rows), no MTP.
 */
function benchSpec(row: BenchRow): { spec: CostModelSpec; deployment: Deployment } {
  const cfg = parseConfig(
    { ...DEEPSEEK_V32_CONFIG, hidden_size: row.hidden_size, num_attention_heads: row.num_heads, kv_lora_rank: row.kv_lora_rank, index_topk: row.index_topk, num_hidden_layers: 1, first_k_dense_replace: 1, ...(row.weights === 'bf16' ? { quantization_config: null } : {}) },
    'bench config',
  );
  const latentBytes = row.cache_bytes_per_token - (cfg.indexHeadDim + 4);
  const deployment: Deployment = { batch: row.batch, prefillTokens: row.rows_per_step * row.batch, expertParallel: 1, mtpTokens: 1, mtpAcceptance: 0, prefillDenseBelow: null };
  return { spec: { name: 'bench', cfg, dsa: true, latentBytes }, deployment };
}

/** Which measured field times which op of which engine. */
const MEASURED: { kernel: Kernel; field: keyof BenchRow; dsa: boolean; op: string }[] = [
  { kernel: 'gemm', field: 'dense_proj_ms', dsa: false, op: 'attention projections' },
  { kernel: 'dense-attention', field: 'dense_attn_ms', dsa: false, op: 'dense attention' },
  { kernel: 'sparse-attention', field: 'attn_ms', dsa: true, op: 'sparse attention' },
  { kernel: 'indexer', field: 'indexer_ms', dsa: true, op: 'indexer' },
  { kernel: 'topk', field: 'topk_ms', dsa: true, op: 'top-k' },
];

/** Rates of every kernel class measured in these rows (all of one mode). */
function calibrate(rows: BenchRow[], phase: Phase): Partial<Record<Kernel, RatePoint[]>> {
  const out: Partial<Record<Kernel, RatePoint[]>> = {};
  for (const row of rows) {
    const { spec, deployment } = benchSpec(row);
    // A prefill chunk covers positions ctx .. ctx + rows − 1: price its middle token.
    const t = phase === 'prefill' ? row.ctx + (row.rows_per_step - 1) / 2 : row.ctx;
    for (const m of MEASURED) {
      const v = row[m.field] as number | null;
      if (v === null || v <= 0 || (m.kernel === 'sparse-attention' && row.dsa_dense_path)) continue;
      const op = tokenOps({ ...spec, dsa: m.dsa }, phase, t, deployment).find((o) => o.name === m.op);
      if (!op) continue;
      const seconds = v / 1000 / row.batch; // per query token
      const f = op.work.bf16 + op.work.fp8 + op.work.vector;
      (out[m.kernel] ??= []).push({ t, flops: f > 0 ? f / seconds : null, bytes: op.work.bytes > 0 ? op.work.bytes / seconds : null });
    }
  }
  for (const k of KERNELS) out[k]?.sort((a, b) => a.t - b.t);
  // The projections do not depend on the position: one rate, the median over the rows.
  const g = out.gemm;
  if (g && g.length > 0) {
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const f = g.map((p) => p.flops).filter((x): x is number => x !== null);
    const b = g.map((p) => p.bytes).filter((x): x is number => x !== null);
    out.gemm = [{ t: 0, flops: f.length > 0 ? med(f) : null, bytes: b.length > 0 ? med(b) : null }];
  }
  return out;
}

/** The rate at t: linear in log2(t + 1) between measured positions, the nearest one outside them. */
function rateAt(points: RatePoint[], t: number, key: 'flops' | 'bytes'): number | null {
  const pts = points.filter((p) => p[key] !== null);
  if (pts.length === 0) return null;
  const x = Math.log2(t + 1);
  const xs = pts.map((p) => Math.log2(p.t + 1));
  if (x <= xs[0]!) return pts[0]![key];
  if (x >= xs[xs.length - 1]!) return pts[pts.length - 1]![key];
  const i = xs.findIndex((xi) => xi >= x);
  const f = (x - xs[i - 1]!) / (xs[i]! - xs[i - 1]!);
  return pts[i - 1]![key]! + f * (pts[i]![key]! - pts[i - 1]![key]!);
}

/**
 * `measured`: each kernel class runs at the rates the bench measured for it (per phase; a phase
 * without its own file borrows the other's). An op's time = max(FLOPs / measured FLOP/s, bytes /
 * measured bytes/s): at a measured point and the bench's own model that IS the measured time; for
 * another model or batch it scales the measured time by the larger of the two work ratios.
 */
export function measuredProfile(files: string[], rowsByFile: BenchRow[][]): Profile {
  const rates: Partial<Record<Phase, Partial<Record<Kernel, RatePoint[]>>>> = {};
  const source: Partial<Record<Phase, string>> = {};
  rowsByFile.forEach((rows, i) => {
    const modes = new Set(rows.map((r) => r.mode));
    if (modes.size > 1) throw new Error(`${files[i]}: mixes decode and prefill rows (one bench run per file)`);
    const phase = rows[0]!.mode;
    if (rates[phase]) throw new Error(`${files[i]}: a second ${phase} bench file (give at most one decode and one prefill file)`);
    const r = calibrate(rows, phase);
    for (const k of KERNELS) if (!r[k]) throw new Error(`${files[i]}: no row measures ${k} (bench contexts above index_topk, with both engines)`);
    rates[phase] = r;
    source[phase] = files[i]!;
  });
  const first = rowsByFile[0]![0]!;
  const phaseRates = (phase: Phase) => (rates[phase] ?? rates[phase === 'decode' ? 'prefill' : 'decode'])!;
  // Linear layers are the same op in both phases: one roofline from the best rates either phase
  // reached (decode at batch 1 streams weights: its bytes/s; prefill chunks reuse them: its FLOP/s).
  const gemms = [rates.decode?.gemm?.[0], rates.prefill?.gemm?.[0]].filter((p): p is RatePoint => p !== undefined);
  const best = (key: 'flops' | 'bytes') => Math.max(...gemms.map((p) => p[key] ?? 0)) || null;
  const g: RatePoint = { t: 0, flops: best('flops'), bytes: best('bytes') };
  const gb = (x: number | null) => (x === null ? '–' : `${(x / 1e9).toFixed(1)}`);
  // The bench's own batching: its decode batch, its prefill rows per step; one device, no MTP.
  const prefillRow = rowsByFile.find((rows) => rows[0]!.mode === 'prefill')?.[0];
  const decodeRow = rowsByFile.find((rows) => rows[0]!.mode === 'decode')?.[0];
  return {
    name: 'measured',
    deployment: {
      batch: decodeRow?.batch ?? 1,
      prefillTokens: prefillRow ? prefillRow.rows_per_step * prefillRow.batch : 64,
      expertParallel: 1,
      mtpTokens: 1,
      mtpAcceptance: 0,
      prefillDenseBelow: null,
    },
    description: [
      `measured: ${first.backend ?? 'our backend'}; decode rates from ${source.decode ?? `${source.prefill} (no decode file)`}, prefill rates from ${source.prefill ?? `${source.decode} (no prefill file)`}`,
      `linear layers (from the bench's attention projections, also used for the FFN, MoE and lm_head): ${gb(g.flops)} GFLOP/s, ${gb(g.bytes)} GB/s; ` +
        `attention, indexer and top-k: the measured curves, interpolated between contexts${gemms.length < 2 ? '; with one bench file, linear layers scale by the larger work ratio (give a decode and a prefill file for their roofline)' : ''}`,
    ],
    opSeconds(op: Op, phase: Phase, t: number): number {
      const pts = op.kernel === 'gemm' ? [g] : phaseRates(phase)[op.kernel]!;
      const f = op.work.bf16 + op.work.fp8 + op.work.vector;
      const rf = rateAt(pts, t, 'flops');
      const rb = rateAt(pts, t, 'bytes');
      const byFlops = f > 0 && rf ? f / rf : 0;
      const byBytes = op.work.bytes > 0 && rb ? op.work.bytes / rb : 0;
      return Math.max(byFlops, byBytes);
    },
  };
}
