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
 * Times are the GPU's own from timestamp queries (median of the runs): per kernel (each in a pass
 * of its own: the breakdown and `*_kernels_ms`), and per pass of back-to-back kernels (`*_ms`: the
 * work as it runs unprofiled); `*_wall_ms` adds the host's recording and submission.
 */
import { indexerScores } from '../../backend/cpu/kernels/indexer.js';
import type { GpuDevice } from '../../backend/webgpu/device.js';
import { headMatmulGpu } from '../../backend/webgpu/kernels/head-matmul.js';
import { INDEXER_VARIANTS, indexerScoresGpu, bestIndexerVariant, indexerVariantAvailable, type IndexerVariant } from '../../backend/webgpu/kernels/indexer.js';
import { MATMUL_VARIANTS, matmulGpu, matmulPlan, type MatmulPlan, type MatmulVariant } from '../../backend/webgpu/kernels/matmul.js';
import { mlaAttentionGpu } from '../../backend/webgpu/kernels/mla-attention.js';
import { mlaAttentionMatrixGpu, mlaMatrixAvailable } from '../../backend/webgpu/kernels/mla-attention-matrix.js';
import { mlaAttention } from '../../backend/cpu/kernels/mla-attention.js';
import { encodeBf16 } from '../../numerics/bf16.js';
import { topkGpu } from '../../backend/webgpu/kernels/topk.js';
import { onePageTable, type GpuPages } from '../../backend/webgpu/kernels/pages.js';
import { median } from '../harness.js';
import { randomBuffer } from './fill.js';

/** DeepSeek-V3.2's attention shapes (the peer's constants). */
const H = 128;
const R = 512;
const DR = 64;
const DV = 128;
const HI = 64;
const DI = 128;
const TOPK = 2048;
const PAGE = 64;

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

/**
 * Times `record` (after one warm-up) three ways, `runs` times each, median reported: under
 * per-dispatch timestamps (GPU ms by label — each kernel alone, no overlap), under per-pass
 * timestamps (`totalMs`: the GPU's time for the work as it runs, kernels back to back), and by the
 * wall clock (`wallMs`: recording, submission and waiting included).
 */
async function gpuTimes(
  gpu: GpuDevice,
  runs: number,
  record: () => void,
): Promise<{ byLabel: Record<string, number>; kernelSumMs: number; totalMs: number; wallMs: number; quantized: boolean }> {
  record();
  await gpu.finish();
  const perRun: Record<string, number>[] = [];
  // Whether every interval is a multiple of 2^16 ns (Dawn's timestamp quantization left on).
  let quantized = true;
  for (let r = 0; r < runs; r++) {
    gpu.startProfiling('dispatch');
    record();
    const by: Record<string, number> = {};
    for (const k of await gpu.stopProfiling()) {
      by[k.label] = (by[k.label] ?? 0) + k.ms;
      if (Math.round(k.ms * 1e6) % 65536 !== 0) quantized = false;
    }
    perRun.push(by);
  }
  const passes: number[] = [];
  for (let r = 0; r < runs; r++) {
    gpu.startProfiling('pass');
    record();
    passes.push((await gpu.stopProfiling()).reduce((a, k) => a + k.ms, 0));
  }
  const walls: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    record();
    await gpu.finish();
    walls.push(performance.now() - t0);
  }
  const byLabel: Record<string, number> = {};
  for (const label of Object.keys(perRun[0] ?? {})) byLabel[label] = median(perRun.map((p) => p[label] ?? 0));
  const kernelSumMs = median(perRun.map((p) => Object.values(p).reduce((a, b) => a + b, 0)));
  return { byLabel, kernelSumMs, totalMs: median(passes), wallMs: median(walls), quantized };
}

const round = (x: number, d = 4): number => Number(x.toPrecision(d));

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
  const b = checkData(k * n, 2);
  const c = gpu.buffer(m * n * 4);
  matmulGpu(gpu, plan, toGpu(gpu, a, plan.input), toGpu(gpu, b, plan.input), c, m, n, k);
  const raw = await gpu.read(c, m * n * 4);
  const got = plan.output === 'i32' ? new Int32Array(raw) : new Float32Array(raw);
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let want = 0;
      for (let x = 0; x < k; x++) want += a[i * k + x]! * b[x * n + j]!;
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

