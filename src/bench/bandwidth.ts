/**
 * This machine's memory bandwidth from one JavaScript thread, for the roofline of memory-bound
 * kernels (a decode-time linear reads every weight byte once per token):
 * - copy: TypedArray.prototype.set of a large Float64Array into another (a memmove in V8);
 *   bytes moved = read + write = 2 × size.
 * - read: a plain loop summing a large Float64Array (four accumulators); bytes = size.
 * Buffers are far larger than any cache (256 MiB by default). The best of the runs is reported
 * (as STREAM does): the rate the machine can reach, which other processes only ever lower.
 */
import { timeIt } from './harness.js';

export interface BandwidthResult {
  /** Size of each buffer in bytes. */
  bytes: number;
  /** (read + write) bytes / time of TypedArray.set, GB/s (1 GB = 1e9 bytes), best run. */
  copyGBs: number;
  copyMs: number;
  /** Bytes read / time of a summing loop, GB/s, best run. */
  readGBs: number;
  readMs: number;
  runs: number;
}

/** Sum of a Float64Array with four independent accumulators (keeps the loop load-bound). */
function sum4(a: Float64Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n = a.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i];
    s1 += a[i + 1];
    s2 += a[i + 2];
    s3 += a[i + 3];
  }
  for (; i < n; i++) s0 += a[i];
  return s0 + s1 + s2 + s3;
}

export async function measureBandwidth(opts: { mib?: number; runs?: number } = {}): Promise<BandwidthResult> {
  const bytes = (opts.mib ?? 256) * 2 ** 20;
  const runs = opts.runs ?? 5;
  const src = new Float64Array(bytes / 8);
  for (let i = 0; i < src.length; i++) src[i] = i & 1023; // touch every page
  const dst = new Float64Array(src.length);
  dst.fill(1);
  const copy = await timeIt(() => dst.set(src), { warmup: 1, runs });
  // Get sum4 optimized on a small slice first (for 300 ms: on a loaded machine the background
  // compiler lags): a handful of huge calls would each start in the interpreter and measure the
  // JIT's warm-up instead of the memory.
  let sink = 0;
  const slice = src.subarray(0, 1 << 14);
  for (let i = 0, t0 = performance.now(); i < 2000 || performance.now() - t0 < 300; i++) sink += sum4(slice);
  const read = await timeIt(() => (sink += sum4(src)), { warmup: 1, runs });
  if (sink === -1) console.log(sink); // keep the sums observable
  return {
    bytes,
    copyGBs: (2 * bytes) / (copy.minMs * 1e6),
    copyMs: copy.minMs,
    readGBs: bytes / (read.minMs * 1e6),
    readMs: read.minMs,
    runs,
  };
}
