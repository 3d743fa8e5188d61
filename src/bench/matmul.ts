/**
 * `dsa bench matmul`: GFLOP/s of our backend's linear (f32, bf16, FP8 dequantized on the fly, FP8
 * with the reference's activation quantization) against onnxruntime-node's CPU MatMul (f32) on
 * the same shapes in the same run, plus the weight bytes per second at M = 1 against this machine's
 * measured memory bandwidth (the roofline of decode). Numbers are printed with their setup; nothing
 * here is asserted in tests except the shape of the output.
 */
import { writeFileSync } from 'node:fs';
import type { Backend, HostWeight, Tensor } from '../backend/backend.js';
import { CpuBackend } from '../backend/cpu.js';
import { encodeBf16 } from '../numerics/bf16.js';
import { measureBandwidth, type BandwidthResult } from './bandwidth.js';
import { machineInfo, timeIt } from './harness.js';
import { loadOrt, OrtMatmul } from './onnx-matmul.js';
import { io } from '../cli/io.js';

export interface MatmulShape {
  name: string;
  m: number;
  k: number;
  n: number;
}

/** DeepSeek-V3.2 projections as K × N (in → out). */
export const MODEL_KN: readonly { name: string; k: number; n: number }[] = [
  { name: 'q_a', k: 7168, n: 1536 },
  { name: 'q_b', k: 1536, n: 24576 },
  { name: 'o_proj', k: 16384, n: 7168 },
  { name: 'expert', k: 7168, n: 2048 },
];
/** Decode (1) and prefill-like row counts. */
export const DEFAULT_M = [1, 64, 256];

export function defaultShapes(): MatmulShape[] {
  return DEFAULT_M.flatMap((m) => MODEL_KN.map((s) => ({ name: s.name, m, k: s.k, n: s.n })));
}
export function quickShapes(): MatmulShape[] {
  return [
    { name: 'q_a', m: 1, k: 7168, n: 1536 },
    { name: 'expert', m: 1, k: 7168, n: 2048 },
    { name: 'q_a', m: 16, k: 7168, n: 1536 },
  ];
}

/** "M,K,N;M,K,N..." → shapes. */
export function parseShapes(spec: string): MatmulShape[] {
  return spec
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const parts = s.split(',').map((v) => Number(v.trim()));
      if (parts.length !== 3 || parts.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`--shapes: '${s}' is not M,K,N with positive integers`);
      const [m, k, n] = parts as [number, number, number];
      return { name: MODEL_KN.find((x) => x.k === k && x.n === n)?.name ?? `${k}x${n}`, m, k, n };
    });
}

/** Rows up to which weights are rotated (see MatmulOptions.rotateMiB): above, the product is compute-bound. */
export const ROTATE_MAX_M = 16;

export const OUR_FORMATS = ['f32', 'bf16', 'fp8', 'fp8aq'] as const;
export type OurFormat = (typeof OUR_FORMATS)[number];

export interface Measured {
  ms: number;
  gflops: number;
  runs: number;
  /** Bytes of the weight in its format. */
  weightBytes?: number;
  /** weightBytes / time (GB/s), the streaming rate of the weight: meaningful at M = 1. */
  weightGBs?: number;
}

export interface MatmulRow extends MatmulShape {
  flop: number;
  ours: Partial<Record<OurFormat, Measured>>;
  /** ORT with `ortThreads` intra-op threads, and with one thread. */
  ort: Measured | null;
  ort1: Measured | null;
  /** ours f32 GFLOP/s ÷ ORT GFLOP/s (ORT at ortThreads). */
  oursOverOrt: number | null;
  /** max |ours f32 − ORT| / max |ORT| on one run: both computed the same product. */
  maxRelErr: number | null;
}

export interface MatmulReport {
  machine: Awaited<ReturnType<typeof machineInfo>>;
  /** Threads: null when the backend does not say. Kernels: the CPU backend's kernel set, when it has several. */
  ours: { backend: string; kernels: string | null; threads: number | null };
  ort: { available: boolean; version: string | null; threads: number; reason?: string };
  /** Weight copies rotated per timed run for M ≤ ROTATE_MAX_M reach this many MiB (0: none). */
  rotateMiB: number;
  bandwidth: BandwidthResult | null;
  rows: MatmulRow[];
}

