/**
 * Micro-benchmark of the WebAssembly SIMD kernels (src/backend/cpu/wasm) against the TypeScript
 * reference kernels (src/backend/cpu/kernels), single-threaded, on full-size DeepSeek-V3.2 shapes:
 * linear K 7168 → N 1536 at M 1 and 64 (f32, bf16, fp8, fp8 with activation quantization), the
 * indexer at decode (H 64, D 128, 32768 keys) and sparse MLA attention at decode (H 128, r 512,
 * dr 64, 2048 entries, bf16 and fp8 latents).
 *
 *   node --import tsx src/bench/kernels.ts [--quick] [--only=PREFIX]
 *
 * At M = 1 the linear weights are cycled through copies totalling 96 MiB, so they come from memory
 * (as in real decoding), not from a warm L3.
 */
import { CpuWeight } from '../backend/cpu/weight.js';
import { linearFp8, linearPlain } from '../backend/cpu/kernels/linear.js';
import { indexerScores } from '../backend/cpu/kernels/indexer.js';
import { mlaAttention } from '../backend/cpu/kernels/mla-attention.js';
import { packLatent } from '../backend/cpu/kernels/latent.js';
import { latentRowBytes, latentRowWidth, type LatentFormat } from '../backend/backend.js';
import { instantiateKernels, latentFlag, type KernelExports, type Ptr } from '../backend/cpu/wasm/module.js';
import { actQuant, quantizeBlockWeight } from '../numerics/block-quant.js';
import { E4M3_TABLE } from '../numerics/e4m3.js';
import { f32ToBf16 } from '../numerics/bf16.js';
import { machineInfo, median, type Timing } from './harness.js';

/** Wall-clock timing plus the best process CPU time of one call (robust on a loaded machine). */
export interface KernelTiming extends Timing {
  cpuMs: number;
}

/**
 * Times a synchronous fn: `warmup` untimed calls, then up to `runs` timed ones (at least 3, stopping
 * once budgetMs is spent), each measured in wall-clock and in process CPU time.
 */
export function timeKernel(fn: () => unknown, opts: { warmup: number; runs: number; budgetMs: number }): KernelTiming {
  for (let i = 0; i < opts.warmup; i++) fn();
  const wall: number[] = [];
  let cpuMs = Infinity;
  const started = performance.now();
  for (let i = 0; i < opts.runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    const t1 = performance.now();
    const c = process.cpuUsage(c0);
    wall.push(t1 - t0);
    cpuMs = Math.min(cpuMs, (c.user + c.system) / 1000);
    if (wall.length >= 3 && performance.now() - started > opts.budgetMs) break;
  }
  return { medianMs: median(wall), minMs: Math.min(...wall), maxMs: Math.max(...wall), runs: wall.length, cpuMs };
}

export interface KernelBenchRow {
  kernel: string;
  shape: string;
  /** Floating-point operations per call (2 per multiply-add). */
  flops: number;
  /** Bytes of weights / cache the call streams. */
  bytes: number;
  wasm: KernelTiming;
  ts: KernelTiming | null;
}

export interface KernelBenchOptions {
  /** Fewer runs and no TS reference for the slowest cases. */
  quick?: boolean;
  /** Only kernels whose name starts with this (e.g. 'linear_fp8', 'indexer', 'mla'). */
  only?: string;
  /** Called with each row as soon as it is measured. */
  onRow?: (row: KernelBenchRow) => void;
}

/** Total bytes of weight copies cycled through at M = 1 (beyond any L3 cache). */
const COLD_BYTES = 96 * 2 ** 20;

class Arena {
  readonly memory: WebAssembly.Memory;
  readonly k: KernelExports;
  private top = 64;
  constructor() {
    this.memory = new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true });
    this.k = instantiateKernels(this.memory);
  }
  alloc(bytes: number): Ptr {
    const p = this.top;
    this.top = (p + Math.max(bytes, 1) + 63) & ~63;
    const need = this.top - this.memory.buffer.byteLength;
    if (need > 0) this.memory.grow(Math.ceil(need / 65536));
    return p;
  }
  put(a: Float32Array | Uint8Array | Uint16Array | Int32Array): Ptr {
    const p = this.alloc(a.byteLength);
    new Uint8Array(this.memory.buffer, p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    return p;
  }
}

