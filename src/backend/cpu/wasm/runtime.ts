/**
 * The fast path of the CPU backend: WebAssembly SIMD kernels on a shared memory, split across a
 * pool of worker threads. Long-lived data (weights, uploaded tensors, caches) is placed in the
 * shared heap once; each op stages its activations into blocks it frees when done, and copies its
 * result out. Every kernel here has its plain TypeScript twin in ../kernels/, which tests compare
 * against; ops without a twin here run the TypeScript kernels.
 */
import { ShapeError, type HostArray, type HostWeight, type ScaleFormat } from '../../backend.js';
import { pageOfRow, slotOf, type RowPageMap } from '../kernels/indexer.js';
import { actQuantRow } from '../../../numerics/block-quant.js';
import { E4M3_TABLE } from '../../../numerics/e4m3.js';
import { Heap, HeapFullError } from '../heap.js';
import { KernelPool } from '../pool.js';
import { instantiateKernels, kernelsModule, latentFlag, type KernelExports } from './module.js';

/** Work (multiply-adds) below which a kernel runs on the calling thread alone, by default. */
export const PARALLEL_MIN_WORK = 1 << 18;

type Ctor<T> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

/** Blocks one op allocates in the heap, freed together when it finishes. */
class OpArena {
  private readonly blocks: number[] = [];
  constructor(private readonly rt: WasmRuntime) {}
  alloc(bytes: number): number {
    const p = this.rt.heap.alloc(Math.max(bytes, 16));
    this.blocks.push(p);
    return p;
  }
  copy(src: ArrayBufferView): number {
    const p = this.alloc(src.byteLength);
    new Uint8Array(this.rt.heap.memory.buffer, p, src.byteLength).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    return p;
  }
  done(): void {
    for (const p of this.blocks.splice(0)) this.rt.heap.release(p);
  }
}

export interface HeapWeight {
  host: HostWeight;
  ptr: number;
  scalePtr: number;
  /** Keeps the heap blocks alive. */
  owner: object;
}

export interface LatentArg {
  ptr: number;
  format: 'f32' | 'bf16' | 'fp8';
}

export class WasmRuntime {
  readonly heap: Heap;
  readonly ex: KernelExports;
  private poolInstance: KernelPool | null = null;
  /**
   * Whether one query row's attention may be split over the pool by entries (flash decoding).
   * Off for batch-invariant numerics: a row then computes the same alone or among others.
   */
  splitRowsByEntries = true;
  private readonly registry = new FinalizationRegistry<number[]>((ptrs) => ptrs.forEach((p) => this.heap.release(p)));

  constructor(
    readonly threads: number,
    maxBytes?: number,
    /** Work (multiply-adds) below which a kernel is not split across threads. */
    readonly minParallelWork = PARALLEL_MIN_WORK,
  ) {
    this.heap = new Heap(1024, maxBytes);
    this.ex = instantiateKernels(this.heap.memory);
  }

  /** The worker pool, started on first use. */
  get pool(): KernelPool {
    this.poolInstance ??= new KernelPool(this.heap.memory, kernelsModule(), this.ex as unknown as Record<string, unknown>, this.threads);
    return this.poolInstance;
  }

  view<T>(ctor: Ctor<T>, ptr: number, length: number): T {
    return new ctor(this.heap.memory.buffer, ptr, length);
  }

  /** A heap copy of `src`, or null when the heap is full. */
  private copyIn<T extends HostArray | Uint16Array>(src: T): { data: T; ptr: number } | null {
    let ptr: number;
    try {
      ptr = this.heap.alloc(Math.max(src.byteLength, 16));
    } catch (e) {
      if (e instanceof HeapFullError) return null;
      throw e;
    }
    const data = new (src.constructor as Ctor<T>)(this.heap.memory.buffer, ptr, src.length);
    (data as unknown as { set(a: ArrayLike<number>): void }).set(src as unknown as ArrayLike<number>);
    return { data, ptr };
  }

  /**
   * A heap copy of `src` whose block is freed when `owner` is garbage collected; null when the heap
   * is full (the caller keeps the JavaScript array and the TypeScript kernels).
   */
  place<T extends HostArray | Uint16Array>(src: T, owner: object): { data: T; ptr: number } | null {
    const placed = this.copyIn(src);
    if (placed) this.registry.register(owner, [placed.ptr], owner);
    return placed;
  }

