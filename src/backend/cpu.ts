/**
 * The CPU backend, executed eagerly. Two kernel sets: 'wasm' (the default: WebAssembly SIMD kernels
 * on a shared heap, split across a pool of worker threads, see cpu/wasm/runtime.ts) and 'js' (plain
 * TypeScript kernels on typed arrays: the reference every other kernel is compared with). Ops the
 * WASM set does not cover, and data that does not fit its 4 GiB heap, use the TypeScript kernels.
 */
import { availableParallelism } from 'node:os';
import {
  int8ScanShape,
  latentDType,
  latentRowWidth,
  numel,
  ShapeError,
  type Backend,
  type DType,
  type HostArray,
  type HostWeight,
  type LatentFormat,
  type RouteOptions,
  type ScaleFormat,
  type SeqPages,
  type Tensor,
  type Weight,
} from './backend.js';
import { allocate, bf16, cpu, CpuTensor, dtypeOf, expectShape, f32, i32, rowsCols, sameShape, u8 } from './cpu/tensor.js';
import { CpuWeight, decodeRow } from './cpu/weight.js';
import * as ew from './cpu/kernels/elementwise.js';
import { headMatmul } from './cpu/kernels/linear.js';
import { pageOfRow, slotOf } from './cpu/kernels/indexer.js';
import { indexerScoresRows } from './cpu/indexer-rows.js';
import { requantInt8Rows, indexerScoresInt8Rows } from './cpu/kernels/indexer-int8.js';
import { rowPageMap, rowPages } from './cpu/row-pages.js';
import { topkRowsRadix } from './cpu/kernels/topk-radix.js';
import { mlaAttention } from './cpu/kernels/mla-attention.js';
import { packLatent, type LatentData } from './cpu/kernels/latent.js';
import { linearTs, moeExperts, moeRoute, type LinearKernel } from './cpu/kernels/moe.js';
import { WasmRuntime } from './cpu/wasm/runtime.js';

export interface CpuOptions {
  /** 'wasm' (default, or $DSA_KERNELS) or 'js' (the TypeScript reference kernels). */
  kernels?: 'wasm' | 'js';
  /** Threads for the WASM kernels (default $DSA_THREADS or every core). */
  threads?: number;
  /** Upper bound of the WASM heap in bytes (default 4 GiB). */
  maxHeapBytes?: number;
  /** Work (multiply-adds) below which a kernel stays on one thread (tests set 0 to split everything). */
  minParallelWork?: number;
  /**
   * Batch-invariant numerics (a server's batched output then equals its unbatched output): every
   * row of a linear layer takes the same WASM code path whatever the number of rows (a single row is
   * padded to two instead of taking the decode path), and a query row's attention is never split
   * over threads by entries. Costs some single-sequence decode speed; the 'js' kernels are
   * batch-invariant anyway.
   */
  batchInvariant?: boolean;
  /**
   * Declare `multiSequence` (default true): the model then issues the cache writes, indexer, top-k
   * and attention once over all sequences of a step. False keeps one call per sequence (for comparison).
   */
  multiSequence?: boolean;
}

const ctorOf = { f32: Float32Array, i32: Int32Array, bf16: Uint16Array, u8: Uint8Array } as const;

function envKernels(): 'wasm' | 'js' {
  const v = typeof process !== 'undefined' ? process.env.DSA_KERNELS : undefined;
  if (v !== undefined && v !== 'wasm' && v !== 'js') throw new Error(`DSA_KERNELS must be 'wasm' or 'js', got '${v}'`);
  return v ?? 'wasm';
}

function envThreads(): number {
  const v = typeof process !== 'undefined' ? process.env.DSA_THREADS : undefined;
  if (v === undefined) return availableParallelism();
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`DSA_THREADS must be a positive integer, got '${v}'`);
  return n;
}

/** One row twice: [1, ...] → [2, ...] (batch-invariant kernels give a single row the several-row path). */
function twoRows(x: Float32Array): Float32Array {
  const out = new Float32Array(2 * x.length);
  out.set(x);
  out.set(x, x.length);
  return out;
}