/** One sequence's cache and decode-step inputs on the GPU (its pages are contiguous). */
interface SeqData {
  ctx: number;
  latent: GPUBuffer;
  kCache: GPUBuffer;
  kScale: GPUBuffer;
  table: GPUBuffer;
  nPages: number;
  positions: GPUBuffer;
  q8: GPUBuffer;
  w: GPUBuffer;
  qLat: GPUBuffer;
  qPe: GPUBuffer;
}

function makeSeq(gpu: GpuDevice, ctx: number, seed: number): SeqData {
  const nPages = Math.ceil(ctx / PAGE);
  const slots = nPages * PAGE;
  return {
    ctx,
    latent: randomBuffer(gpu, slots * (R + DR) * 2, 'bf16', seed, -2, 2),
    kCache: randomBuffer(gpu, slots * DI, 'e4m3', seed + 1),
    kScale: randomBuffer(gpu, slots * 4, 'f32', seed + 2, 0.01, 1),
    table: gpu.buffer(nPages * 4, Int32Array.from({ length: nPages }, (_, i) => i)),
    nPages,
    positions: gpu.buffer(4, Int32Array.of(ctx - 1)),
    q8: randomBuffer(gpu, HI * DI, 'e4m3', seed + 3),
    w: randomBuffer(gpu, HI * 4, 'f32', seed + 4, -1, 1),
    qLat: randomBuffer(gpu, H * R * 4, 'f32', seed + 5, -0.05, 0.05),
    qPe: randomBuffer(gpu, H * DR * 4, 'f32', seed + 6, -0.05, 0.05),
  };
}

function releaseSeq(gpu: GpuDevice, s: SeqData): void {
  for (const b of [s.latent, s.kCache, s.kScale, s.table, s.positions, s.q8, s.w, s.qLat, s.qPe]) gpu.release(b);
}

/** Records one sequence's DSA step (or dense with `dense`); its temporaries are released after. */
function recordCore(gpu: GpuDevice, s: SeqData, wuv: GPUBuffer, dense: boolean, variant: IndexerVariant, attention: AttentionVariant): void {
  const scale = 1 / Math.sqrt(192);
  const temps: GPUBuffer[] = [];
  let indices: GPUBuffer | null = null;
  const k = Math.min(TOPK, s.ctx);
  if (!dense) {
    gpu.label = 'indexer';
    const scores = indexerScoresGpu(gpu, {
      q8: s.q8, w: s.w, kCache: s.kCache, kScale: s.kScale, table: s.table, tableLength: s.nPages, pageSize: PAGE,
      positions: s.positions, rows: 1, heads: HI, dim: DI, nKeys: s.ctx, variant,
    });
    gpu.label = 'topk';
    indices = topkGpu(gpu, scores, s.positions, 1, s.ctx, k);
    temps.push(scores, indices);
  }
  gpu.label = 'attention';
  const o = attend(gpu, attention, s.qLat, s.qPe, s.latent, onePageTable(s.table, s.nPages, PAGE), s.positions, indices, indices ? k : 0, s.ctx, { rows: 1, heads: H, r: R, dr: DR }, scale);
  gpu.label = 'wuv';
  temps.push(o, headMatmulGpu(gpu, o, wuv, 1, H, R, DV, true));
  for (const b of temps) gpu.release(b);
}

type AttentionVariant = 'f32' | 'matrix';

/** MLA attention over a bf16 latent cache by one of the two kernels (one sequence's table, or a 2-D one with rowSeq). */
function attend(
  gpu: GpuDevice, v: AttentionVariant, qLat: GPUBuffer, qPe: GPUBuffer, latent: GPUBuffer, pages: GpuPages, positions: GPUBuffer,
  indices: GPUBuffer | null, k: number, nKeys: number, shape: { rows: number; heads: number; r: number; dr: number }, scale: number,
): GPUBuffer {
  if (v === 'matrix') return mlaAttentionMatrixGpu(gpu, qLat, qPe, latent, 'bf16', pages, positions, indices, k, nKeys, shape, scale);
  return mlaAttentionGpu(gpu, qLat, qPe, latent, 'bf16', pages, positions, indices, k, shape, scale);
}