  /** A zero-filled heap array of `length` elements, freed with `owner`; null when the heap is full. */
  zeros<T>(ctor: Ctor<T>, length: number, owner: object): { data: T; ptr: number } | null {
    let ptr: number;
    try {
      ptr = this.heap.alloc(Math.max(length * ctor.BYTES_PER_ELEMENT, 16));
    } catch (e) {
      if (e instanceof HeapFullError) return null;
      throw e;
    }
    new Uint8Array(this.heap.memory.buffer, ptr, length * ctor.BYTES_PER_ELEMENT).fill(0);
    this.registry.register(owner, [ptr], owner);
    return { data: this.view(ctor, ptr, length), ptr };
  }

  /** Frees `owner`'s blocks now (explicit dispose). */
  release(owner: object, ptr: number): void {
    this.registry.unregister(owner);
    this.heap.release(ptr);
  }

  /** A weight's data (and scales) in the heap, freed with `owner`, or null when it does not fit. */
  placeWeight(w: HostWeight, owner: object): HeapWeight | null {
    const data = this.copyIn(w.data);
    if (!data) return null;
    if (w.format !== 'fp8') {
      this.registry.register(owner, [data.ptr], owner);
      return { host: { ...w, data: data.data } as HostWeight, ptr: data.ptr, scalePtr: 0, owner };
    }
    const scales = this.copyIn(w.scaleInv);
    if (!scales) {
      this.heap.release(data.ptr);
      return null;
    }
    this.registry.register(owner, [data.ptr, scales.ptr], owner);
    const host: HostWeight = { ...w, data: data.data as Uint8Array, scaleInv: scales.data };
    return { host, ptr: data.ptr, scalePtr: scales.ptr, owner };
  }

  /**
   * Runs an op with its staging blocks; null when the heap has no room for them (the backend then
   * runs the TypeScript kernel instead).
   */
  private op<R>(fn: (a: OpArena) => R): R | null {
    const a = new OpArena(this);
    try {
      return fn(a);
    } catch (e) {
      if (e instanceof HeapFullError) return null;
      throw e;
    } finally {
      a.done();
    }
  }

  /** Splits [0, n) over the pool when the work is worth it, else one part on this thread. */
  private parts(n: number, grain: number, work: number): Array<[number, number]> {
    return work < this.minParallelWork || this.threads === 1 ? [[0, n]] : this.pool.parts(0, n, grain);
  }

  private run(fn: string, parts: Array<[number, number]>, args: (i: number, b: number, e: number) => number[]): void {
    if (parts.length === 1) {
      (this.ex as unknown as Record<string, (...a: number[]) => void>)[fn]!(...args(0, parts[0]![0], parts[0]![1]));
      return;
    }
    this.pool.runAll(fn, (i) => (parts[i] ? args(i, parts[i]![0], parts[i]![1]) : null));
  }

  /** out [rows, N] = x [rows, K] · Wᵀ with W in the heap (FP8 with activation quantization when aq is set). */
  linear(x: Float32Array, rows: number, w: HeapWeight, aq: ScaleFormat | null): Float32Array | null {
    const { outDim: n, inDim: k } = w.host;
    return this.op((a) => {
      const out = a.alloc(rows * n * 4);
      const parts = this.parts(n, 16, rows * n * k);
      const h = w.host;
      if (h.format === 'fp8' && aq !== null) {
        const [bo, bi] = h.block;
        const kb = Math.ceil(k / bi);
        const xq = new Uint8Array(rows * k);
        const sx = new Float32Array(rows * kb);
        for (let t = 0; t < rows; t++) actQuantRow(x, t * k, k, bi, aq, xq, t * k, sx, t * kb);
        const xqPtr = a.copy(xq);
        const sxPtr = a.copy(sx);
        const bytes = this.ex.linear_fp8_aq_scratch_bytes(rows, k, bi);
        const scratch = parts.map(() => a.alloc(bytes));
        this.run('linear_fp8_aq', parts, (i, b, e) => [xqPtr, sxPtr, w.ptr, w.scalePtr, bo, bi, out, rows, k, n, scratch[i]!, b, e]);
      } else {
        const xPtr = a.copy(x);
        const bytes = this.ex.linear_scratch_bytes(rows, k);
        const scratch = parts.map(() => a.alloc(bytes));
        if (h.format === 'fp8') {
          const [bo, bi] = h.block;
          this.run('linear_fp8', parts, (i, b, e) => [xPtr, w.ptr, w.scalePtr, bo, bi, out, rows, k, n, scratch[i]!, b, e]);
        } else {
          this.run(h.format === 'f32' ? 'linear_f32' : 'linear_bf16', parts, (i, b, e) => [xPtr, w.ptr, out, rows, k, n, scratch[i]!, b, e]);
        }
      }
      return this.view(Float32Array, out, rows * n).slice();
    });
  }

