/**
 * Row and shape kernels on WebGPU: sliceLast, sliceRows, concatRows, gatherRows, argmax,
 * embedding and the cache scatter writeRows. CPU twins: cpu.ts (the shape ops, embedding via
 * cpu/weight.ts decodeRow, writeRows) and cpu/kernels/elementwise.ts argmaxRows.
 *
 * Storage: f32 and i32 one element per u32 word; bf16 two per word (element i in bits 16·(i&1));
 * u8 four per word (element i in byte i&3). Kernels that only move data work on u32 words, so
 * they are exact for every dtype they accept. Out-of-range indices (gatherRows rows, embedding
 * ids, writeRows pages and slots) cannot be checked on the host without a read-back: their rows
 * read as zeros (gather, embedding) or are skipped (writeRows), where the CPU throws.
 */
import type { DType } from '../../backend.js';
import { GpuError, type GpuDevice } from '../device.js';
import { E4M3_DECODE_WGSL, ORDER_KEY_WGSL } from './wgsl.js';

const WG = 64;
const ROW_WG = 256;

/** Bytes per element of a dtype. */
export function elementBytes(dtype: DType): number {
  return dtype === 'u8' ? 1 : dtype === 'bf16' ? 2 : 4;
}

function grid(gpu: GpuDevice, count: number, wg = WG): [number, number] {
  const groups = Math.max(1, Math.ceil(count / wg));
  const groupsX = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  return [groupsX, Math.ceil(groups / groupsX)];
}

function checkWord(op: string, dtype: DType, what: string, elems: number): void {
  if ((elems * elementBytes(dtype)) % 4 !== 0) {
    throw new GpuError(`${op}: ${what} of ${elems} ${dtype} elements is not a whole number of 4-byte words (WebGPU copies and writes whole u32 words)`);
  }
}

export const SLICE_LAST_WGSL = /* wgsl */ `
struct Params { rows: u32, n: u32, start: u32, len: u32, count: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (i >= p.count) { return; }
  let r = i / p.len;
  out[i] = x[r * p.n + p.start + i % p.len];
}
`;

/** x f32 or i32 [rows, n] → [rows, len], columns start..start+len-1. */
export function sliceLastGpu(gpu: GpuDevice, x: GPUBuffer, dtype: DType, rows: number, n: number, start: number, len: number): GPUBuffer {
  if (dtype !== 'f32' && dtype !== 'i32') throw new GpuError(`sliceLast: expects f32 or i32, got ${dtype}`);
  if (start < 0 || len < 0 || start + len > n) throw new GpuError(`sliceLast: [${start}, ${start + len}) is outside the last dimension ${n}`);
  const count = rows * len;
  const out = gpu.buffer(count * 4);
  if (count === 0) return out;
  const g = grid(gpu, count);
  gpu.dispatch(SLICE_LAST_WGSL, [x, out, gpu.uniforms(Uint32Array.of(rows, n, start, len, count, g[0]))], g);
  return out;
}

/** Rows start..start+len-1 of x [rows, rowElems] (any dtype whose row is whole u32 words) → [len, rowElems], a copy. */
export function sliceRowsGpu(gpu: GpuDevice, x: GPUBuffer, dtype: DType, rows: number, rowElems: number, start: number, len: number): GPUBuffer {
  checkWord('sliceRows', dtype, 'a row', rowElems);
  if (start < 0 || len < 0 || start + len > rows) throw new GpuError(`sliceRows: rows [${start}, ${start + len}) are outside the first dimension ${rows}`);
  const rowBytes = rowElems * elementBytes(dtype);
  const out = gpu.buffer(len * rowBytes);
  if (len * rowBytes === 0) return out;
  gpu.copy(x, start * rowBytes, out, 0, len * rowBytes);
  return out;
}

/** Parts [rows_i, rowElems] of one dtype (rows whole u32 words) stacked → [Σ rows_i, rowElems]. */
export function concatRowsGpu(gpu: GpuDevice, parts: readonly { buffer: GPUBuffer; rows: number }[], dtype: DType, rowElems: number): GPUBuffer {
  if (parts.length === 0) throw new GpuError('concatRows: no tensors to concatenate');
  checkWord('concatRows', dtype, 'a row', rowElems);
  const rowBytes = rowElems * elementBytes(dtype);
  const total = parts.reduce((s, p) => s + p.rows, 0);
  const out = gpu.buffer(total * rowBytes);
  let at = 0;
  for (const p of parts) {
    const bytes = p.rows * rowBytes;
    gpu.copy(p.buffer, 0, out, at, bytes);
    at += bytes;
  }
  return out;
}