export interface MatmulOptions {
  shapes: MatmulShape[];
  formats?: readonly OurFormat[];
  /** ORT intra-op threads (default: every core). */
  ortThreads?: number;
  /** Also time ORT on one thread (default true). */
  ortSingle?: boolean;
  /** Skip ORT entirely. */
  noOrt?: boolean;
  runs?: number;
  /** Per-measurement time budget; a first run longer than this is the only run. */
  budgetMs?: number;
  /**
   * For M ≤ ROTATE_MAX_M, each timed run reads the next of several copies of the weight, enough
   * copies to pass this many MiB (default 128, 4× a 32 MiB L3), so decode streams the weight from
   * memory as in a model, not from cache; 0 = one copy.
   */
  rotateMiB?: number;
  /** Buffer size of the bandwidth measurement (MiB); 0 skips it. */
  bandwidthMiB?: number;
  seed?: number;
  backend?: Backend;
  /** Called once the setup (machine, peer, bandwidth) is known, before the first shape. */
  onSetup?: (report: MatmulReport) => void;
  /** Called as each shape finishes. */
  onRow?: (row: MatmulRow) => void;
}

/** xorshift32 uniform in [-1, 1). */
function filler(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 31 - 1;
  };
}

function randomF32(len: number, scale: number, r: () => number): Float32Array {
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) a[i] = r() * scale;
  return a;
}

/** An FP8 weight with random e4m3 codes (no NaN codes) and 128×128 block scales. */
function randomFp8(n: number, k: number, r: () => number): HostWeight {
  const data = new Uint8Array(n * k);
  for (let i = 0; i < data.length; i++) {
    const c = Math.floor((r() + 1) * 128) & 0xff;
    data[i] = (c & 0x7f) === 0x7f ? c ^ 1 : c;
  }
  const scaleInv = new Float32Array(Math.ceil(n / 128) * Math.ceil(k / 128)).fill(2 ** -8);
  return { format: 'fp8', outDim: n, inDim: k, data, scaleInv, block: [128, 128] };
}

function weightBytes(w: HostWeight): number {
  return w.data.byteLength + (w.format === 'fp8' ? w.scaleInv.byteLength : 0);
}

/** The backend's kernel set and thread count, where it exposes them (plain TypeScript kernels: 1 thread). */
function describeBackend(b: Backend): MatmulReport['ours'] {
  const d = b as unknown as { kernels?: unknown; threads?: unknown; rt?: { threads?: unknown } | null };
  const kernels = typeof d.kernels === 'string' ? d.kernels : null;
  const threads =
    typeof d.threads === 'number' ? d.threads : typeof d.rt?.threads === 'number' ? d.rt.threads : kernels === null || kernels === 'js' ? 1 : null;
  return { backend: b.name, kernels, threads };
}

/** Times fn: one run first; if it is longer than the budget it is the measurement, else timeIt. */
async function measure(fn: () => Promise<unknown>, flop: number, runs: number, budgetMs: number): Promise<Measured> {
  const t0 = performance.now();
  await fn();
  const first = performance.now() - t0;
  let ms = first;
  let n = 1;
  if (first < budgetMs) {
    const t = await timeIt(fn, { warmup: 0, runs, budgetMs });
    ms = t.medianMs;
    n = t.runs;
  }
  return { ms, gflops: flop / (ms * 1e6), runs: n };
}

function maxRelErr(got: Float32Array, want: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i] - want[i]));
    m = Math.max(m, Math.abs(want[i]));
  }
  return m > 0 ? d / m : d;
}

