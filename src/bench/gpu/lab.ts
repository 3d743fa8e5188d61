/**
 * The WebGPU kernel lab (`dsa bench gpu`): kernel times by timestamp queries on the GPU at hand, each
 * kernel variant first checked against its CPU twin.
 *  - copy: HBM bandwidth by a copy kernel (bytes read + written).
 *  - matmul: TFLOP/s (TOPS for int8) of the GEMM variants of kernels/matmul.ts at n × n × n.
 *  - core: one DeepSeek-V3.2 attention layer's decode step without its projections, per context
 *    and batch (each sequence has its own cache), exactly what the PyTorch peer
 *    (shared/peers/torch_dsa_layer.py) times: DSA = indexer scan over the FP8 key cache + top-k +
 *    sparse MLA over the selected bf16 latent rows + the per-head output matmul (w_uv); dense =
 *    MLA over every row + w_uv. The indexer is also given in GB/s of key cache read (codes + scales).
 *    Measured twice: op by op for each sequence (`dsa_*`, `dense_*`), and with every sequence of
 *    the batch in one grid per op (`dsa_batched_*`, `dense_batched_*`: one indexer call over
 *    [batch, ctx], one top-k, one attention call with rowSeq over a 2-D block table, one w_uv).
 *    The kernels and their checks are in core-kernels.ts.
 * Times are the GPU's own from timestamp queries (median of the runs): per kernel (each in a pass
 * of its own: the breakdown and `*_kernels_ms`), and per pass of back-to-back kernels (`*_ms`: the
 * work as it runs unprofiled); `*_wall_ms` adds the host's recording and submission.
 */
import type { GpuDevice } from '../../backend/webgpu/device.js';
import { headMatmulGpu } from '../../backend/webgpu/kernels/head-matmul.js';
import {
  INDEXER_VARIANTS, indexerScoresGpu, bestIndexerVariant, indexerVariantAvailable, indexerVariantOf, type IndexerVariant,
} from '../../backend/webgpu/kernels/indexer.js';
import { MATMUL_VARIANTS, matmulGpu, matmulPlan, type MatmulPlan, type MatmulVariant } from '../../backend/webgpu/kernels/matmul.js';
import { mlaMatrixAvailable } from '../../backend/webgpu/kernels/mla-attention-matrix.js';
import { mlaMatrix2Available, TENSOR_CORE_ATTENTION, type Matrix2Options } from '../../backend/webgpu/kernels/mla-attention-matrix2.js';
import { topkGpu } from '../../backend/webgpu/kernels/topk.js';
import { indexerSection } from './indexer-lab.js';
import { randomBuffer } from './fill.js';
import { topkVariantRows } from './topk-lab.js';
import { gpuTimes, indexerArgs, makeStep, releaseStep, round, warmUp, type StepData } from './step.js';
import { attend, checkAttention, checkHeadMatmul, checkIndexer, DI, DR, DV, H, HI, PAGE, R, TOPK, type AttentionVariant } from './core-kernels.js';

export interface LabOptions {
  sections: readonly string[];
  ctx: readonly number[];
  batch: readonly number[];
  runs: number;
  matmulN: number;
  /** Print one line (a JSON object) per result. */
  emit: (row: Record<string, unknown>) => void;
  /** Progress and notes, on stderr. */
  note: (line: string) => void;
}


// ---- copy ----