export const GATHER_ROWS_WGSL = /* wgsl */ `
struct Params { nRows: u32, n: u32, m: u32, count: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (i >= p.count) { return; }
  let r = idx[i / p.n];
  if (r < 0 || u32(r) >= p.nRows) { out[i] = 0u; return; }
  out[i] = x[u32(r) * p.n + i % p.n];
}
`;

/** Rows of x f32 or i32 [nRows, n] at idx (i32 [m]) → [m, n]; out-of-range indices give zero rows. */
export function gatherRowsGpu(gpu: GpuDevice, x: GPUBuffer, dtype: DType, nRows: number, n: number, idx: GPUBuffer, m: number): GPUBuffer {
  if (dtype !== 'f32' && dtype !== 'i32') throw new GpuError(`gatherRows: expects f32 or i32, got ${dtype}`);
  const count = m * n;
  const out = gpu.buffer(count * 4);
  if (count === 0) return out;
  const g = grid(gpu, count);
  gpu.dispatch(GATHER_ROWS_WGSL, [x, idx, out, gpu.uniforms(Uint32Array.of(nRows, n, m, count, g[0]))], g);
  return out;
}

export const ARGMAX_WGSL = /* wgsl */ `
struct Params { rows: u32, n: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<i32>;
@group(0) @binding(2) var<uniform> p: Params;

const NONE: u32 = 0xffffffffu;
var<workgroup> bestK: array<u32, ${ROW_WG}>;
var<workgroup> bestI: array<u32, ${ROW_WG}>;

${ORDER_KEY_WGSL}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.y * p.groupsX + wg.x;
  if (row >= p.rows) { return; } // uniform across the workgroup
  let t = lid.x;
  let off = row * p.n;
  // As argmaxRows: only values > -inf count (NaN never), strictly greater keeps the first maximum.
  var bk = 0u;
  var bi = NONE;
  for (var j = t; j < p.n; j += ${ROW_WG}u) {
    let b = x[off + j];
    if ((b & 0x7fffffffu) > 0x7f800000u || b == 0xff800000u) { continue; }
    let k = orderKey(b);
    if (bi == NONE || k > bk) { bk = k; bi = j; }
  }
  bestK[t] = bk;
  bestI[t] = bi;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (t < s) {
      let k = bestK[t + s];
      let i = bestI[t + s];
      if (i != NONE && (bestI[t] == NONE || k > bestK[t] || (k == bestK[t] && i < bestI[t]))) {
        bestK[t] = k;
        bestI[t] = i;
      }
    }
    workgroupBarrier();
  }
  if (t == 0u) { out[row] = select(i32(bestI[0]), 0, bestI[0] == NONE); }
}
`;

/** argmax over the last dim of x f32 [rows, n] → i32 [rows]; the first maximum wins (NaN ignored, 0 if none), as argmaxRows. */
export function argmaxGpu(gpu: GpuDevice, x: GPUBuffer, rows: number, n: number): GPUBuffer {
  const out = gpu.buffer(rows * 4);
  if (rows === 0) return out;
  const groupsX = Math.min(rows, gpu.limits.maxComputeWorkgroupsPerDimension);
  const groupsY = Math.ceil(rows / groupsX);
  gpu.dispatch(ARGMAX_WGSL, [x, out, gpu.uniforms(Uint32Array.of(rows, n, groupsX))], [groupsX, groupsY]);
  return out;
}

export const EMBEDDING_WGSL = /* wgsl */ `
struct Params { vocab: u32, d: u32, count: u32, format: u32, bo: u32, bi: u32, kb: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> table: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

${E4M3_DECODE_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (i >= p.count) { return; }
  let id = ids[i / p.d];
  if (id < 0 || u32(id) >= p.vocab) { out[i] = 0.0; return; }
  let row = u32(id);
  let j = i % p.d;
  let e = row * p.d + j;
  switch (p.format) {
    case 0u: { out[i] = bitcast<f32>(table[e]); }
    case 1u: { out[i] = bitcast<f32>(((table[e >> 1u] >> (16u * (e & 1u))) & 0xffffu) << 16u); }
    default: {
      let code = (table[e >> 2u] >> (8u * (e & 3u))) & 0xffu;
      out[i] = e4m3(code) * scales[(row / p.bo) * p.kb + j / p.bi];
    }
  }
}
`;