export async function runMatmulBench(o: MatmulOptions): Promise<MatmulReport> {
  const machine = await machineInfo();
  const backend = o.backend ?? new CpuBackend();
  const formats = o.formats ?? OUR_FORMATS;
  const runs = o.runs ?? 10;
  const budgetMs = o.budgetMs ?? 2000;
  const ortThreads = o.ortThreads ?? machine.cores;
  const loaded = o.noOrt ? { ort: null, reason: 'disabled (--no-ort)' } : await loadOrt();
  const ort = loaded.ort;
  const report: MatmulReport = {
    machine,
    ours: describeBackend(backend),
    ort: loaded.ort
      ? { available: true, version: loaded.version, threads: ortThreads }
      : { available: false, version: null, threads: 0, reason: loaded.reason },
    rotateMiB: o.rotateMiB ?? 128,
    bandwidth: (o.bandwidthMiB ?? 256) > 0 ? await measureBandwidth({ mib: o.bandwidthMiB ?? 256 }) : null,
    rows: [],
  };
  o.onSetup?.(report);
  const r = filler(o.seed ?? 1);
  const rotateBytes = (o.rotateMiB ?? 128) * 2 ** 20;
  /** Weight copies in rotation: enough to exceed the rotation size when M is decode-like. */
  const copies = (s: MatmulShape, bytes: number): number => (s.m > ROTATE_MAX_M ? 1 : Math.max(1, Math.min(16, Math.ceil(rotateBytes / bytes))));
  for (const s of o.shapes) {
    const flop = 2 * s.m * s.k * s.n;
    const row: MatmulRow = { ...s, flop, ours: {}, ort: null, ort1: null, oursOverOrt: null, maxRelErr: null };
    const xHost = randomF32(s.m * s.k, 1, r);
    const x: Tensor = backend.upload(xHost, [s.m, s.k]);
    const wf32: HostWeight = { format: 'f32', outDim: s.n, inDim: s.k, data: randomF32(s.n * s.k, 1 / Math.sqrt(s.k), r) };

    let ortY: Float32Array | null = null;
    if (ort) {
      for (const threads of o.ortSingle === false || ortThreads === 1 ? [ortThreads] : [ortThreads, 1]) {
        const mms: OrtMatmul[] = [];
        for (let c = copies(s, 4 * s.k * s.n); c > 0; c--) mms.push(await OrtMatmul.create(ort, s.m, s.k, s.n, wf32.data, threads));
        if (ortY === null) ortY = (await mms[0]!.run(xHost)).slice();
        let i = 0;
        const t = await measure(() => mms[i++ % mms.length]!.run(xHost), flop, runs, budgetMs);
        if (threads === ortThreads) row.ort = t;
        else row.ort1 = t;
        for (const mm of mms) await mm.release();
      }
    }

    let fp8: HostWeight | null = null;
    for (const f of formats) {
      let host: HostWeight;
      if (f === 'f32') host = wf32;
      else if (f === 'bf16') host = { format: 'bf16', outDim: s.n, inDim: s.k, data: encodeBf16(wf32.data) };
      else host = fp8 ??= randomFp8(s.n, s.k, r);
      // Distinct copies (own storage) to rotate through, so small weights are not read from cache.
      const hosts = [host];
      for (let c = copies(s, weightBytes(host)); c > 1; c--) hosts.push({ ...host, data: host.data.slice() } as HostWeight);
      const ws = hosts.map((h) => backend.uploadWeight(h));
      const aq = f === 'fp8aq' ? 'ue8m0' : null;
      let i = 0;
      const once = async () => {
        const y = backend.linear(x, ws[i++ % ws.length]!, aq);
        const data = await backend.read(y);
        backend.dispose(y);
        return data;
      };
      if (f === 'f32' && ortY) row.maxRelErr = maxRelErr((await once()) as Float32Array, ortY);
      const t = await measure(once, flop, runs, budgetMs);
      const bytes = weightBytes(host);
      row.ours[f] = { ...t, weightBytes: bytes, weightGBs: bytes / (t.ms * 1e6) };
    }
    backend.dispose(x);
    if (row.ours.f32 && row.ort) row.oursOverOrt = row.ours.f32.gflops / row.ort.gflops;
    report.rows.push(row);
    o.onRow?.(row);
  }
  return report;
}

// ---- printing ----

const fmt = (v: number | undefined | null, digits = 2): string => (v === undefined || v === null ? '—' : v.toFixed(digits));

export function tableHeader(report: Pick<MatmulReport, 'ort'>): string[] {
  const t = report.ort.threads;
  return [
    'GFLOP/s (2·M·K·N / median time); ours: f32, bf16, fp8 (dequantized on the fly), fp8+aq (activations quantized, block-scaled FP8 GEMM)',
    `${'shape'.padEnd(8)} ${'M'.padStart(4)} ${'K×N'.padStart(12)} ${'f32'.padStart(8)} ${'bf16'.padStart(8)} ${'fp8'.padStart(8)} ${'fp8+aq'.padStart(8)}` +
      ` ${`ORT ${t}t`.padStart(9)} ${'ORT 1t'.padStart(8)} ${'f32÷ORT'.padStart(9)} ${'max rel err'.padStart(12)}`,
  ];
}