/** An attention variant against the CPU twin (bf16 latents, sparse with −1 entries and dense); max error ÷ max |output|. */
async function checkAttention(gpu: GpuDevice, v: AttentionVariant): Promise<number> {
  const nKeys = 300;
  const rows = 2;
  const k = 96;
  const nPages = Math.ceil(nKeys / PAGE);
  const gen = checkData(rows * H * (R + DR) + nPages * PAGE * (R + DR) + rows * k, 11);
  let at = 0;
  const take = (n: number) => gen.subarray(at, (at += n));
  const qLat = Float32Array.from(take(rows * H * R), (x) => x / 16);
  const qPe = Float32Array.from(take(rows * H * DR), (x) => x / 16);
  const lat = encodeBf16(Float32Array.from(take(nPages * PAGE * (R + DR)), (x) => x / 4));
  const table = Int32Array.from({ length: nPages }, (_, i) => (i * 3) % nPages);
  const positions = Int32Array.of(nKeys - 1, 170);
  const indices = Int32Array.from(take(rows * k), (x, i) => (x === -4 ? -1 : ((i * 37) % 171)));
  const shape = { rows, heads: H, r: R, dr: DR };
  const scale = 1 / Math.sqrt(192);
  let worst = 0;
  for (const sparse of [true, false]) {
    const want = mlaAttention(qLat, qPe, { format: 'bf16', data: lat }, R + DR, { table, pageSize: PAGE }, positions, sparse ? indices : null, sparse ? k : 0, shape, scale);
    const out = attend(
      gpu, v, gpu.buffer(qLat.byteLength, qLat), gpu.buffer(qPe.byteLength, qPe), gpu.buffer(lat.byteLength, lat), onePageTable(gpu.buffer(table.byteLength, table), nPages, PAGE),
      gpu.buffer(positions.byteLength, positions), sparse ? gpu.buffer(indices.byteLength, indices) : null, sparse ? k : 0, nKeys, shape, scale,
    );
    const got = new Float32Array(await gpu.read(out, want.length * 4));
    let max = 0;
    let err = 0;
    for (let i = 0; i < want.length; i++) {
      max = Math.max(max, Math.abs(want[i]!));
      err = Math.max(err, Math.abs(got[i]! - want[i]!));
    }
    worst = Math.max(worst, err / max);
  }
  return worst;
}

/** The indexer variants against the CPU twin at the real head shape (max error ÷ the row's max |score|). */
async function checkIndexer(gpu: GpuDevice, variant: IndexerVariant): Promise<number> {
  const nKeys = 300;
  const nPages = Math.ceil(nKeys / PAGE);
  const r = checkData(HI * DI + nPages * PAGE * DI + HI + nPages * PAGE, 7);
  let at = 0;
  const take = (n: number) => r.subarray(at, (at += n));
  const code = (v: number): number => {
    const c = ((v + 4) * 29) & 0xff; // spread over the codes, NaN (0x7f, 0xff) avoided
    return (c & 0x7f) === 0x7f ? c ^ 1 : c;
  };
  const q8 = Uint8Array.from(take(HI * DI), code);
  const kc = Uint8Array.from(take(nPages * PAGE * DI), (v) => code(v * 3));
  const w = Float32Array.from(take(HI), (v) => v / 4);
  const kScale = Float32Array.from(take(nPages * PAGE), (v) => 0.1 + (v + 4) / 8);
  const table = Int32Array.from({ length: nPages }, (_, i) => nPages - 1 - i);
  const positions = Int32Array.of(nKeys - 1);
  const want = indexerScores(q8, 1, HI, DI, w, kc, kScale, { table, pageSize: PAGE }, nKeys, positions);
  const out = indexerScoresGpu(gpu, {
    q8: gpu.buffer(q8.length, q8), w: gpu.buffer(w.byteLength, w), kCache: gpu.buffer(kc.length, kc), kScale: gpu.buffer(kScale.byteLength, kScale),
    table: gpu.buffer(table.byteLength, table), tableLength: nPages, pageSize: PAGE, positions: gpu.buffer(4, positions), rows: 1, heads: HI, dim: DI, nKeys, variant,
  });
  const got = new Float32Array(await gpu.read(out, nKeys * 4));
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < nKeys; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < nKeys; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  return worst / scale;
}