  /** Per head: x [T, H, n] · w[h] (w [H, n, m]) or · w[h]ᵀ (w [H, m, n]); w f32 in the heap, transposed once when needed. */
  headMatmul(x: Float32Array, rows: number, heads: number, n: number, wPtr: number, m: number): Float32Array | null {
    // w is [H, m, n] here (callers pass W_UK transposed): out[t, h] = x[t, h] · w[h]ᵀ.
    return this.op((a) => {
      // Regroup x as [H, T, n] so each head's rows are contiguous.
      const xs = new Float32Array(rows * heads * n);
      for (let t = 0; t < rows; t++) for (let h = 0; h < heads; h++) xs.set(x.subarray((t * heads + h) * n, (t * heads + h + 1) * n), (h * rows + t) * n);
      const xPtr = a.copy(xs);
      const outPtr = a.alloc(heads * rows * m * 4);
      const scratch = a.alloc(this.ex.linear_scratch_bytes(rows, n));
      for (let h = 0; h < heads; h++) {
        this.ex.linear_f32(xPtr + h * rows * n * 4, wPtr + h * m * n * 4, outPtr + h * rows * m * 4, rows, n, m, scratch, 0, m);
      }
      const grouped = this.view(Float32Array, outPtr, heads * rows * m);
      const out = new Float32Array(rows * heads * m);
      for (let t = 0; t < rows; t++) for (let h = 0; h < heads; h++) out.set(grouped.subarray((h * rows + t) * m, (h * rows + t + 1) * m), (t * heads + h) * m);
      return out;
    });
  }

  /** Indexer scores [T, nKeys] over the heap's FP8 key cache; `slots` maps key positions to cache slots. */
  indexerScores(
    q8: Uint8Array,
    rows: number,
    heads: number,
    dim: number,
    w: Float32Array,
    kCachePtr: number,
    kScalePtr: number,
    slots: Int32Array,
    positions: Int32Array,
  ): Float32Array | null {
    return this.indexerCall(q8, rows, heads, dim, w, kCachePtr, kScalePtr, slots, null, slots.length, positions);
  }

  /**
   * indexerScores over several sequences in one call (indexer_scores_multi): rows grouped by
   * sequence (group g = rows [groupStart[g], groupStart[g + 1])), group g's keys at slots
   * [g · nKeys, (g + 1) · nKeys). Each row's scores equal those of a call for its sequence alone.
   */
  indexerScoresMulti(
    q8: Uint8Array,
    rows: number,
    heads: number,
    dim: number,
    w: Float32Array,
    kCachePtr: number,
    kScalePtr: number,
    slots: Int32Array,
    groupStart: Int32Array,
    nKeys: number,
    positions: Int32Array,
  ): Float32Array | null {
    return this.indexerCall(q8, rows, heads, dim, w, kCachePtr, kScalePtr, slots, groupStart, nKeys, positions);
  }

  /** The two indexer kernels' shared call: one sequence (groupStart null) or several. */
  private indexerCall(
    q8: Uint8Array, rows: number, heads: number, dim: number, w: Float32Array, kCachePtr: number, kScalePtr: number,
    slots: Int32Array, groupStart: Int32Array | null, nKeys: number, positions: Int32Array,
  ): Float32Array | null {
    return this.op((a) => {
      const q = new Float32Array(q8.length);
      for (let i = 0; i < q8.length; i++) q[i] = E4M3_TABLE[q8[i]!]!;
      const qPtr = a.copy(q);
      const wPtr = a.copy(w);
      const slotsPtr = a.copy(slots);
      const posPtr = a.copy(positions);
      const out = a.alloc(rows * nKeys * 4);
      const parts = this.parts(nKeys, 32, rows * heads * dim * nKeys);
      const bytes = this.ex.indexer_scratch_bytes(dim);
      const scratch = parts.map(() => a.alloc(bytes));
      if (groupStart) {
        const groupPtr = a.copy(groupStart);
        const G = groupStart.length - 1;
        this.run('indexer_scores_multi', parts, (i, b, e) => [qPtr, wPtr, kCachePtr, kScalePtr, slotsPtr, groupPtr, G, posPtr, out, rows, heads, dim, nKeys, scratch[i]!, b, e]);
      } else {
        this.run('indexer_scores', parts, (i, b, e) => [qPtr, wPtr, kCachePtr, kScalePtr, slotsPtr, posPtr, out, rows, heads, dim, nKeys, scratch[i]!, b, e]);
      }
      return this.view(Float32Array, out, rows * nKeys).slice();
    });
  }