export function tableLine(row: MatmulRow): string {
  return (
    `${row.name.padEnd(8)} ${String(row.m).padStart(4)} ${`${row.k}×${row.n}`.padStart(12)} ${fmt(row.ours.f32?.gflops).padStart(8)} ` +
    `${fmt(row.ours.bf16?.gflops).padStart(8)} ${fmt(row.ours.fp8?.gflops).padStart(8)} ${fmt(row.ours.fp8aq?.gflops).padStart(8)} ` +
    `${fmt(row.ort?.gflops).padStart(9)} ${fmt(row.ort1?.gflops).padStart(8)} ${fmt(row.oursOverOrt, 4).padStart(9)} ` +
    `${(row.maxRelErr === null ? '—' : row.maxRelErr.toExponential(1)).padStart(12)}`
  );
}

/** Weight streaming at M = 1 against the measured bandwidth. */
export function bandwidthLines(report: MatmulReport): string[] {
  const decode = report.rows.filter((r) => r.m === 1);
  if (decode.length === 0) return [];
  const bw = report.bandwidth;
  // The roofline reference: the faster of the two measured rates (the scalar JS read loop is often
  // compute-bound below the native copy).
  const ref = bw ? Math.max(bw.copyGBs, bw.readGBs) : null;
  const refName = bw ? (bw.copyGBs >= bw.readGBs ? 'copy' : 'read loop') : '';
  const lines = [
    `weight bytes read per second at M = 1, GB/s${ref ? ` (% of the measured ${fmt(ref, 1)} GB/s ${refName})` : ''}`,
    `${'shape'.padEnd(8)} ${'K×N'.padStart(12)} ${'f32'.padStart(14)} ${'bf16'.padStart(14)} ${'fp8'.padStart(14)} ${'fp8+aq'.padStart(14)} ${`ORT ${report.ort.threads}t f32`.padStart(14)}`,
  ];
  const cell = (gbs: number | undefined): string => (gbs === undefined ? '—' : `${fmt(gbs)}${ref ? ` (${((100 * gbs) / ref).toFixed(0)}%)` : ''}`).padStart(14);
  for (const r of decode) {
    const ortGBs = r.ort ? (4 * r.k * r.n) / (r.ort.ms * 1e6) : undefined;
    lines.push(
      `${r.name.padEnd(8)} ${`${r.k}×${r.n}`.padStart(12)} ${cell(r.ours.f32?.weightGBs)} ${cell(r.ours.bf16?.weightGBs)} ${cell(r.ours.fp8?.weightGBs)} ${cell(r.ours.fp8aq?.weightGBs)} ${cell(ortGBs)}`,
    );
  }
  return lines;
}

export async function benchMatmulCommand(o: MatmulOptions & { json?: string }): Promise<MatmulReport> {
  const w = (line: string) => io().out(`${line}\n`);
  const report = await runMatmulBench({
    ...o,
    onSetup: (r) => {
      for (const l of setupLines(r)) w(l);
      w('');
      for (const l of tableHeader(r)) w(l);
    },
    onRow: (row) => w(tableLine(row)),
  });
  w('');
  for (const l of bandwidthLines(report)) w(l);
  if (o.json) writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

export function setupLines(r: MatmulReport): string[] {
  const m = r.machine;
  const lines = [
    `machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, node ${m.node}, ${m.platform}`,
    `ours: backend ${r.ours.backend}.linear${r.ours.kernels ? `, ${r.ours.kernels} kernels` : ''}, ` +
      (r.ours.threads === null ? 'threads not reported by the backend' : `${r.ours.threads} thread${r.ours.threads === 1 ? '' : 's'}`),
    r.ort.available
      ? `peer: onnxruntime-node ${r.ort.version} CPU MatMul f32, ${r.ort.threads} intra-op threads (and 1), sequential execution`
      : `peer: onnxruntime-node unavailable (${r.ort.reason}); reporting ours only`,
  ];
  if (r.rotateMiB > 0) {
    lines.push(`weights: for M ≤ ${ROTATE_MAX_M}, each timed run reads the next of several copies (≥ ${r.rotateMiB} MiB in rotation, both sides) so the weight streams from memory`);
  }
  const b = r.bandwidth;
  if (b) {
    lines.push(
      `memory bandwidth (1 thread, ${b.bytes / 2 ** 20} MiB buffers, best of ${b.runs}): copy (TypedArray.set, read+write) ${fmt(b.copyGBs, 1)} GB/s; read loop ${fmt(b.readGBs, 1)} GB/s`,
    );
  }
  return lines;
}