export interface EmbeddingTableGpu {
  format: 'f32' | 'bf16' | 'fp8';
  /** Rows (vocabulary size). */
  outDim: number;
  /** Row width d. */
  inDim: number;
  /** Values [outDim, inDim] in the storage convention of the format (fp8: e4m3 codes, 4 per word). */
  data: GPUBuffer;
  /** fp8 only: f32 block scales [ceil(outDim / bo), ceil(inDim / bi)]. */
  scales?: GPUBuffer | null;
  /** fp8 only: [bo, bi]. */
  block?: [number, number];
}

/** Rows of an embedding table at ids (i32 [T]) → f32 [T, d], decoded as decodeRow does; out-of-range ids give zero rows. */
export function embeddingGpu(gpu: GpuDevice, table: EmbeddingTableGpu, ids: GPUBuffer, tokens: number): GPUBuffer {
  const d = table.inDim;
  const count = tokens * d;
  const out = gpu.buffer(count * 4);
  if (count === 0) return out;
  let format = 0;
  let [bo, bi] = [1, 1];
  let scales = table.data;
  if (table.format === 'bf16') format = 1;
  else if (table.format === 'fp8') {
    if (!table.scales || !table.block) throw new GpuError('embedding: an fp8 table needs block scales and a block shape');
    format = 2;
    [bo, bi] = table.block;
    scales = table.scales;
  }
  const g = grid(gpu, count);
  const params = gpu.uniforms(Uint32Array.of(table.outDim, d, count, format, bo, bi, Math.ceil(d / bi), g[0]));
  gpu.dispatch(EMBEDDING_WGSL, [table.data, scales, ids, out, params], g);
  return out;
}

export const WRITE_ROWS_WGSL = /* wgsl */ `
struct Params { slots: u32, widthW: u32, rows: u32, nW: u32, colW: u32, pageSize: u32, pages: u32, count: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read_write> dst: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<i32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> src: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (i >= p.count) { return; }
  let t = i / p.nW;
  let pos = positions[t];
  if (pos < 0) { return; }
  let page = u32(pos) / p.pageSize;
  if (page >= p.pages) { return; }
  let base = table[page];
  if (base < 0) { return; }
  let slot = u32(base) * p.pageSize + u32(pos) % p.pageSize;
  if (slot >= p.slots) { return; }
  dst[slot * p.widthW + p.colW + i % p.nW] = src[i];
}
`;

export interface WriteRowsGpuArgs {
  /** The cache [slots, width] of `dtype`, written in place. */
  dst: GPUBuffer;
  dtype: DType;
  slots: number;
  width: number;
  /** i32 [pages]: the block table; slot(p) = table[p / pageSize] · pageSize + p % pageSize. */
  table: GPUBuffer;
  nPages: number;
  pageSize: number;
  /** i32 [rows]. */
  positions: GPUBuffer;
  /** [rows, n] of `dtype`. */
  src: GPUBuffer;
  rows: number;
  n: number;
  colOffset: number;
}

/**
 * dst[slot(positions[t]), colOffset .. colOffset + n) = src[t, :]. f32 and i32 always; bf16 and u8
 * when n, colOffset and width are whole u32 words (the kernel writes words, so it never races on
 * a word shared by two rows). Rows whose page or slot is out of range are skipped.
 */
export function writeRowsGpu(gpu: GpuDevice, a: WriteRowsGpuArgs): void {
  const eb = elementBytes(a.dtype);
  if ((a.n * eb) % 4 !== 0 || (a.colOffset * eb) % 4 !== 0 || (a.width * eb) % 4 !== 0) {
    throw new GpuError(
      `writeRows: ${a.dtype} rows need n (${a.n}), colOffset (${a.colOffset}) and the cache width (${a.width}) to be whole 4-byte words on WebGPU`,
    );
  }
  if (a.colOffset < 0 || a.colOffset + a.n > a.width) throw new GpuError(`writeRows: columns [${a.colOffset}, ${a.colOffset + a.n}) exceed the cache row ${a.width}`);
  if (a.pageSize <= 0) throw new GpuError(`writeRows: page size ${a.pageSize}`);
  const nW = (a.n * eb) / 4;
  const count = a.rows * nW;
  if (count === 0) return;
  const g = grid(gpu, count);
  const params = gpu.uniforms(Uint32Array.of(a.slots, (a.width * eb) / 4, a.rows, nW, (a.colOffset * eb) / 4, a.pageSize, a.nPages, count, g[0]));
  gpu.dispatch(WRITE_ROWS_WGSL, [a.dst, a.table, a.positions, a.src, params], g);
}