  /**
   * MLA attention over lists of cache slots (i32 [T, n], −1 = skip): one row split over the pool by
   * entries (flash-decoding partials, then a merge), several rows split by rows.
   */
  mlaAttention(
    qLat: Float32Array,
    qPe: Float32Array,
    latent: LatentArg,
    lists: Int32Array,
    n: number,
    rows: number,
    heads: number,
    r: number,
    dr: number,
    scale: number,
  ): Float32Array | null {
    const fmt = latentFlag(latent.format);
    return this.op((a) => {
      const qLatPtr = a.copy(qLat);
      const qPePtr = a.copy(qPe);
      const listPtr = a.copy(lists);
      const out = a.alloc(rows * heads * r * 4);
      const bytes = this.ex.mla_scratch_bytes(heads, r, dr);
      const work = rows * n * heads * (2 * r + dr);
      if (rows === 1) {
        const parts = this.splitRowsByEntries ? this.parts(n, 16, work) : [[0, n] as [number, number]];
        const nParts = parts.length;
        const acc = a.alloc(nParts * heads * r * 4);
        const m = a.alloc(nParts * heads * 4);
        const l = a.alloc(nParts * heads * 4);
        const scratch = parts.map(() => a.alloc(bytes));
        this.run('mla_partial', parts, (i, b, e) => [
          qLatPtr, qPePtr, latent.ptr, fmt, listPtr, n, heads, r, dr, scale, 0,
          acc + i * heads * r * 4, m + i * heads * 4, l + i * heads * 4, scratch[i]!, b, e,
        ]);
        const headParts = this.parts(heads, 1, nParts * heads * r * 64);
        this.run('mla_merge', headParts, (_i, b, e) => [acc, m, l, nParts, heads, r, out, b, e]);
      } else {
        const parts = this.parts(rows, 1, work);
        const scratch = parts.map(() => a.alloc(bytes));
        this.run('mla_attention', parts, (i, b, e) => [qLatPtr, qPePtr, latent.ptr, fmt, listPtr, n, heads, r, dr, scale, out, scratch[i]!, b, e]);
      }
      return this.view(Float32Array, out, rows * heads * r).slice();
    });
  }

  /**
   * Attention of query rows over a paged cache: each row's selection (idx [rows, width], −1 padded)
   * or, without idx, every position up to its own (dense). Rows are resolved to lists of cache slots
   * and processed in groups so the lists stay ≤ 16 MiB. Null when the heap has no room.
   */
  mlaAttentionPaged(
    qLat: Float32Array,
    qPe: Float32Array,
    latent: LatentArg,
    positions: Int32Array,
    idx: Int32Array | null,
    width: number,
    shape: { rows: number; heads: number; r: number; dr: number },
    scale: number,
    /** Row t's sequence's page map (one for all rows of one sequence). */
    pages: RowPageMap,
  ): Float32Array | null {
    const { rows, heads, r, dr } = shape;
    const pageOf = pageOfRow(pages);
    const out = new Float32Array(rows * heads * r);
    let maxPos = 0;
    for (const p of positions) maxPos = Math.max(maxPos, p);
    const n = idx ? width : maxPos + 1;
    const group = Math.max(1, Math.floor((1 << 22) / Math.max(n, 1)));
    for (let t0 = 0; t0 < rows; t0 += group) {
      const t1 = Math.min(rows, t0 + group);
      const lists = new Int32Array((t1 - t0) * n).fill(-1);
      for (let t = t0; t < t1; t++) {
        const base = (t - t0) * n;
        const map = pageOf(t);
        if (idx) {
          for (let j = 0; j < width; j++) {
            const p = idx[t * width + j]!;
            if (p < 0) continue;
            if (p > positions[t]!) throw new ShapeError('mlaAttention', `query at position ${positions[t]} selects future position ${p}`);
            lists[base + j] = slotOf(map, p);
          }
        } else {
          for (let p = 0; p <= positions[t]!; p++) lists[base + p] = slotOf(map, p);
        }
      }
      const part = this.mlaAttention(
        qLat.subarray(t0 * heads * r, t1 * heads * r),
        qPe.subarray(t0 * heads * dr, t1 * heads * dr),
        latent,
        lists,
        n,
        t1 - t0,
        heads,
        r,
        dr,
        scale,
      );
      if (!part) return null;
      out.set(part, t0 * heads * r);
    }
    return out;
  }

  close(): void {
    this.poolInstance?.close();
    this.poolInstance = null;
  }
}