function rand(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

function randF32(n: number, r: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() * scale;
  return a;
}

export function benchKernels(opts: KernelBenchOptions = {}): KernelBenchRow[] {
  const quick = opts.quick ?? false;
  const rows: KernelBenchRow[] = [];
  const a = new Arena();
  const r = rand(42);
  const timeOpts = { warmup: 1, runs: quick ? 5 : 15, budgetMs: quick ? 1000 : 3000 };
  const refOpts = { warmup: 0, runs: 3, budgetMs: quick ? 500 : 2000 };
  const record = (row: KernelBenchRow): void => {
    rows.push(row);
    opts.onRow?.(row);
  };

  // ---- linear ----
  const K = 7168;
  const N = 1536;
  const wF32 = randF32(N * K, r, 0.05);
  const { w8, scaleInv } = quantizeBlockWeight(wF32, N, K, 'ue8m0', 128);
  const weights: Record<'f32' | 'bf16' | 'fp8', CpuWeight> = {
    f32: new CpuWeight({ format: 'f32', outDim: N, inDim: K, data: wF32 }),
    bf16: new CpuWeight({ format: 'bf16', outDim: N, inDim: K, data: Uint16Array.from(wF32, (v) => f32ToBf16(v)) }),
    fp8: new CpuWeight({ format: 'fp8', outDim: N, inDim: K, data: w8, scaleInv, block: [128, 128] }),
  };
  // At M = 1 each call reads the next of several copies of the weight (COLD_BYTES in all, more than
  // any L3), so weights stream from memory as in real decoding; at M = 64 one copy is reused.
  const hostData = { f32: wF32, bf16: (weights.bf16.host as { data: Uint16Array }).data, fp8: w8 };
  const wBytes = { f32: 4 * N * K, bf16: 2 * N * K, fp8: N * K };
  const pool = new Map<string, Ptr[]>();
  const copies = (fmt: 'f32' | 'bf16' | 'fp8'): Ptr[] => {
    let c = pool.get(fmt);
    if (!c) {
      c = Array.from({ length: Math.max(1, Math.ceil(COLD_BYTES / wBytes[fmt])) }, () => a.put(hostData[fmt]));
      pool.set(fmt, c);
    }
    return c;
  };
  const sPtr = a.put(scaleInv);
  for (const M of [1, 64]) {
    if (opts.only && !opts.only.startsWith('linear') && !'linear'.startsWith(opts.only)) break;
    const x = randF32(M * K, r);
    const xp = a.put(x);
    const out = a.alloc(4 * M * N);
    const scratch = a.alloc(Math.max(a.k.linear_scratch_bytes(M, K), a.k.linear_fp8_aq_scratch_bytes(M, K, 128)));
    const slowRef = M > 1 && quick;
    for (const fmt of ['f32', 'bf16', 'fp8', 'fp8_aq'] as const) {
      const kernel = `linear_${fmt}`;
      if (opts.only && !kernel.startsWith(opts.only)) continue;
      const wf = fmt === 'fp8_aq' ? 'fp8' : fmt;
      const ws = M === 1 ? copies(wf) : copies(wf).slice(0, 1);
      let next = 0;
      const wp = (): Ptr => ws[next++ % ws.length]!;
      if (fmt === 'fp8_aq') {
        // the TS reference quantizes the activations inside; the wasm kernel gets codes and scales
        const { q, s } = actQuant(x, M, K, 128, 'ue8m0');
        const qp = a.put(q);
        const sxp = a.put(s);
        record({
          kernel,
          shape: `M ${M}, K ${K}, N ${N}`,
          flops: 2 * M * K * N,
          bytes: wBytes.fp8,
          wasm: timeKernel(() => a.k.linear_fp8_aq(qp, sxp, wp(), sPtr, 128, 128, out, M, K, N, scratch, 0, N), timeOpts),
          ts: slowRef ? null : timeKernel(() => linearFp8(x, M, weights.fp8, 'ue8m0'), refOpts),
        });
        continue;
      }
      const run = (): void => {
        if (fmt === 'f32') a.k.linear_f32(xp, wp(), out, M, K, N, scratch, 0, N);
        else if (fmt === 'bf16') a.k.linear_bf16(xp, wp(), out, M, K, N, scratch, 0, N);
        else a.k.linear_fp8(xp, wp(), sPtr, 128, 128, out, M, K, N, scratch, 0, N);
      };
      record({
        kernel: `linear_${fmt}`,
        shape: `M ${M}, K ${K}, N ${N}`,
        flops: 2 * M * K * N,
        bytes: wBytes[fmt],
        wasm: timeKernel(run, timeOpts),
        ts: slowRef ? null : timeKernel(() => linearPlain(x, M, weights[fmt]), refOpts),
      });
    }
  }

  // ---- indexer, decode ----
  if (!opts.only || 'indexer_scores'.startsWith(opts.only)) {
    const T = 1;
    const H = 64;
    const D = 128;
    const nKeys = 32768;
    const pageSize = 64;
    const table = Int32Array.from({ length: nKeys / pageSize }, (_, i) => i);
    const q8 = Uint8Array.from({ length: T * H * D }, () => Math.floor((r() + 0.5) * 126));
    const w = randF32(T * H, r, 0.1);
    const kCache = Uint8Array.from({ length: nKeys * D }, () => Math.floor((r() + 0.5) * 126));
    const kScale = randF32(nKeys, r, 0.01);
    const positions = Int32Array.of(nKeys - 1);
    const ptr = {
      q: a.put(Float32Array.from(q8, (c) => E4M3_TABLE[c]!)),
      w: a.put(w),
      k: a.put(kCache),
      ks: a.put(kScale),
      slots: a.put(Int32Array.from({ length: nKeys }, (_, s) => s)),
      pos: a.put(positions),
      out: a.alloc(4 * T * nKeys),
      scratch: a.alloc(a.k.indexer_scratch_bytes(D)),
    };
    record({
      kernel: 'indexer_scores',
      shape: `T ${T}, H ${H}, D ${D}, ${nKeys} keys`,
      flops: 2 * T * H * D * nKeys,
      bytes: nKeys * (D + 4),
      wasm: timeKernel(() => a.k.indexer_scores(ptr.q, ptr.w, ptr.k, ptr.ks, ptr.slots, ptr.pos, ptr.out, T, H, D, nKeys, ptr.scratch, 0, nKeys), timeOpts),
      ts: timeKernel(() => indexerScores(q8, T, H, D, w, kCache, kScale, { table, pageSize }, nKeys, positions), refOpts),
    });
  }

  // ---- MLA attention, sparse decode ----
  for (const fmt of ['bf16', 'fp8', 'f32'] as LatentFormat[]) {
    if (opts.only && !'mla_attention'.startsWith(opts.only)) break;
    const T = 1;
    const H = 128;
    const rank = 512;
    const dr = 64;
    const n = 2048;
    const slots = 4096;
    const latent = packLatent(randF32(slots * rank, r), randF32(slots * dr, r), slots, rank, dr, fmt);
    const width = latentRowWidth(fmt, rank, dr);
    const qLat = randF32(T * H * rank, r, 0.3);
    const qPe = randF32(T * H * dr, r, 0.3);
    const indices = Int32Array.from({ length: n }, (_, j) => 2 * j); // every other position
    const positions = Int32Array.of(slots - 1);
    const ptr = {
      qLat: a.put(qLat),
      qPe: a.put(qPe),
      latent: a.put(latent.data),
      list: a.put(indices), // identity page table: slot = position
      out: a.alloc(4 * T * H * rank),
      scratch: a.alloc(a.k.mla_scratch_bytes(H, rank, dr)),
    };
    const scale = 1 / Math.sqrt(192);
    record({
      kernel: `mla_attention (${fmt})`,
      shape: `T ${T}, H ${H}, r ${rank}, dr ${dr}, ${n} entries`,
      flops: 2 * T * H * n * (2 * rank + dr),
      bytes: n * latentRowBytes(fmt, rank, dr),
      wasm: timeKernel(() => a.k.mla_attention(ptr.qLat, ptr.qPe, ptr.latent, latentFlag(fmt), ptr.list, n, H, rank, dr, scale, ptr.out, ptr.scratch, 0, T), timeOpts),
      ts:
        quick && fmt === 'f32'
          ? null
          : timeKernel(
              () => mlaAttention(qLat, qPe, latent, width, { table: Int32Array.of(0), pageSize: slots }, positions, indices, n, { rows: T, heads: H, r: rank, dr }, scale),
              refOpts,
            ),
    });
  }
  return rows;
}

/**
 * One line per row: for the wasm kernel and the TS reference, the median wall-clock time and the
 * best CPU time of a call, the rates at that CPU time (GFLOP/s, and GB/s of the weights or cache
 * streamed), then the speed-up (CPU times).
 */
export function formatKernelRow(row: KernelBenchRow): string {
  const rate = (t: KernelTiming): string => {
    const s = t.cpuMs / 1000;
    return `${t.medianMs.toFixed(2).padStart(8)} ms wall, ${t.cpuMs.toFixed(2).padStart(8)} ms cpu ${(row.flops / s / 1e9).toFixed(2).padStart(6)} GFLOP/s ${(row.bytes / s / 1e9).toFixed(2).padStart(6)} GB/s`;
  };
  const ts = row.ts ? rate(row.ts) : '(not run)';
  const speedup = row.ts ? `  ${(row.ts.cpuMs / row.wasm.cpuMs).toFixed(1)}x` : '';
  return `${row.kernel.padEnd(20)} ${row.shape.padEnd(38)} wasm ${rate(row.wasm)} | ts ${ts}${speedup}`;
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  const info = await machineInfo();
  console.log(`${info.cpu}, ${info.cores} cores, node ${info.node}; single thread; rates at the best CPU time per call`);
  const only = process.argv.find((v) => v.startsWith('--only='))?.slice('--only='.length);
  benchKernels({ quick: process.argv.includes('--quick'), only, onRow: (row) => console.log(formatKernelRow(row)) });
}
