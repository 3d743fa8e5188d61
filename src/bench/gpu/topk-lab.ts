/**
 * The lab's top-k rows (`dsa bench gpu`, core section): every top-k variant alone over the batch's
 * indexer scores [batch, ctx] in one grid (k = min(2048, ctx), rows = batch), each first checked
 * against its CPU twin (topkRowsRadix) on the same scores. Keys: `topk_<variant>_ms` (GPU time
 * of the variant's kernels back to back, median of the runs), `topk_<variant>_kernels_ms` (the sum
 * of its kernels each timed in a pass of its own), `topk_<variant>_exact` (identical to the CPU),
 * `topkVariant` (what topkGpu runs by default for this shape).
 */
import type { GpuDevice } from '../../backend/webgpu/device.js';
import { TOPK_VARIANTS, topkGpu, topkVariantFor } from '../../backend/webgpu/kernels/topk.js';
import { topkRowsRadix } from '../../backend/cpu/kernels/topk-radix.js';

/** Times the recording of some GPU work (the lab's gpuTimes): kernels back to back, and each in a pass of its own. */
export type PassTimer = (record: () => void) => Promise<{ totalMs: number; kernelSumMs: number }>;

export async function topkVariantRows(
  gpu: GpuDevice,
  scores: GPUBuffer,
  positions: GPUBuffer,
  rows: number,
  nKeys: number,
  k: number,
  time: PassTimer,
): Promise<Record<string, unknown>> {
  const row: Record<string, unknown> = { topkVariant: topkVariantFor(gpu, rows, nKeys) };
  const host = new Float32Array(await gpu.read(scores, rows * nKeys * 4));
  const pos = new Int32Array(await gpu.read(positions, rows * 4));
  const want = topkRowsRadix(host, rows, nKeys, k, pos);
  for (const v of TOPK_VARIANTS) {
    const out = topkGpu(gpu, scores, positions, rows, nKeys, k, v);
    const got = new Int32Array(await gpu.read(out, want.byteLength));
    gpu.release(out);
    row[`topk_${v}_exact`] = got.every((x, i) => x === want[i]);
    const t = await time(() => {
      gpu.label = 'topk';
      gpu.release(topkGpu(gpu, scores, positions, rows, nKeys, k, v));
    });
    row[`topk_${v}_ms`] = Number(t.totalMs.toPrecision(4));
    row[`topk_${v}_kernels_ms`] = Number(t.kernelSumMs.toPrecision(4));
  }
  return row;
}