const COPY_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4u>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4u>;
@group(0) @binding(2) var<uniform> p: vec4u; // n, groupsX
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.y) * 256u + lid.x;
  if (i < p.x) { dst[i] = src[i]; }
}
`;

async function copySection(gpu: GpuDevice, o: LabOptions): Promise<number> {
  const bytes = Math.min(1 << 30, Math.floor(gpu.limits.maxStorageBufferBindingSize / 16) * 16);
  const n = bytes / 16;
  const src = randomBuffer(gpu, bytes, 'f32', 1);
  const dst = gpu.buffer(bytes);
  const g = gpu.grid(n, 256);
  const params = gpu.uniforms(Uint32Array.of(n, g[0], 0, 0));
  const t = await gpuTimes(gpu, o.runs, () => {
    gpu.label = 'copy';
    gpu.dispatch(COPY_WGSL, [src, dst, params], g);
  });
  const gbps = (2 * bytes) / (t.totalMs * 1e-3) / 1e9;
  o.emit({ section: 'copy', bytes, ms: round(t.totalMs), GBps: round(gbps), timestampsQuantized: t.quantized });
  gpu.release(src);
  gpu.release(dst);
  return gbps;
}

// ---- matmul ----

/** Small integers (exact in every type) for the check; the CPU twin is a float64 matmul. */
function checkData(n: number, seed: number): Int8Array {
  const out = new Int8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 24) % 9) - 4;
  }
  return out;
}

function toGpu(gpu: GpuDevice, v: Int8Array, type: MatmulPlan['input']): GPUBuffer {
  if (type === 'i8') return gpu.buffer(v.length, new Uint8Array(v.buffer, v.byteOffset, v.length));
  if (type === 'f32') return gpu.buffer(v.length * 4, Float32Array.from(v));
  // f16: small integers have exact halves: sign, exponent and the top mantissa bits.
  const h = new Uint16Array(v.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < v.length; i++) {
    f[0] = v[i]!;
    const bits = u[0]!;
    const exp = ((bits >>> 23) & 0xff) - 127 + 15;
    h[i] = v[i] === 0 ? 0 : ((bits >>> 16) & 0x8000) | (exp << 10) | ((bits >>> 13) & 0x3ff);
  }
  return gpu.buffer(h.byteLength, h);
}

async function checkMatmul(gpu: GpuDevice, plan: MatmulPlan): Promise<number> {
  const m = plan.tileM * 2;
  const n = plan.tileN * 2;
  const k = plan.kStep * 8;
  const a = checkData(m * k, 1);
  const b = checkData(k * n, 2); // [K][N], or [N][K] for a plan with bTransposed
  const c = gpu.buffer(m * n * 4);
  matmulGpu(gpu, plan, toGpu(gpu, a, plan.input), toGpu(gpu, b, plan.input), c, m, n, k);
  const raw = await gpu.read(c, m * n * 4);
  const got = plan.output === 'i32' ? new Int32Array(raw) : new Float32Array(raw);
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let want = 0;
      for (let x = 0; x < k; x++) want += a[i * k + x]! * b[plan.bTransposed ? j * k + x : x * n + j]!;
      worst = Math.max(worst, Math.abs(got[i * n + j]! - want));
    }
  }
  return worst;
}

async function matmulSection(gpu: GpuDevice, o: LabOptions): Promise<void> {
  for (const v of MATMUL_VARIANTS) {
    const plan = matmulPlan(gpu, v as MatmulVariant);
    if (!plan) {
      o.emit({ section: 'matmul', variant: v, available: false });
      continue;
    }
    let maxErr: number;
    try {
      maxErr = await checkMatmul(gpu, plan);
    } catch (e) {
      o.emit({ section: 'matmul', variant: v, error: (e as Error).message });
      continue;
    }
    const n = Math.ceil(o.matmulN / Math.max(plan.tileM, plan.tileN)) * Math.max(plan.tileM, plan.tileN);
    const el = plan.input === 'f32' ? 4 : plan.input === 'f16' ? 2 : 1;
    const a = randomBuffer(gpu, n * n * el, plan.input === 'i8' ? 'i8' : plan.input === 'f16' ? 'f16' : 'f32', 3);
    const b = randomBuffer(gpu, n * n * el, plan.input === 'i8' ? 'i8' : plan.input === 'f16' ? 'f16' : 'f32', 4);
    const c = gpu.buffer(n * n * 4);
    const t = await gpuTimes(gpu, o.runs, () => {
      gpu.label = v;
      matmulGpu(gpu, plan, a, b, c, n, n, n);
    });
    o.emit({ section: 'matmul', variant: v, n, maxAbsErrVsCpu: maxErr, ms: round(t.totalMs), [plan.input === 'i8' ? 'TOPS' : 'TFLOPs']: round((2 * n ** 3) / (t.totalMs * 1e-3) / 1e12) });
    for (const x of [a, b, c]) gpu.release(x);
  }
}

// ---- the attention core ----

/** Records a step's DSA attention core (or dense with `dense`), one call per op; its temporaries are released after. */
function recordStep(gpu: GpuDevice, s: StepData, wuv: GPUBuffer, dense: boolean, variant: IndexerVariant, attention: AttentionVariant): void {
  const scale = 1 / Math.sqrt(192);
  const temps: GPUBuffer[] = [];
  let indices: GPUBuffer | null = null;
  const k = Math.min(TOPK, s.ctx);
  if (!dense) {
    gpu.label = 'indexer';
    const scores = indexerScoresGpu(gpu, indexerArgs(s, variant));
    gpu.label = 'topk';
    indices = topkGpu(gpu, scores, s.positions, s.rows, s.ctx, k);
    temps.push(scores, indices);
  }
  gpu.label = 'attention';
  const o = attend(gpu, attention, s.qLat, s.qPe, s.latent, s.pages, s.positions, indices, indices ? k : 0, s.ctx, { rows: s.rows, heads: H, r: R, dr: DR }, scale);
  gpu.label = 'wuv';
  temps.push(o, headMatmulGpu(gpu, o, wuv, s.rows, H, R, DV, true));
  for (const b of temps) gpu.release(b);
}

async function coreSection(gpu: GpuDevice, o: LabOptions, copyGBps: number | null): Promise<void> {
  const variants = INDEXER_VARIANTS.filter((v) => indexerVariantAvailable(gpu, v, HI, DI));
  const shape = { rows: 1, heads: H, r: R, dr: DR };
  const attentionVariants: AttentionVariant[] = [
    'f32', ...(mlaMatrixAvailable(gpu, shape, 'bf16') ? ['matrix' as const] : []), ...(mlaMatrix2Available(gpu, shape, 'bf16') ? ['matrix2' as const] : []),
  ];
  // Each variant on one sequence, then on three sequences in one grid (rowSeq: what the batched step runs).
  for (const multi of [false, true]) {
    const tag = multi ? '-multiseq' : '';
    for (const v of variants) o.emit({ section: 'check', kernel: `indexer-${v}${tag}`, ...(await checkIndexer(gpu, v, multi)) });
    if (!multi) for (const v of variants) o.emit({ section: 'check', kernel: `indexer-${v}-subnormal-keys`, ...(await checkIndexer(gpu, v, false, true)) });
    for (const v of attentionVariants) o.emit({ section: 'check', kernel: `attention-${v}${tag}`, maxErrOverScale: await checkAttention(gpu, v, multi) });
    if (!multi) o.emit({ section: 'check', kernel: 'wuv-headMatmul', maxErrOverScale: await checkHeadMatmul(gpu) });

  }
  // The step's attention: the backend's tensor-core kernel (TENSOR_CORE_ATTENTION) where it runs, else the other one, else f32.
  const attention = attentionVariants.includes(TENSOR_CORE_ATTENTION) ? TENSOR_CORE_ATTENTION : attentionVariants.includes('matrix') ? 'matrix' : 'f32';
  const wuv = randomBuffer(gpu, H * DV * R * 4, 'f32', 99, -0.05, 0.05);
  for (const batch of o.batch) {
    for (const ctx of o.ctx) {
      o.note(`core: batch ${batch}, ctx ${ctx}`);
      const seqs = Array.from({ length: batch }, (_, b) => makeStep(gpu, ctx, 1, 1000 * b + ctx, false));
      await gpu.finish();
      const row: Record<string, unknown> = { section: 'core', batch, ctx };
      const best = bestIndexerVariant(gpu, HI, DI, ctx);
      // The indexer scan alone, every variant (the naive one only where it takes seconds at most).
      const keyBytes = batch * ctx * (DI + 4);
      for (const v of variants) {
        if (v === 'naive' && batch * ctx > 16 * 32768) continue;
        const t = await gpuTimes(gpu, o.runs, () => {
          gpu.label = 'indexer';
          for (const s of seqs) gpu.release(indexerScoresGpu(gpu, indexerArgs(s, v)));
        });
        const gbps = keyBytes / (t.totalMs * 1e-3) / 1e9;
        row[`indexer_${v}_ms`] = round(t.totalMs);
        row[`indexer_${v}_GBps`] = round(gbps);
        if (copyGBps) row[`indexer_${v}_ofCopy`] = round(gbps / copyGBps, 3);
      }
      if (attention !== 'f32') {
        // The f32 attention kernel on the sparse step, for comparison.
        const f32 = await gpuTimes(gpu, o.runs, () => seqs.forEach((s) => recordStep(gpu, s, wuv, false, best, 'f32')));
        row.dsa_f32attention_ms = round(f32.totalMs);
      }
      const dsa = await gpuTimes(gpu, o.runs, () => seqs.forEach((s) => recordStep(gpu, s, wuv, false, best, attention)));
      const dense = await gpuTimes(gpu, o.runs, () => seqs.forEach((s) => recordStep(gpu, s, wuv, true, best, attention)));
      Object.assign(row, {
        indexerVariant: best,
        attentionVariant: attention,
        dsa_ms: round(dsa.totalMs), dsa_kernels_ms: round(dsa.kernelSumMs), dsa_wall_ms: round(dsa.wallMs),
        dsa_indexer_ms: round(dsa.byLabel.indexer ?? 0), dsa_topk_ms: round(dsa.byLabel.topk ?? 0),
        dsa_attention_ms: round(dsa.byLabel.attention ?? 0), dsa_wuv_ms: round(dsa.byLabel.wuv ?? 0),
        dense_ms: round(dense.totalMs), dense_kernels_ms: round(dense.kernelSumMs), dense_wall_ms: round(dense.wallMs), dense_attention_ms: round(dense.byLabel.attention ?? 0),
        ratio: round(dense.totalMs / dsa.totalMs, 3),
      });
      seqs.forEach((s) => releaseStep(gpu, s));
      await gpu.finish();
      // The same step with every sequence in one grid per op: one indexer call [batch, ctx], one
      // top-k over all rows, one attention call with rowSeq, one w_uv matmul over [batch, H, R].
      const all = makeStep(gpu, ctx, batch, 7000 + ctx, true);
      await gpu.finish();
      // Every top-k variant alone over the batch's scores, one grid over all rows (topk-lab.ts).
      const topkScores = indexerScoresGpu(gpu, indexerArgs(all, best));
      Object.assign(row, await topkVariantRows(gpu, topkScores, all.positions, batch, ctx, Math.min(TOPK, ctx), (rec) => gpuTimes(gpu, o.runs, rec)));
      gpu.release(topkScores);
      await warmUp(gpu, () => recordStep(gpu, all, wuv, false, best, attention), 1000);
      const dsaB = await gpuTimes(gpu, o.runs, () => recordStep(gpu, all, wuv, false, best, attention));
      const denseB = await gpuTimes(gpu, o.runs, () => recordStep(gpu, all, wuv, true, best, attention));
      Object.assign(row, {
        indexerVariant_batched: indexerVariantOf(gpu, indexerArgs(all, best)),
        dsa_batched_ms: round(dsaB.totalMs), dsa_batched_kernels_ms: round(dsaB.kernelSumMs), dsa_batched_wall_ms: round(dsaB.wallMs),
        dsa_batched_indexer_ms: round(dsaB.byLabel.indexer ?? 0), dsa_batched_topk_ms: round(dsaB.byLabel.topk ?? 0),
        dsa_batched_attention_ms: round(dsaB.byLabel.attention ?? 0), dsa_batched_wuv_ms: round(dsaB.byLabel.wuv ?? 0),
        dsa_batched_indexer_GBps: round(keyBytes / ((dsaB.byLabel.indexer ?? Infinity) * 1e-3) / 1e9),
        dense_batched_ms: round(denseB.totalMs), dense_batched_kernels_ms: round(denseB.kernelSumMs), dense_batched_wall_ms: round(denseB.wallMs),
        dense_batched_attention_ms: round(denseB.byLabel.attention ?? 0),
        ratio_batched: round(denseB.totalMs / dsaB.totalMs, 3),
        batched_speedup: round(dsa.totalMs / dsaB.totalMs, 3),
      });
      // The indexer alone over the whole batch in one grid, every variant (the timing probes are in
      // the indexer section).
      for (const v of variants) {
        if (v === 'naive' && batch * ctx > 16 * 32768) continue;
        const t = await gpuTimes(gpu, o.runs, () => gpu.release(indexerScoresGpu(gpu, indexerArgs(all, v))));
        row[`indexer_${v}_batched_ms`] = round(t.totalMs);
      }
      Object.assign(row, await attentionVariantTimes(gpu, o, all, best, attentionVariants));
      // Where one binding could not hold every sequence's latent pages, sequences share some (said so).
      if (all.poolPages < batch * Math.ceil(ctx / PAGE)) row.batched_poolPages = all.poolPages;
      o.emit(row);
      releaseStep(gpu, all);
      await gpu.finish();
    }
  }
  gpu.release(wuv);
}

/**
 * The sparse attention call alone, every variant, on the batched step (the step's top-k indices
 * computed once): `batched_attention_<variant>_ms` (its kernels back to back) and, for 'matrix2',
 * each pass by itself (`batched_attention_matrix2_<pass>_ms`: prep, entries, scores, values,
 * combine) and the whole call with the values pass aimed at other workgroup counts
 * (`batched_attention_matrix2_groups<n>_ms`) or without prefetch (`batched_attention_matrix2_noprefetch_ms`).
 */
async function attentionVariantTimes(gpu: GpuDevice, o: LabOptions, s: StepData, variant: IndexerVariant, variants: AttentionVariant[]): Promise<Record<string, number>> {
  const k = Math.min(TOPK, s.ctx);
  const scores = indexerScoresGpu(gpu, indexerArgs(s, variant));
  const indices = topkGpu(gpu, scores, s.positions, s.rows, s.ctx, k);
  const time = (v: AttentionVariant, options: Matrix2Options) =>
    gpuTimes(gpu, o.runs, () => {
      gpu.label = 'attention';
      gpu.release(attend(gpu, v, s.qLat, s.qPe, s.latent, s.pages, s.positions, indices, k, s.ctx, { rows: s.rows, heads: H, r: R, dr: DR }, 1 / Math.sqrt(192), options));
    });
  const row: Record<string, number> = {};
  for (const v of variants) {
    const t = await time(v, { passLabels: true });
    row[`batched_attention_${v}_ms`] = round(t.totalMs);
    if (v === 'matrix2') for (const [label, ms] of Object.entries(t.byLabel)) row[`batched_attention_matrix2_${label.replace('attention.', '')}_ms`] = round(ms);
  }
  // 'matrix2' with fewer and with more splits (the values pass aims for 128 workgroups from 8 rows, else 1024, by default), and without prefetch.
  if (variants.includes('matrix2')) {
    for (const groups of [128, 256, 1024, 2048]) row[`batched_attention_matrix2_groups${groups}_ms`] = round((await time('matrix2', { groups })).totalMs);
    row.batched_attention_matrix2_noprefetch_ms = round((await time('matrix2', { prefetch: false })).totalMs);
  }
  gpu.release(scores);
  gpu.release(indices);
  await gpu.finish();
  return row;
}

export const LAB_SECTIONS = ['copy', 'matmul', 'core', 'indexer'] as const;

/** Runs the lab's sections on a device; rows go to o.emit. */
export async function runGpuLab(gpu: GpuDevice, o: LabOptions): Promise<void> {
  const info = gpu.adapterInfo;
  o.emit({
    section: 'device', vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
    features: [...gpu.features], subgroupSize: gpu.subgroupSize, subgroupMatrix: gpu.subgroupMatrixConfigs,
    maxWorkgroupStorage: gpu.limits.maxComputeWorkgroupStorageSize, maxBinding: gpu.limits.maxStorageBufferBindingSize,
  });
  if (!gpu.features.has('timestamp-query')) throw new Error('dsa bench gpu: the adapter has no timestamp-query feature (kernel times need it)');
  // Sections in the order asked (the copy section first where asked: the others quote its rate).
  let copy: number | null = null;
  if (o.sections.includes('copy')) copy = await copySection(gpu, o);
  for (const section of o.sections) {
    if (section === 'matmul') await matmulSection(gpu, o);
    if (section === 'core') await coreSection(gpu, o, copy);
    if (section === 'indexer') await indexerSection(gpu, o, copy);
  }
}
