/**
 * The WebGPU backend: the Backend interface on GPU buffers, through WGSL kernels (webgpu/kernels/,
 * each tested against its CPU twin). Ops are dispatched in order on the device's queue as they are
 * called; only `read` waits. Works with Dawn in Node (the `webgpu` package, loaded lazily) and with
 * `navigator.gpu` in browsers: nothing here uses a Node-only API.
 *
 * Storage: f32 and i32 one element per 4-byte word, bf16 two per word, u8 four per word (element i
 * in the low bytes first: the little-endian layout of the host arrays, so uploads are plain copies).
 */
import {
  expectShape,
  int8ScanShape,
  latentRowWidth,
  numel,
  sameShape,
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
import { checkSeqPagesShape } from './seq-pages.js';
import { GpuDevice, type GpuOptions } from './webgpu/device.js';
import { addGpu, layerNormGpu, mulGpu, rmsNormGpu, scaleGpu, swigluGpu } from './webgpu/kernels/elementwise.js';
import { hadamardGpu } from './webgpu/kernels/hadamard.js';
import { headMatmulGpu } from './webgpu/kernels/head-matmul.js';
import { indexerScoresGpu } from './webgpu/kernels/indexer.js';
import { indexerScoresInt8Gpu, int8ScanFormFor, requantInt8Gpu } from './webgpu/kernels/indexer-int8.js';
import { linearGpu } from './webgpu/kernels/linear.js';
import { mlaAttentionGpu, type MlaGpuArgs } from './webgpu/kernels/mla-attention.js';
import { mlaAttentionMatrixGpu, mlaMatrixAvailable } from './webgpu/kernels/mla-attention-matrix.js';
import { mlaAttentionMatrix2Gpu, mlaMatrix2Available, TENSOR_CORE_ATTENTION } from './webgpu/kernels/mla-attention-matrix2.js';
import type { GpuPages } from './webgpu/kernels/pages.js';
import { dequantFp8Gpu, quantFp8Gpu } from './webgpu/kernels/quant.js';
import { ropeGpu } from './webgpu/kernels/rope.js';
import { topkGpu } from './webgpu/kernels/topk.js';
import * as rowsK from './webgpu/kernels/rows.js';
import { packLatentGpu } from './webgpu/kernels/latent.js';
import { linearFp8Gpu } from './webgpu/kernels/linear-fp8.js';
import { moeRouteGpu, type GpuExpertWeight } from './webgpu/kernels/moe.js';
import { moeExpertsGroupedGpu } from './webgpu/kernels/moe-grouped.js';

const BYTES: Record<DType, number> = { f32: 4, i32: 4, bf16: 2, u8: 1 };

export class GpuTensor implements Tensor {
  readonly size: number;
  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly buffer: GPUBuffer,
  ) {
    this.size = numel(shape);
  }
  get bytes(): number {
    return this.size * BYTES[this.dtype];
  }
}

export class GpuWeight implements Weight {
  constructor(
    readonly format: HostWeight['format'],
    readonly outDim: number,
    readonly inDim: number,
    /** Values in the storage convention of the format (fp8: e4m3 codes). */
    readonly data: GPUBuffer,
    /** fp8 only: block scales [ceil(outDim / bo), ceil(inDim / bi)]. */
    readonly scales: GPUBuffer | null,
    readonly block: [number, number],
  ) {}

  /** The form the MoE kernels take. */
  expert(): GpuExpertWeight {
    return this.format === 'fp8'
      ? { format: 'fp8', outDim: this.outDim, inDim: this.inDim, codes: this.data, scaleInv: this.scales!, block: this.block }
      : { format: this.format, outDim: this.outDim, inDim: this.inDim, data: this.data };
  }
}

function gt(t: Tensor, op: string, dtype?: DType): GpuTensor {
  if (!(t instanceof GpuTensor)) throw new ShapeError(op, 'tensor does not belong to the WebGPU backend');
  if (dtype !== undefined && t.dtype !== dtype) throw new ShapeError(op, `expected a ${dtype} tensor, got ${t.dtype}`);
  return t;
}

function gw(w: Weight, op: string): GpuWeight {
  if (!(w instanceof GpuWeight)) throw new ShapeError(op, 'weight does not belong to the WebGPU backend');
  return w;
}