async function coreSection(gpu: GpuDevice, o: LabOptions, copyGBps: number | null): Promise<void> {
  const variants = INDEXER_VARIANTS.filter((v) => indexerVariantAvailable(gpu, v, HI, DI));
  for (const v of variants) o.emit({ section: 'check', kernel: `indexer-${v}`, maxErrOverScale: await checkIndexer(gpu, v) });
  const attentionVariants: AttentionVariant[] = mlaMatrixAvailable(gpu, { rows: 1, heads: H, r: R, dr: DR }, 'bf16') ? ['f32', 'matrix'] : ['f32'];
  for (const v of attentionVariants) o.emit({ section: 'check', kernel: `attention-${v}`, maxErrOverScale: await checkAttention(gpu, v) });
  const attention = attentionVariants[attentionVariants.length - 1]!;
  const wuv = randomBuffer(gpu, H * DV * R * 4, 'f32', 99, -0.05, 0.05);
  for (const batch of o.batch) {
    for (const ctx of o.ctx) {
      o.note(`core: batch ${batch}, ctx ${ctx}`);
      const seqs = Array.from({ length: batch }, (_, b) => makeSeq(gpu, ctx, 1000 * b + ctx));
      await gpu.finish();
      const row: Record<string, unknown> = { section: 'core', batch, ctx };
      const best = bestIndexerVariant(gpu, HI, DI, ctx);
      // The indexer scan alone, every variant (the naive one only where it takes seconds at most).
      const keyBytes = batch * ctx * (DI + 4);
      for (const v of variants) {
        if (v === 'naive' && batch * ctx > 16 * 32768) continue;
        const t = await gpuTimes(gpu, o.runs, () => {
          gpu.label = 'indexer';
          for (const s of seqs) {
            gpu.release(indexerScoresGpu(gpu, {
              q8: s.q8, w: s.w, kCache: s.kCache, kScale: s.kScale, table: s.table, tableLength: s.nPages, pageSize: PAGE,
              positions: s.positions, rows: 1, heads: HI, dim: DI, nKeys: ctx, variant: v,
            }));
          }
        });
        const gbps = keyBytes / (t.totalMs * 1e-3) / 1e9;
        row[`indexer_${v}_ms`] = round(t.totalMs);
        row[`indexer_${v}_GBps`] = round(gbps);
        if (copyGBps) row[`indexer_${v}_ofCopy`] = round(gbps / copyGBps, 3);
      }
      if (attention === 'matrix') {
        // The f32 attention kernel on the sparse step, for comparison.
        const f32 = await gpuTimes(gpu, o.runs, () => seqs.forEach((s) => recordCore(gpu, s, wuv, false, best, 'f32')));
        row.dsa_f32attention_ms = round(f32.totalMs);
      }
      const dsa = await gpuTimes(gpu, o.runs, () => seqs.forEach((s) => recordCore(gpu, s, wuv, false, best, attention)));
      const dense = await gpuTimes(gpu, o.runs, () => seqs.forEach((s) => recordCore(gpu, s, wuv, true, best, attention)));
      Object.assign(row, {
        indexerVariant: best,
        attentionVariant: attention,
        dsa_ms: round(dsa.totalMs), dsa_kernels_ms: round(dsa.kernelSumMs), dsa_wall_ms: round(dsa.wallMs),
        dsa_indexer_ms: round(dsa.byLabel.indexer ?? 0), dsa_topk_ms: round(dsa.byLabel.topk ?? 0),
        dsa_attention_ms: round(dsa.byLabel.attention ?? 0), dsa_wuv_ms: round(dsa.byLabel.wuv ?? 0),
        dense_ms: round(dense.totalMs), dense_kernels_ms: round(dense.kernelSumMs), dense_wall_ms: round(dense.wallMs), dense_attention_ms: round(dense.byLabel.attention ?? 0),
        ratio: round(dense.totalMs / dsa.totalMs, 3),
      });
      o.emit(row);
      seqs.forEach((s) => releaseSeq(gpu, s));
      await gpu.finish();
    }
  }
  gpu.release(wuv);
}

export const LAB_SECTIONS = ['copy', 'matmul', 'core'] as const;

/** Runs the lab's sections on a device; rows go to o.emit. */
export async function runGpuLab(gpu: GpuDevice, o: LabOptions): Promise<void> {
  const info = gpu.adapterInfo;
  o.emit({
    section: 'device', vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
    features: [...gpu.features], subgroupSize: gpu.subgroupSize, subgroupMatrix: gpu.subgroupMatrixConfigs,
    maxWorkgroupStorage: gpu.limits.maxComputeWorkgroupStorageSize, maxBinding: gpu.limits.maxStorageBufferBindingSize,
  });
  if (!gpu.features.has('timestamp-query')) throw new Error('dsa bench gpu: the adapter has no timestamp-query feature (kernel times need it)');
  let copy: number | null = null;
  if (o.sections.includes('copy')) copy = await copySection(gpu, o);
  if (o.sections.includes('matmul')) await matmulSection(gpu, o);
  if (o.sections.includes('core')) await coreSection(gpu, o, copy);
}