/** The largest selected position of row t that is not in its future (−1 when none): the last page it reads. */
function lastSelected(idx: Int32Array, t: number, width: number, pos: number): number {
  let last = -1;
  for (let j = 0; j < width; j++) {
    const p = idx[t * width + j]!;
    if (p <= pos && p > last) last = p;
  }
  return last;
}

function weightOf(w: Weight, op: string): CpuWeight {
  if (!(w instanceof CpuWeight)) throw new ShapeError(op, 'weight does not belong to the CPU backend');
  return w;
}

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  /** Cache ops take several sequences in one call (SeqPages.rowSeq; the ops accept it either way). */
  readonly multiSequence: boolean;
  readonly kernels: 'wasm' | 'js';
  private readonly rt: WasmRuntime | null;
  /** W_UK-style weights transposed once for the WASM per-head product. */
  private readonly transposed = new WeakMap<CpuTensor, CpuTensor>();
  private readonly released = new WeakSet<object>();
  private readonly linearFast: LinearKernel;
  readonly batchInvariant: boolean;

  constructor(opts: CpuOptions = {}) {
    this.kernels = opts.kernels ?? envKernels();
    this.batchInvariant = opts.batchInvariant ?? false;
    this.multiSequence = opts.multiSequence ?? true;
    this.rt = this.kernels === 'wasm' ? new WasmRuntime(opts.threads ?? envThreads(), opts.maxHeapBytes, opts.minParallelWork) : null;
    if (this.rt && this.batchInvariant) this.rt.splitRowsByEntries = false;
    const rt = this.rt;
    // The WASM kernel when the weight is in the heap and the op finds room there, else TypeScript.
    const fast: LinearKernel = (x, rows, w, aq) => (rt && w.heap ? rt.linear(x, rows, { ...w.heap, host: w.host }, aq) : null) ?? linearTs(x, rows, w, aq);
    this.linearFast = rt && this.batchInvariant ? (x, rows, w, aq) => (rows === 1 ? fast(twoRows(x), 2, w, aq).slice(0, w.outDim) : fast(x, rows, w, aq)) : fast;
  }

  /** Stops the worker threads (the backend stays usable; they restart on demand). */
  close(): void {
    this.rt?.close();
  }

  private t(shape: readonly number[], data: HostArray): CpuTensor {
    return new CpuTensor(shape, dtypeOf(data), data);
  }

  // ---- memory ----
  upload(data: HostArray, shape: readonly number[]): Tensor {
    if (numel(shape) !== data.length) throw new ShapeError('upload', `shape [${shape.join(', ')}] does not hold ${data.length} values`);
    if (this.rt) {
      const owner = {};
      const placed = this.rt.place(data, owner);
      if (placed) return new CpuTensor([...shape], dtypeOf(data), placed.data, placed.ptr, owner);
    }
    return this.t([...shape], data.slice());
  }
  zeros(shape: readonly number[], dtype: DType): Tensor {
    if (this.rt) {
      const owner = {};
      const z = this.rt.zeros(ctorOf[dtype] as unknown as { new (b: ArrayBufferLike, o: number, n: number): HostArray; BYTES_PER_ELEMENT: number }, numel(shape), owner);
      if (z) return new CpuTensor([...shape], dtype, z.data, z.ptr, owner);
    }
    return new CpuTensor([...shape], dtype, allocate(shape, dtype));
  }
  read(t: Tensor): Promise<HostArray> {
    return Promise.resolve(cpu(t, 'read').data.slice());
  }
  /** The CPU backend can also read synchronously (tests and tools use it). */
  readSync(t: Tensor): HostArray {
    return cpu(t, 'readSync').data;
  }
  reshape(t: Tensor, shape: readonly number[]): Tensor {
    const c = cpu(t, 'reshape');
    if (numel(shape) !== c.size) throw new ShapeError('reshape', `cannot view [${c.shape.join(', ')}] as [${shape.join(', ')}]`);
    return new CpuTensor([...shape], c.dtype, c.data, c.ptr, c.owner);
  }
  /** Frees a heap tensor's storage now (shared with its reshapes); otherwise storage is garbage collected. */
  dispose(t: Tensor): void {
    const c = cpu(t, 'dispose');
    if (this.rt && c.ptr !== undefined && c.owner && !this.released.has(c.owner)) {
      this.released.add(c.owner);
      this.rt.release(c.owner, c.ptr);
    }
  }
  uploadWeight(w: HostWeight): Weight {
    if (this.rt) {
      const probe = new CpuWeight(w); // validates sizes before anything is copied
      const owner = {};
      const placed = this.rt.placeWeight(probe.host, owner);
      if (placed) return new CpuWeight(placed.host, { ptr: placed.ptr, scalePtr: placed.scalePtr, owner });
      return probe;
    }
    return new CpuWeight(w);
  }
  scope<R>(fn: () => R): R {
    return fn();
  }

  // ---- element-wise and shape ----
  add(a: Tensor, b: Tensor): Tensor {
    sameShape('add', a, b);
    const x = f32(a, 'add');
    const y = f32(b, 'add');
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] + y[i];
    return this.t(a.shape, out);
  }
  mul(a: Tensor, b: Tensor): Tensor {
    sameShape('mul', a, b);
    const x = f32(a, 'mul');
    const y = f32(b, 'mul');
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] * y[i];
    return this.t(a.shape, out);
  }
  scale(a: Tensor, c: number): Tensor {
    const x = f32(a, 'scale');
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] * c;
    return this.t(a.shape, out);
  }
  swiglu(gate: Tensor, up: Tensor): Tensor {
    sameShape('swiglu', gate, up);
    return this.t(gate.shape, ew.swiglu(f32(gate, 'swiglu'), f32(up, 'swiglu')));
  }
  sliceLast(x: Tensor, start: number, len: number): Tensor {
    const c = cpu(x, 'sliceLast');
    const [rows, n] = rowsCols(c);
    if (start < 0 || len < 0 || start + len > n) throw new ShapeError('sliceLast', `[${start}, ${start + len}) is outside the last dimension ${n}`);
    const out = allocate([rows, len], c.dtype);
    for (let r = 0; r < rows; r++) out.set(c.data.subarray(r * n + start, r * n + start + len), r * len);
    return new CpuTensor([...c.shape.slice(0, -1), len], c.dtype, out);
  }
  sliceRows(x: Tensor, start: number, len: number): Tensor {
    const c = cpu(x, 'sliceRows');
    const rows = c.shape[0] ?? 0;
    if (c.shape.length === 0 || start < 0 || len < 0 || start + len > rows) {
      throw new ShapeError('sliceRows', `rows [${start}, ${start + len}) are outside the first dimension ${rows}`);
    }
    const per = rows === 0 ? 0 : c.size / rows;
    const out = allocate([len * per], c.dtype);
    out.set(c.data.subarray(start * per, (start + len) * per));
    return new CpuTensor([len, ...c.shape.slice(1)], c.dtype, out);
  }
  concatRows(parts: readonly Tensor[]): Tensor {
    if (parts.length === 0) throw new ShapeError('concatRows', 'no tensors to concatenate');
    const first = cpu(parts[0]!, 'concatRows');
    const tail = first.shape.slice(1);
    let rows = 0;
    for (const p of parts) {
      const c = cpu(p, 'concatRows', first.dtype);
      if (c.shape.length !== first.shape.length || c.shape.slice(1).some((d, i) => d !== tail[i])) {
        throw new ShapeError('concatRows', `[${c.shape.join(', ')}] does not stack with [${first.shape.join(', ')}]`);
      }
      rows += c.shape[0]!;
    }
    const shape = [rows, ...tail];
    const out = allocate(shape, first.dtype);
    let at = 0;
    for (const p of parts) {
      const d = (p as CpuTensor).data;
      out.set(d, at);
      at += d.length;
    }
    return new CpuTensor(shape, first.dtype, out);
  }
  gatherRows(x: Tensor, rows: Tensor): Tensor {
    const c = cpu(x, 'gatherRows');
    const idx = i32(rows, 'gatherRows');
    const [nRows, n] = rowsCols(c);
    const out = allocate([idx.length, n], c.dtype);
    idx.forEach((r, i) => {
      if (r < 0 || r >= nRows) throw new ShapeError('gatherRows', `row ${r} is outside 0..${nRows - 1}`);
      out.set(c.data.subarray(r * n, (r + 1) * n), i * n);
    });
    return new CpuTensor([idx.length, n], c.dtype, out);
  }
  argmax(x: Tensor): Tensor {
    const [rows, n] = rowsCols(x);
    return this.t([rows], ew.argmaxRows(f32(x, 'argmax'), rows, n));
  }

  // ---- layers ----
  embedding(table: Weight, ids: Tensor): Tensor {
    const w = weightOf(table, 'embedding');
    const tokens = i32(ids, 'embedding');
    const d = w.inDim;
    const out = new Float32Array(tokens.length * d);
    const row = new Float32Array(d);
    tokens.forEach((id, i) => {
      if (id < 0 || id >= w.outDim) throw new ShapeError('embedding', `token id ${id} is outside the vocabulary 0..${w.outDim - 1}`);
      decodeRow(w, id, row);
      out.set(row, i * d);
    });
    return this.t([tokens.length, d], out);
  }
  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
    const [rows, n] = rowsCols(x);
    expectShape('rmsNorm', 'weight', w, [n]);
    return this.t(x.shape, ew.rmsNorm(f32(x, 'rmsNorm'), rows, n, f32(w, 'rmsNorm'), eps));
  }
  layerNorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
    const [rows, n] = rowsCols(x);
    expectShape('layerNorm', 'weight', w, [n]);
    expectShape('layerNorm', 'bias', b, [n]);
    return this.t(x.shape, ew.layerNorm(f32(x, 'layerNorm'), rows, n, f32(w, 'layerNorm'), f32(b, 'layerNorm'), eps));
  }
  linear(x: Tensor, w: Weight, actQuant: ScaleFormat | null): Tensor {
    const cw = weightOf(w, 'linear');
    const [rows, k] = rowsCols(x);
    if (k !== cw.inDim) throw new ShapeError('linear', `input has ${k} features, the weight [${cw.outDim}, ${cw.inDim}] expects ${cw.inDim}`);
    const out = this.linearFast(f32(x, 'linear'), rows, cw, actQuant);
    return this.t([...x.shape.slice(0, -1), cw.outDim], out);
  }
  headMatmul(x: Tensor, w: Tensor, transposeW: boolean): Tensor {
    if (x.shape.length !== 3 || w.shape.length !== 3) throw new ShapeError('headMatmul', 'expects x [T, H, n] and w [H, ., .]');
    const [rows, heads, n] = x.shape as [number, number, number];
    const [wh, a, b] = w.shape as [number, number, number];
    const inner = transposeW ? b : a;
    const m = transposeW ? a : b;
    if (wh !== heads || inner !== n) {
      throw new ShapeError('headMatmul', `x [${x.shape.join(', ')}] does not match w [${w.shape.join(', ')}]${transposeW ? 'ᵀ' : ''}`);
    }
    const cwt = cpu(w, 'headMatmul', 'f32');
    if (this.rt && cwt.ptr !== undefined) {
      // The WASM kernel multiplies by w[h]ᵀ: transpose [H, n, m] weights once.
      const wt = transposeW ? cwt : this.transposedOf(cwt);
      // Batch-invariant: one row takes the several-row path (see CpuOptions.batchInvariant).
      const pad = this.batchInvariant && rows === 1;
      const xs = pad ? twoRows(f32(x, 'headMatmul')) : f32(x, 'headMatmul');
      const out = wt.ptr !== undefined ? this.rt.headMatmul(xs, pad ? 2 : rows, heads, n, wt.ptr, m) : null;
      if (out) return this.t([rows, heads, m], pad ? out.slice(0, heads * m) : out);
    }
    return this.t([rows, heads, m], headMatmul(f32(x, 'headMatmul'), rows, heads, n, cwt.data as Float32Array, m, transposeW));
  }
  private transposedOf(w: CpuTensor): CpuTensor {
    let t = this.transposed.get(w);
    if (!t) {
      const [h, a, b] = w.shape as [number, number, number];
      const src = w.data as Float32Array;
      const out = new Float32Array(src.length);
      for (let k = 0; k < h; k++) for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) out[(k * b + j) * a + i] = src[(k * a + i) * b + j];
      t = this.upload(out, [h, b, a]) as CpuTensor;
      this.transposed.set(w, t);
    }
    return t;
  }
  rope(x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor, offset: number, interleaved: boolean): Tensor {
    if (x.shape.length !== 3) throw new ShapeError('rope', `expects x [T, heads, dim], got [${x.shape.join(', ')}]`);
    const [rows, heads, dim] = x.shape as [number, number, number];
    expectShape('rope', 'positions', positions, [rows]);
    sameShape('rope', cos, sin);
    const [maxPos, half] = cos.shape as [number, number];
    const out = ew.rope(f32(x, 'rope'), rows, heads, dim, i32(positions, 'rope'), f32(cos, 'rope'), f32(sin, 'rope'), maxPos, half, offset, interleaved);
    return this.t(x.shape, out);
  }
  hadamard(x: Tensor): Tensor {
    const [rows, n] = rowsCols(x);
    return this.t(x.shape, ew.hadamard(f32(x, 'hadamard'), rows, n));
  }
  quantFp8(x: Tensor, block: number, fmt: ScaleFormat): { q: Tensor; s: Tensor } {
    const [rows, n] = rowsCols(x);
    const { q, s, blocks } = ew.quantFp8(f32(x, 'quantFp8'), rows, n, block, fmt);
    return { q: this.t(x.shape, q), s: this.t([...x.shape.slice(0, -1), blocks], s) };
  }
  dequantFp8(q: Tensor, s: Tensor, block: number): Tensor {
    const [rows, n] = rowsCols(q);
    return this.t(q.shape, ew.dequantFp8(u8(q, 'dequantFp8'), f32(s, 'dequantFp8'), rows, n, block));
  }

  // ---- cache ----
  writeRows(dst: Tensor, pages: SeqPages, positions: Tensor, src: Tensor, colOffset: number): void {
    const d = cpu(dst, 'writeRows');
    const s = cpu(src, 'writeRows', d.dtype);
    const [slots, width] = rowsCols(d);
    const [rows, n] = rowsCols(s);
    const pos = i32(positions, 'writeRows');
    if (pos.length !== rows) throw new ShapeError('writeRows', `${rows} rows but ${pos.length} positions`);
    if (colOffset + n > width) throw new ShapeError('writeRows', `columns [${colOffset}, ${colOffset + n}) exceed the cache row ${width}`);
    const pageOf = pageOfRow(rowPageMap(rowPages('writeRows', pages, rows, (t) => pos[t])));
    for (let r = 0; r < rows; r++) {
      const slot = slotOf(pageOf(r), pos[r]);
      if (slot < 0 || slot >= slots) throw new ShapeError('writeRows', `slot ${slot} is outside the cache (${slots} slots)`);
      d.data.set(s.data.subarray(r * n, (r + 1) * n), slot * width + colOffset);
    }
  }
  packLatent(ckv: Tensor, kPe: Tensor, format: LatentFormat): Tensor {
    const [rows, r] = rowsCols(ckv);
    const [kRows, dr] = rowsCols(kPe);
    if (kRows !== rows) throw new ShapeError('packLatent', `${rows} c_kv rows but ${kRows} k_rope rows`);
    let width: number;
    try {
      width = latentRowWidth(format, r, dr);
    } catch (e) {
      throw new ShapeError('packLatent', (e as Error).message);
    }
    const packed = packLatent(f32(ckv, 'packLatent'), f32(kPe, 'packLatent'), rows, r, dr, format);
    return new CpuTensor([rows, width], latentDType(format), packed.data);
  }

  // ---- DSA ----
  indexerScores(q8: Tensor, w: Tensor, kCache: Tensor, kScale: Tensor, pages: SeqPages, nKeys: number, positions: Tensor): Tensor {
    if (q8.shape.length !== 3) throw new ShapeError('indexerScores', `expects q8 [T, H, D], got [${q8.shape.join(', ')}]`);
    const [rows, heads, dim] = q8.shape as [number, number, number];
    expectShape('indexerScores', 'weights', w, [rows, heads]);
    expectShape('indexerScores', 'positions', positions, [rows]);
    if (kCache.shape[1] !== dim) throw new ShapeError('indexerScores', `key cache rows have ${kCache.shape[1]} values, queries ${dim}`);
    const kc = cpu(kCache, 'indexerScores', 'u8');
    const ks = cpu(kScale, 'indexerScores', 'f32');
    const q = u8(q8, 'indexerScores');
    const wt = f32(w, 'indexerScores');
    const pos = i32(positions, 'indexerScores');
    const rp = rowPages('indexerScores', pages, rows, (t) => Math.min(pos[t], nKeys - 1));
    return this.t([rows, nKeys], indexerScoresRows(this.rt, q, rows, heads, dim, wt, kc, ks, rp, nKeys, pos));
  }
  requantInt8(codes: Tensor, scaleIn: Tensor): { q: Tensor; s: Tensor } {
    const [rows, dim] = rowsCols(codes);
    if (scaleIn.size !== rows) throw new ShapeError('requantInt8', `expects one scale per row (${rows}), got ${scaleIn.size}`);
    const r = requantInt8Rows(u8(codes, 'requantInt8'), f32(scaleIn, 'requantInt8'), rows, dim);
    return { q: this.t(codes.shape, r.q), s: this.t([rows, 1], r.s) };
  }
  indexerScoresInt8(qI8: Tensor, wq: Tensor, kCache: Tensor, kScale: Tensor, pages: SeqPages, nKeys: number, positions: Tensor): Tensor {
    const [rows, heads, dim] = int8ScanShape(qI8, wq, kCache, positions);
    const pos = i32(positions, 'indexerScoresInt8');
    const rp = rowPages('indexerScoresInt8', pages, rows, (t) => Math.min(pos[t], nKeys - 1));
    const out = indexerScoresInt8Rows(u8(qI8, 'indexerScoresInt8'), rows, heads, dim, f32(wq, 'indexerScoresInt8'), u8(kCache, 'indexerScoresInt8'), f32(kScale, 'indexerScoresInt8'), rp, nKeys, pos);
    return this.t([rows, nKeys], out);
  }
  topk(scores: Tensor, k: number, positions: Tensor): Tensor {
    const [rows, n] = rowsCols(scores);
    expectShape('topk', 'positions', positions, [rows]);
    return this.t([rows, Math.min(k, n)], topkRowsRadix(f32(scores, 'topk'), rows, n, k, i32(positions, 'topk')));
  }
  mlaAttention(qLat: Tensor, qPe: Tensor, latent: Tensor, pages: SeqPages, positions: Tensor, indices: Tensor | null, scale: number): Tensor {
    if (qLat.shape.length !== 3 || qPe.shape.length !== 3) throw new ShapeError('mlaAttention', 'expects qLat [T, H, r] and qPe [T, H, dr]');
    const [rows, heads, r] = qLat.shape as [number, number, number];
    const dr = qPe.shape[2]!;
    expectShape('mlaAttention', 'qPe', qPe, [rows, heads, dr]);
    expectShape('mlaAttention', 'positions', positions, [rows]);
    const format: LatentFormat = latent.dtype === 'f32' ? 'f32' : latent.dtype === 'bf16' ? 'bf16' : 'fp8';
    if (latent.dtype !== 'f32' && latent.dtype !== 'bf16' && latent.dtype !== 'u8') {
      throw new ShapeError('mlaAttention', `the latent cache must be f32, bf16 or u8 (fp8 rows), got ${latent.dtype}`);
    }
    let latentWidth: number;
    try {
      latentWidth = latentRowWidth(format, r, dr);
    } catch (e) {
      throw new ShapeError('mlaAttention', (e as Error).message);
    }
    if (latent.shape.length !== 2 || latent.shape[1] !== latentWidth) {
      throw new ShapeError('mlaAttention', `${format} latent rows have ${latent.shape[1]} ${format === 'fp8' ? 'bytes' : 'values'}, expected ${latentWidth} (r ${r}, dr ${dr})`);
    }
    const data: LatentData =
      format === 'f32'
        ? { format, data: f32(latent, 'mlaAttention') }
        : format === 'bf16'
          ? { format, data: bf16(latent, 'mlaAttention') }
          : { format, data: u8(latent, 'mlaAttention') };
    if (indices && indices.shape[0] !== rows) throw new ShapeError('mlaAttention', `indices have ${indices.shape[0]} rows, queries ${rows}`);
    const idx = indices ? i32(indices, 'mlaAttention') : null;
    const width = indices ? indices.shape[1]! : 0;
    const pos = i32(positions, 'mlaAttention');
    const pageOf = rowPageMap(rowPages('mlaAttention', pages, rows, (t) => (idx ? lastSelected(idx, t, width, pos[t]) : pos[t])));
    const lat = cpu(latent, 'mlaAttention');
    if (this.rt && lat.ptr !== undefined && r % 4 === 0 && dr % 4 === 0) {
      const out = this.rt.mlaAttentionPaged(
        f32(qLat, 'mlaAttention'), f32(qPe, 'mlaAttention'), { ptr: lat.ptr, format }, pos, idx, width,
        { rows, heads, r, dr }, scale, pageOf,
      );
      if (out) return this.t([rows, heads, r], out);
    }
    const out = mlaAttention(
      f32(qLat, 'mlaAttention'), f32(qPe, 'mlaAttention'), data, latentWidth, pageOf,
      pos, idx, width, { rows, heads, r, dr }, scale,
    );
    return this.t([rows, heads, r], out);
  }

  // ---- mixture of experts ----
  moeRoute(logits: Tensor, bias: Tensor | null, opts: RouteOptions, forced: Tensor | null): { experts: Tensor; weights: Tensor; chosen: Tensor } {
    const [rows, n] = rowsCols(logits);
    if (bias) expectShape('moeRoute', 'bias', bias, [n]);
    if (forced) expectShape('moeRoute', 'forced experts', forced, [rows, opts.topk]);
    const r = moeRoute(f32(logits, 'moeRoute'), rows, n, bias ? f32(bias, 'moeRoute') : null, opts, forced ? i32(forced, 'moeRoute') : null);
    const shape = [rows, opts.topk];
    return { experts: this.t(shape, r.experts), weights: this.t(shape, r.weights), chosen: this.t(shape, r.chosen) };
  }
  moeExperts(
    x: Tensor,
    experts: Tensor,
    weights: Tensor,
    gate: readonly Weight[],
    up: readonly Weight[],
    down: readonly Weight[],
    actQuant: ScaleFormat | null,
  ): Tensor {
    const [rows, dim] = rowsCols(x);
    const [er, k] = rowsCols(experts);
    if (er !== rows) throw new ShapeError('moeExperts', `${er} routed rows for ${rows} tokens`);
    const cw = (ws: readonly Weight[]) => ws.map((w) => weightOf(w, 'moeExperts'));
    const out = moeExperts(
      f32(x, 'moeExperts'), rows, dim, i32(experts, 'moeExperts'), f32(weights, 'moeExperts'), k, cw(gate), cw(up), cw(down), actQuant, this.linearFast,
    );
    return this.t(x.shape, out);
  }
}
