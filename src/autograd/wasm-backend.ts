/**
 * TrainBackend whose three matmul forms run on the CPU backend's WebAssembly SIMD f32 linear
 * kernel (shared heap, split over the worker pool): x·wᵀ directly, dy·w as dy·(wᵀ)ᵀ, dyᵀ·x as
 * (dyᵀ)·(xᵀ)ᵀ with the transposes made here. Attention and the indexer stay on the TypeScript
 * kernels. The WASM kernel sums in float32 (SIMD lanes), so results differ from the TypeScript
 * kernels' float64 sums by rounding; runs are still deterministic. A full heap falls back to TypeScript.
 */
import { availableParallelism } from 'node:os';
import { WasmRuntime } from '../backend/cpu/wasm/runtime.js';
import { CpuTrainBackend } from './cpu-backend.js';

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

export class WasmTrainBackend extends CpuTrainBackend {
  override readonly name = 'wasm';
  private readonly rt: WasmRuntime;

  constructor(threads = availableParallelism()) {
    super();
    this.rt = new WasmRuntime(threads);
  }

  /** x [rows, k] · w[n, k]ᵀ on the WASM kernel, or null when the heap is full. */
  private linear(x: Float32Array, rows: number, w: Float32Array, n: number, k: number): Float32Array | null {
    const owner = {};
    const hw = this.rt.placeWeight({ format: 'f32', outDim: n, inDim: k, data: w }, owner);
    if (!hw) return null;
    try {
      return this.rt.linear(x, rows, hw, null);
    } finally {
      this.rt.release(owner, hw.ptr);
    }
  }

  override matmulNT(x: Float32Array, w: Float32Array, m: number, k: number, n: number): Float32Array {
    return this.linear(x, m, w, n, k) ?? super.matmulNT(x, w, m, k, n);
  }

  override matmulNNAcc(dy: Float32Array, w: Float32Array, m: number, n: number, k: number, dx: Float32Array): void {
    const r = this.linear(dy, m, transpose(w, n, k), k, n);
    if (!r) return super.matmulNNAcc(dy, w, m, n, k, dx);
    for (let i = 0; i < r.length; i++) dx[i] += r[i]!;
  }

  override matmulTNAcc(dy: Float32Array, x: Float32Array, m: number, n: number, k: number, dw: Float32Array): void {
    const r = this.linear(transpose(dy, m, n), n, transpose(x, m, k), k, m);
    if (!r) return super.matmulTNAcc(dy, x, m, n, k, dw);
    for (let i = 0; i < r.length; i++) dw[i] += r[i]!;
  }

  /** Stops the worker threads. */
  close(): void {
    this.rt.close();
  }
}
