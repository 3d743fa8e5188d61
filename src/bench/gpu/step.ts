/**
 * The kernel lab's timing (GPU timestamps per kernel and per pass, and the wall clock) and the
 * attention-core step data its sections share (lab.ts, indexer-lab.ts).
 */
import type { GpuDevice } from '../../backend/webgpu/device.js';
import type { IndexerGpuArgs, IndexerVariant } from '../../backend/webgpu/kernels/indexer.js';
import { onePageTable, type GpuPages } from '../../backend/webgpu/kernels/pages.js';
import { median } from '../harness.js';
import { randomBuffer } from './fill.js';
import { DI, DR, H, HI, PAGE, R } from './core-kernels.js';

/**
 * GPU time per timed burst. The GPU's clocks follow its load within milliseconds: timed alone, one
 * short kernel after another with the host's read-back between them, the H200 of the device pool
 * ran at 345–1500 MHz instead of its 1980 (nvidia-smi, reason "GPU idle"), and the lab's rates
 * moved by up to 2× from run to run. So every measurement repeats its work back to back for about
 * this long, after a burst of the same work that brings the clocks up.
 */
const BURST_MS = 25;

/** Repetitions of work taking `ms` of GPU time for one burst (1 with DSA_LAB_BURST=0: each measurement a single recording). */
export function burstReps(ms: number): number {
  if (typeof process !== 'undefined' && process.env.DSA_LAB_BURST === '0') return 1;
  return Math.max(1, Math.min(128, Math.ceil(BURST_MS / Math.max(ms, 1e-3))));
}

/**
 * Times `record` three ways, `runs` times each, median reported: under per-dispatch timestamps
 * (GPU ms by label — each kernel alone, no overlap), under per-pass timestamps (`totalMs`: the
 * GPU's time for the work as it runs, kernels back to back), and by the wall clock (`wallMs`: one
 * recording, its submission and the wait). The GPU times are per recording, from bursts of `reps`
 * recordings (BURST_MS of work), each measurement after a burst that brings the clocks up.
 */
export async function gpuTimes(
  gpu: GpuDevice,
  runs: number,
  record: () => void,
): Promise<{ byLabel: Record<string, number>; kernelSumMs: number; totalMs: number; wallMs: number; quantized: boolean; reps: number }> {
  record();
  await gpu.finish();
  const reps = burstReps(await passMs(gpu, record));
  const repeat = () => {
    for (let i = 0; i < reps; i++) record();
  };
  await warmUp(gpu, record, BURST_MS * 2);
  const perRun: Record<string, number>[] = [];
  // Whether every interval is a multiple of 2^16 ns (Dawn's timestamp quantization left on).
  let quantized = true;
  for (let r = 0; r < runs; r++) {
    gpu.startProfiling('dispatch');
    repeat();
    const by: Record<string, number> = {};
    for (const k of await gpu.stopProfiling()) {
      by[k.label] = (by[k.label] ?? 0) + k.ms / reps;
      if (Math.round(k.ms * 1e6) % 65536 !== 0) quantized = false;
    }
    perRun.push(by);
  }
  const passes: number[] = [];
  for (let r = 0; r < runs; r++) passes.push((await passMs(gpu, repeat)) / reps);
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
  return { byLabel, kernelSumMs, totalMs: median(passes), wallMs: median(walls), quantized, reps };
}

export const round = (x: number, d = 4): number => Number(x.toPrecision(d));

/**
 * The caches and decode-step inputs of `rows` sequences of ctx positions each, on the GPU: one
 * sequence (a 1-D block table of contiguous pages), or a whole batch taken by one grid per op
 * (`batched`: a 2-D table, rowSeq = 0..rows−1, the sequences' pages interleaved over one pool).
 */
export interface StepData {
  ctx: number;
  rows: number;
  latent: GPUBuffer;
  kCache: GPUBuffer;
  kScale: GPUBuffer;
  pages: GpuPages;
  positions: GPUBuffer;
  q8: GPUBuffer;
  w: GPUBuffer;
  qLat: GPUBuffer;
  qPe: GPUBuffer;
  /** Pages of the pool: fewer than rows × pages where one binding cannot hold them all (some then shared). */
  poolPages: number;
}

export function makeStep(gpu: GpuDevice, ctx: number, rows: number, seed: number, batched: boolean): StepData {
  const nPages = Math.ceil(ctx / PAGE);
  const latentPage = PAGE * (R + DR) * 2;
  const poolPages = Math.min(rows * nPages, Math.floor(Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize) / latentPage));
  const slots = poolPages * PAGE;
  // Page i of sequence b is the pool's page i · rows + b (mod the pool): sequences interleaved, as a server hands pages out.
  const table = gpu.buffer(rows * nPages * 4, Int32Array.from({ length: rows * nPages }, (_, j) => ((j % nPages) * rows + Math.floor(j / nPages)) % poolPages));
  const pages: GpuPages = batched
    ? { table, nPages, pageSize: PAGE, rowSeq: gpu.buffer(rows * 4, Int32Array.from({ length: rows }, (_, b) => b)), seqs: rows }
    : onePageTable(table, nPages, PAGE);
  return {
    ctx,
    rows,
    latent: randomBuffer(gpu, slots * (R + DR) * 2, 'bf16', seed, -2, 2),
    kCache: randomBuffer(gpu, slots * DI, 'e4m3', seed + 1),
    kScale: randomBuffer(gpu, slots * 4, 'f32', seed + 2, 0.01, 1),
    pages,
    positions: gpu.buffer(rows * 4, new Int32Array(rows).fill(ctx - 1)),
    q8: randomBuffer(gpu, rows * HI * DI, 'e4m3', seed + 3),
    w: randomBuffer(gpu, rows * HI * 4, 'f32', seed + 4, -1, 1),
    qLat: randomBuffer(gpu, rows * H * R * 4, 'f32', seed + 5, -0.05, 0.05),
    qPe: randomBuffer(gpu, rows * H * DR * 4, 'f32', seed + 6, -0.05, 0.05),
    poolPages,
  };
}

export function releaseStep(gpu: GpuDevice, s: StepData): void {
  for (const b of [s.latent, s.kCache, s.kScale, s.pages.table, s.pages.rowSeq, s.positions, s.q8, s.w, s.qLat, s.qPe]) if (b) gpu.release(b);
}

/** The indexer's arguments over a step's rows (one sequence, or all of a batch with rowSeq). */
export function indexerArgs(s: StepData, variant: IndexerVariant): IndexerGpuArgs {
  const { table, nPages, pageSize, rowSeq, seqs } = s.pages;
  return {
    q8: s.q8, w: s.w, kCache: s.kCache, kScale: s.kScale, table, tableLength: nPages, pageSize, rowSeq, seqs,
    positions: s.positions, rows: s.rows, heads: HI, dim: DI, nKeys: s.ctx, variant,
  };
}


/** The GPU's time (per-pass timestamps) for one recording of `record`. */
export async function passMs(gpu: GpuDevice, record: () => void): Promise<number> {
  gpu.startProfiling('pass');
  record();
  return (await gpu.stopProfiling()).reduce((a, k) => a + k.ms, 0);
}

/** Runs `record` over and over for `ms` of wall time: the GPU's clocks up before anything is timed. */
export async function warmUp(gpu: GpuDevice, record: () => void, ms: number): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < 8; i++) record();
    await gpu.finish();
  }
}