function rowsCols(t: Tensor): [number, number] {
  const cols = t.shape.length === 0 ? 1 : t.shape[t.shape.length - 1]!;
  return [cols === 0 ? 0 : t.size / cols, cols];
}

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  /** Every op that takes SeqPages runs the rows of several sequences (rowSeq) in one grid. */
  readonly multiSequence = true;
  /** Tensors created inside the current scopes, innermost last. */
  private readonly scopes: GpuTensor[][] = [];

  /**
   * MLA attention on tensor cores (f16 operands, f32 accumulation) where the device has them and the
   * shapes fit (mla-attention-matrix.ts); DSA_WEBGPU_ATTENTION=f32 keeps the f32 kernel everywhere.
   */
  readonly tensorCoreAttention: boolean;
  /** Which tensor-core kernel: TENSOR_CORE_ATTENTION (mla-attention-matrix2.ts), or DSA_WEBGPU_ATTENTION=matrix|matrix2. */
  readonly tensorCoreForm: 'matrix' | 'matrix2';

  private constructor(readonly gpu: GpuDevice) {
    const env = typeof process !== 'undefined' ? process.env?.DSA_WEBGPU_ATTENTION : undefined;
    this.tensorCoreAttention = env !== 'f32';
    this.tensorCoreForm = env === 'matrix' || env === 'matrix2' ? env : TENSOR_CORE_ATTENTION;
  }

  static async create(opts: GpuOptions = {}): Promise<WebGpuBackend> {
    return new WebGpuBackend(await GpuDevice.create(opts));
  }

  /** Wraps a kernel's output buffer as a tensor (tracked by the current scope). */
  private t(shape: readonly number[], dtype: DType, buffer: GPUBuffer): GpuTensor {
    const t = new GpuTensor([...shape], dtype, buffer);
    this.scopes[this.scopes.length - 1]?.push(t);
    return t;
  }

  /**
   * The block table of an op over `rows` rows, checked on the host as every backend checks it
   * (seq-pages.ts): one sequence's i32 [pages], or with rowSeq (i32 [rows]) an i32 [seqs, maxPages]
   * table whose row rowSeq[t] row t uses. rowSeq's values live on the device: a kernel skips a row
   * or entry whose rowSeq is outside 0..seqs−1, where the CPU throws.
   */
  private pagesArgs(op: string, pages: SeqPages, rows: number): GpuPages {
    const table = gt(pages.blockTable, op);
    const rowSeq = pages.rowSeq ? gt(pages.rowSeq, op) : null;
    checkSeqPagesShape(op, pages, rows);
    if (!rowSeq) return { table: table.buffer, nPages: table.size, pageSize: pages.pageSize, rowSeq: null, seqs: 1 };
    const [seqs, maxPages] = table.shape as [number, number];
    return { table: table.buffer, nPages: maxPages, pageSize: pages.pageSize, rowSeq: rowSeq.buffer, seqs };
  }

  // ---- memory ----
  upload(data: HostArray, shape: readonly number[]): Tensor {
    if (numel(shape) !== data.length) throw new ShapeError('upload', `shape [${shape.join(', ')}] does not hold ${data.length} values`);
    const dtype: DType = data instanceof Float32Array ? 'f32' : data instanceof Int32Array ? 'i32' : data instanceof Uint16Array ? 'bf16' : 'u8';
    return this.t(shape, dtype, this.gpu.buffer(data.byteLength, data));
  }
  zeros(shape: readonly number[], dtype: DType): Tensor {
    return this.t(shape, dtype, this.gpu.buffer(numel(shape) * BYTES[dtype]));
  }
  async read(t: Tensor): Promise<HostArray> {
    const g = gt(t, 'read');
    const bytes = await this.gpu.read(g.buffer, g.bytes);
    if (g.dtype === 'f32') return new Float32Array(bytes);
    if (g.dtype === 'i32') return new Int32Array(bytes);
    if (g.dtype === 'bf16') return new Uint16Array(bytes);
    return new Uint8Array(bytes);
  }
  reshape(t: Tensor, shape: readonly number[]): Tensor {
    const g = gt(t, 'reshape');
    if (numel(shape) !== g.size) throw new ShapeError('reshape', `cannot view [${g.shape.join(', ')}] as [${shape.join(', ')}]`);
    return new GpuTensor([...shape], g.dtype, g.buffer);
  }
  /** Frees the tensor's buffer now (shared with its reshapes). */
  dispose(t: Tensor): void {
    this.gpu.release(gt(t, 'dispose').buffer);
  }
  uploadWeight(w: HostWeight): Weight {
    const n = w.outDim * w.inDim;
    if (w.data.length !== n) throw new ShapeError('uploadWeight', `${w.format} weight [${w.outDim}, ${w.inDim}] needs ${n} values, got ${w.data.length}`);
    const data = this.gpu.buffer(w.data.byteLength, w.data);
    if (w.format !== 'fp8') return new GpuWeight(w.format, w.outDim, w.inDim, data, null, [1, 1]);
    const want = Math.ceil(w.outDim / w.block[0]) * Math.ceil(w.inDim / w.block[1]);
    if (w.scaleInv.length !== want) throw new ShapeError('uploadWeight', `fp8 weight [${w.outDim}, ${w.inDim}] needs ${want} block scales, got ${w.scaleInv.length}`);
    return new GpuWeight('fp8', w.outDim, w.inDim, data, this.gpu.buffer(w.scaleInv.byteLength, w.scaleInv), w.block);
  }
  scope<R>(fn: () => R): R {
    const created: GpuTensor[] = [];
    this.scopes.push(created);
    let result: R;
    try {
      result = fn();
    } finally {
      this.scopes.pop();
    }
    const keep = new Set<GPUBuffer>();
    const visit = (v: unknown): void => {
      if (v instanceof GpuTensor) keep.add(v.buffer);
      else if (Array.isArray(v)) v.forEach(visit);
      else if (v && typeof v === 'object') Object.values(v).forEach(visit);
    };
    visit(result);
    for (const t of created) {
      if (keep.has(t.buffer)) this.scopes[this.scopes.length - 1]?.push(t);
      else this.gpu.release(t.buffer);
    }
    return result;
  }

  // ---- element-wise and shape ----
  add(a: Tensor, b: Tensor): Tensor {
    sameShape('add', a, b);
    return this.t(a.shape, 'f32', addGpu(this.gpu, gt(a, 'add', 'f32').buffer, gt(b, 'add', 'f32').buffer, a.size));
  }
  mul(a: Tensor, b: Tensor): Tensor {
    sameShape('mul', a, b);
    return this.t(a.shape, 'f32', mulGpu(this.gpu, gt(a, 'mul', 'f32').buffer, gt(b, 'mul', 'f32').buffer, a.size));
  }
  scale(a: Tensor, c: number): Tensor {
    return this.t(a.shape, 'f32', scaleGpu(this.gpu, gt(a, 'scale', 'f32').buffer, c, a.size));
  }
  swiglu(gate: Tensor, up: Tensor): Tensor {
    sameShape('swiglu', gate, up);
    return this.t(gate.shape, 'f32', swigluGpu(this.gpu, gt(gate, 'swiglu', 'f32').buffer, gt(up, 'swiglu', 'f32').buffer, gate.size));
  }
  sliceLast(x: Tensor, start: number, len: number): Tensor {
    const g = gt(x, 'sliceLast');
    const [rows, n] = rowsCols(g);
    if (start < 0 || len < 0 || start + len > n) throw new ShapeError('sliceLast', `[${start}, ${start + len}) is outside the last dimension ${n}`);
    return this.t([...g.shape.slice(0, -1), len], g.dtype, rowsK.sliceLastGpu(this.gpu, g.buffer, g.dtype, rows, n, start, len));
  }
  sliceRows(x: Tensor, start: number, len: number): Tensor {
    const g = gt(x, 'sliceRows');
    const rows = g.shape[0] ?? 0;
    if (g.shape.length === 0 || start < 0 || len < 0 || start + len > rows) {
      throw new ShapeError('sliceRows', `rows [${start}, ${start + len}) are outside the first dimension ${rows}`);
    }
    const rowElems = rows === 0 ? 0 : g.size / rows;
    return this.t([len, ...g.shape.slice(1)], g.dtype, rowsK.sliceRowsGpu(this.gpu, g.buffer, g.dtype, rows, rowElems, start, len));
  }
  concatRows(parts: readonly Tensor[]): Tensor {
    if (parts.length === 0) throw new ShapeError('concatRows', 'no tensors to concatenate');
    const gs = parts.map((p) => gt(p, 'concatRows', parts[0]!.dtype));
    const tail = gs[0]!.shape.slice(1);
    for (const g of gs) {
      if (g.shape.length !== gs[0]!.shape.length || g.shape.slice(1).some((d, i) => d !== tail[i])) {
        throw new ShapeError('concatRows', `[${g.shape.join(', ')}] does not stack with [${gs[0]!.shape.join(', ')}]`);
      }
    }
    const rows = gs.reduce((a, g) => a + g.shape[0]!, 0);
    const rowElems = tail.reduce((a, d) => a * d, 1);
    return this.t([rows, ...tail], gs[0]!.dtype, rowsK.concatRowsGpu(this.gpu, gs.map((g) => ({ buffer: g.buffer, rows: g.shape[0]! })), gs[0]!.dtype, rowElems));
  }
  gatherRows(x: Tensor, rows: Tensor): Tensor {
    const g = gt(x, 'gatherRows');
    const idx = gt(rows, 'gatherRows', 'i32');
    const [nRows, n] = rowsCols(g);
    return this.t([idx.size, n], g.dtype, rowsK.gatherRowsGpu(this.gpu, g.buffer, g.dtype, nRows, n, idx.buffer, idx.size));
  }
  argmax(x: Tensor): Tensor {
    const [rows, n] = rowsCols(x);
    return this.t([rows], 'i32', rowsK.argmaxGpu(this.gpu, gt(x, 'argmax', 'f32').buffer, rows, n));
  }

  // ---- layers ----
  embedding(table: Weight, ids: Tensor): Tensor {
    const w = gw(table, 'embedding');
    const t = gt(ids, 'embedding', 'i32');
    return this.t([t.size, w.inDim], 'f32', rowsK.embeddingGpu(this.gpu, w, t.buffer, t.size));
  }
  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
    const [rows, n] = rowsCols(x);
    expectShape('rmsNorm', 'weight', w, [n]);
    return this.t(x.shape, 'f32', rmsNormGpu(this.gpu, gt(x, 'rmsNorm', 'f32').buffer, gt(w, 'rmsNorm', 'f32').buffer, rows, n, eps));
  }
  layerNorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
    const [rows, n] = rowsCols(x);
    expectShape('layerNorm', 'weight', w, [n]);
    expectShape('layerNorm', 'bias', b, [n]);
    return this.t(x.shape, 'f32', layerNormGpu(this.gpu, gt(x, 'layerNorm', 'f32').buffer, gt(w, 'layerNorm', 'f32').buffer, gt(b, 'layerNorm', 'f32').buffer, rows, n, eps));
  }
  linear(x: Tensor, w: Weight, actQuant: ScaleFormat | null): Tensor {
    const gwt = gw(w, 'linear');
    const [rows, k] = rowsCols(x);
    if (k !== gwt.inDim) throw new ShapeError('linear', `input has ${k} features, the weight [${gwt.outDim}, ${gwt.inDim}] expects ${gwt.inDim}`);
    const xb = gt(x, 'linear', 'f32').buffer;
    const out =
      gwt.format === 'fp8'
        ? linearFp8Gpu(this.gpu, xb, gwt.data, gwt.scales!, gwt.block[0], gwt.block[1], rows, k, gwt.outDim, actQuant)
        : linearGpu(this.gpu, xb, gwt.data, gwt.format, rows, k, gwt.outDim);
    return this.t([...x.shape.slice(0, -1), gwt.outDim], 'f32', out);
  }
  headMatmul(x: Tensor, w: Tensor, transposeW: boolean): Tensor {
    if (x.shape.length !== 3 || w.shape.length !== 3) throw new ShapeError('headMatmul', 'expects x [T, H, n] and w [H, ., .]');
    const [rows, heads, n] = x.shape as [number, number, number];
    const [wh, a, b] = w.shape as [number, number, number];
    const inner = transposeW ? b : a;
    const m = transposeW ? a : b;
    if (wh !== heads || inner !== n) throw new ShapeError('headMatmul', `x [${x.shape.join(', ')}] does not match w [${w.shape.join(', ')}]${transposeW ? 'ᵀ' : ''}`);
    return this.t([rows, heads, m], 'f32', headMatmulGpu(this.gpu, gt(x, 'headMatmul', 'f32').buffer, gt(w, 'headMatmul', 'f32').buffer, rows, heads, n, m, transposeW));
  }
  rope(x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor, offset: number, interleaved: boolean): Tensor {
    if (x.shape.length !== 3) throw new ShapeError('rope', `expects x [T, heads, dim], got [${x.shape.join(', ')}]`);
    const [rows, heads, dim] = x.shape as [number, number, number];
    expectShape('rope', 'positions', positions, [rows]);
    sameShape('rope', cos, sin);
    const [maxPos, half] = cos.shape as [number, number];
    if (offset + 2 * half > dim) throw new ShapeError('rope', `rotary dims [${offset}, ${offset + 2 * half}) exceed the head size ${dim}`);
    const out = ropeGpu(
      this.gpu, gt(x, 'rope', 'f32').buffer, gt(positions, 'rope', 'i32').buffer, gt(cos, 'rope', 'f32').buffer, gt(sin, 'rope', 'f32').buffer,
      rows, heads, dim, maxPos, half, offset, interleaved,
    );
    return this.t(x.shape, 'f32', out);
  }
  hadamard(x: Tensor): Tensor {
    const [rows, n] = rowsCols(x);
    return this.t(x.shape, 'f32', hadamardGpu(this.gpu, gt(x, 'hadamard', 'f32').buffer, rows, n));
  }
  quantFp8(x: Tensor, block: number, fmt: ScaleFormat): { q: Tensor; s: Tensor } {
    const [rows, n] = rowsCols(x);
    const { q, s, blocks } = quantFp8Gpu(this.gpu, gt(x, 'quantFp8', 'f32').buffer, rows, n, block, fmt);
    return { q: this.t(x.shape, 'u8', q), s: this.t([...x.shape.slice(0, -1), blocks], 'f32', s) };
  }
  dequantFp8(q: Tensor, s: Tensor, block: number): Tensor {
    const [rows, n] = rowsCols(q);
    if (s.size !== rows * Math.ceil(n / block)) throw new ShapeError('dequantFp8', `expected ${rows * Math.ceil(n / block)} scales, got ${s.size}`);
    return this.t(q.shape, 'f32', dequantFp8Gpu(this.gpu, gt(q, 'dequantFp8', 'u8').buffer, gt(s, 'dequantFp8', 'f32').buffer, rows, n, block));
  }

  // ---- cache ----
  writeRows(dst: Tensor, pages: SeqPages, positions: Tensor, src: Tensor, colOffset: number): void {
    const d = gt(dst, 'writeRows');
    const s = gt(src, 'writeRows', d.dtype);
    const [, width] = rowsCols(d);
    const [rows, n] = rowsCols(s);
    if (positions.size !== rows) throw new ShapeError('writeRows', `${rows} rows but ${positions.size} positions`);
    if (colOffset + n > width) throw new ShapeError('writeRows', `columns [${colOffset}, ${colOffset + n}) exceed the cache row ${width}`);
    const p = this.pagesArgs('writeRows', pages, rows);
    rowsK.writeRowsGpu(this.gpu, {
      dst: d.buffer, dtype: d.dtype, slots: d.shape[0]!, width, src: s.buffer, rows, n, colOffset,
      positions: gt(positions, 'writeRows', 'i32').buffer, table: p.table, nPages: p.nPages, pageSize: p.pageSize, rowSeq: p.rowSeq, seqs: p.seqs,
    });
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
    const dtype: DType = format === 'f32' ? 'f32' : format === 'bf16' ? 'bf16' : 'u8';
    return this.t([rows, width], dtype, packLatentGpu(this.gpu, gt(ckv, 'packLatent', 'f32').buffer, gt(kPe, 'packLatent', 'f32').buffer, rows, r, dr, format));
  }

  // ---- DSA ----
  indexerScores(q8: Tensor, w: Tensor, kCache: Tensor, kScale: Tensor, pages: SeqPages, nKeys: number, positions: Tensor): Tensor {
    if (q8.shape.length !== 3) throw new ShapeError('indexerScores', `expects q8 [T, H, D], got [${q8.shape.join(', ')}]`);
    const [rows, heads, dim] = q8.shape as [number, number, number];
    expectShape('indexerScores', 'weights', w, [rows, heads]);
    expectShape('indexerScores', 'positions', positions, [rows]);
    if (kCache.shape[1] !== dim) throw new ShapeError('indexerScores', `key cache rows have ${kCache.shape[1]} values, queries ${dim}`);
    const p = this.pagesArgs('indexerScores', pages, rows);
    const out = indexerScoresGpu(this.gpu, {
      q8: gt(q8, 'indexerScores', 'u8').buffer, w: gt(w, 'indexerScores', 'f32').buffer,
      kCache: gt(kCache, 'indexerScores', 'u8').buffer, kScale: gt(kScale, 'indexerScores', 'f32').buffer,
      table: p.table, tableLength: p.nPages, pageSize: p.pageSize, rowSeq: p.rowSeq, seqs: p.seqs,
      positions: gt(positions, 'indexerScores', 'i32').buffer, rows, heads, dim, nKeys,
    });
    return this.t([rows, nKeys], 'f32', out);
  }
  requantInt8(codes: Tensor, scaleIn: Tensor): { q: Tensor; s: Tensor } {
    const [rows, dim] = rowsCols(codes);
    if (scaleIn.size !== rows) throw new ShapeError('requantInt8', `expects one scale per row (${rows}), got ${scaleIn.size}`);
    if (dim % 4) throw new ShapeError('requantInt8', `rows of ${dim} codes: a multiple of 4 needed`);
    const r = requantInt8Gpu(this.gpu, gt(codes, 'requantInt8', 'u8').buffer, gt(scaleIn, 'requantInt8', 'f32').buffer, rows, dim);
    return { q: this.t(codes.shape, 'u8', r.codes), s: this.t([rows, 1], 'f32', r.scale) };
  }
  indexerScoresInt8(qI8: Tensor, wq: Tensor, kCache: Tensor, kScale: Tensor, pages: SeqPages, nKeys: number, positions: Tensor): Tensor {
    const [rows, heads, dim] = int8ScanShape(qI8, wq, kCache, positions);
    const p = this.pagesArgs('indexerScoresInt8', pages, rows);
    if (nKeys > p.nPages * p.pageSize) throw new ShapeError('indexerScoresInt8', `${nKeys} keys exceed the sequence's ${p.nPages} cache pages of ${p.pageSize}`);
    const form = int8ScanFormFor(this.gpu, heads, dim, p.pageSize);
    if (!form) throw new ShapeError('indexerScoresInt8', `no int8 indexer kernel runs here for ${heads} heads of ${dim} and pages of ${p.pageSize} keys (shared memory or page size)`);
    const out = this.gpu.buffer(rows * nKeys * 4);
    if (rows > 0 && nKeys > 0) {
      const multi = p.rowSeq ? { rowSeq: p.rowSeq, tableStride: p.nPages, seqs: p.seqs } : null;
      indexerScoresInt8Gpu(this.gpu, {
        qI8: gt(qI8, 'indexerScoresInt8', 'u8').buffer, wq: gt(wq, 'indexerScoresInt8', 'f32').buffer,
        kI8: gt(kCache, 'indexerScoresInt8', 'u8').buffer, kScale: gt(kScale, 'indexerScoresInt8', 'f32').buffer,
        table: p.table, pageSize: p.pageSize, positions: gt(positions, 'indexerScoresInt8', 'i32').buffer, rows, heads, dim, nKeys,
      }, out, multi, form);
    }
    return this.t([rows, nKeys], 'f32', out);
  }
  topk(scores: Tensor, k: number, positions: Tensor): Tensor {
    const [rows, n] = rowsCols(scores);
    expectShape('topk', 'positions', positions, [rows]);
    return this.t([rows, Math.min(k, n)], 'i32', topkGpu(this.gpu, gt(scores, 'topk', 'f32').buffer, gt(positions, 'topk', 'i32').buffer, rows, n, k));
  }
  mlaAttention(qLat: Tensor, qPe: Tensor, latent: Tensor, pages: SeqPages, positions: Tensor, indices: Tensor | null, scale: number): Tensor {
    if (qLat.shape.length !== 3 || qPe.shape.length !== 3) throw new ShapeError('mlaAttention', 'expects qLat [T, H, r] and qPe [T, H, dr]');
    const [rows, heads, r] = qLat.shape as [number, number, number];
    const dr = qPe.shape[2]!;
    expectShape('mlaAttention', 'qPe', qPe, [rows, heads, dr]);
    expectShape('mlaAttention', 'positions', positions, [rows]);
    const lat = gt(latent, 'mlaAttention');
    if (lat.dtype === 'i32') throw new ShapeError('mlaAttention', `the latent cache must be f32, bf16 or u8 (fp8 rows), got ${lat.dtype}`);
    const format: LatentFormat = lat.dtype === 'f32' ? 'f32' : lat.dtype === 'bf16' ? 'bf16' : 'fp8';
    let width: number;
    try {
      width = latentRowWidth(format, r, dr);
    } catch (e) {
      throw new ShapeError('mlaAttention', (e as Error).message);
    }
    if (lat.shape.length !== 2 || lat.shape[1] !== width) {
      throw new ShapeError('mlaAttention', `${format} latent rows have ${lat.shape[1]} ${format === 'fp8' ? 'bytes' : 'values'}, expected ${width} (r ${r}, dr ${dr})`);
    }
    if (indices && indices.shape[0] !== rows) throw new ShapeError('mlaAttention', `indices have ${indices.shape[0]} rows, queries ${rows}`);
    const p = this.pagesArgs('mlaAttention', pages, rows);
    const idx = indices ? gt(indices, 'mlaAttention', 'i32') : null;
    const shape = { rows, heads, r, dr };
    const tc = !this.tensorCoreAttention
      ? null
      : this.tensorCoreForm === 'matrix2' && mlaMatrix2Available(this.gpu, shape, format)
        ? mlaAttentionMatrix2Gpu
        : mlaMatrixAvailable(this.gpu, shape, format)
          ? mlaAttentionMatrixGpu
          : null;
    const args: MlaGpuArgs = {
      qLat: gt(qLat, 'mlaAttention', 'f32').buffer, qPe: gt(qPe, 'mlaAttention', 'f32').buffer, latent: lat.buffer, format, pages: p,
      positions: gt(positions, 'mlaAttention', 'i32').buffer, indices: idx ? idx.buffer : null, k: idx ? idx.shape[1]! : 0,
      nKeys: p.nPages * p.pageSize, shape: { rows, heads, r, dr }, scale,
    };
    return this.t([rows, heads, r], 'f32', (tc ?? mlaAttentionGpu)(this.gpu, args));
  }

  // ---- mixture of experts ----
  moeRoute(logits: Tensor, bias: Tensor | null, opts: RouteOptions, forced: Tensor | null): { experts: Tensor; weights: Tensor; chosen: Tensor } {
    const [rows, n] = rowsCols(logits);
    if (bias) expectShape('moeRoute', 'bias', bias, [n]);
    if (forced) expectShape('moeRoute', 'forced experts', forced, [rows, opts.topk]);
    const r = moeRouteGpu(
      this.gpu, gt(logits, 'moeRoute', 'f32').buffer, rows, n, bias ? gt(bias, 'moeRoute', 'f32').buffer : null, opts,
      forced ? gt(forced, 'moeRoute', 'i32').buffer : null,
    );
    const shape = [rows, opts.topk];
    return { experts: this.t(shape, 'i32', r.experts), weights: this.t(shape, 'f32', r.weights), chosen: this.t(shape, 'i32', r.chosen) };
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
    const ws = (list: readonly Weight[]) => list.map((w) => gw(w, 'moeExperts').expert());
    const out = moeExpertsGroupedGpu(
      this.gpu, gt(x, 'moeExperts', 'f32').buffer, rows, dim, gt(experts, 'moeExperts', 'i32').buffer, gt(weights, 'moeExperts', 'f32').buffer, k,
      ws(gate), ws(up), ws(down), actQuant,
    );
    return this.t(x.shape, 'f32', out);
  }

  destroy(): void {
    this.gpu.destroy();
  }
}
