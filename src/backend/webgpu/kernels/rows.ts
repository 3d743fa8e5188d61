/**
 * Row and shape kernels on WebGPU: sliceLast, sliceRows, concatRows, gatherRows, argmax,
 * embedding and the cache scatter writeRows. CPU twins: cpu.ts (the shape ops, embedding via
 * cpu/weight.ts decodeRow, writeRows) and cpu/kernels/elementwise.ts argmaxRows.
 *
 * Storage: f32 and i32 one element per u32 word; bf16 two per word (element i in bits 16·(i&1));
 * u8 four per word (element i in byte i&3). Kernels that only move data work on u32 words, so
 * they are exact for every dtype. sliceLast and gatherRows build each output word from its
 * elements; sliceRows and concatRows copy whole words where rows are whole words and otherwise go
 * element by element (sliceLast's kernel; the scatter kernel below); writeRows writes whole words
 * where rows, offsets and the cache width are whole words, and otherwise sets each element's bits
 * with atomicAnd/atomicOr (rows sharing a word never race). Out-of-range indices (gatherRows rows, embedding
 * ids, writeRows pages and slots) cannot be checked on the host without a read-back: their rows
 * read as zeros (gather, embedding) or are skipped (writeRows), where the CPU throws.
 */
import type { DType } from '../../backend.js';
import { GpuError, type GpuDevice } from '../device.js';
import { E4M3_DECODE_WGSL, ORDER_KEY_WGSL } from './wgsl.js';
import { PAGE_FIELDS, PAGES_WGSL, pageParams, pagesOfArgs, rowSeqBinding, type GpuPages } from './pages.js';

const WG = 64;
const ROW_WG = 256;

/** Bytes per element of a dtype. */
export function elementBytes(dtype: DType): number {
  return dtype === 'u8' ? 1 : dtype === 'bf16' ? 2 : 4;
}

/** Whether `elems` elements of dtype fill whole u32 words. */
function wholeWords(dtype: DType, elems: number): boolean {
  return (elems * elementBytes(dtype)) % 4 === 0;
}

/** Elements per u32 word. */
function perWord(dtype: DType): number {
  return 4 / elementBytes(dtype);
}

/**
 * WGSL: element i of a packed array \`name\` (per elements a word, low bits first) in the low bits,
 * as \`name_at(i)\`; \`per\` is a Params field.
 */
function elementAt(name: string): string {
  return /* wgsl */ `
fn ${name}_at(i: u32) -> u32 {
  let w = ${name}[i / p.per];
  if (p.per == 1u) { return w; }
  let bits = 32u / p.per;
  return (w >> ((i % p.per) * bits)) & ((1u << bits) - 1u);
}
`;
}

/**
 * Columns start..start+len-1 of source rows of x [*, n], any dtype: out element e (row r = e / len,
 * column c = e % len) = x[src(r), start + c], src(r) = idx[r] when gathering (out-of-range rows
 * give zeros), else r. One invocation per output word, built from its `per` elements.
 */
export const TAKE_ROWS_WGSL = /* wgsl */ `
struct Params { nRows: u32, n: u32, start: u32, len: u32, count: u32, words: u32, per: u32, gather: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read> idx: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;
${elementAt('x')}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let o = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (o >= p.words) { return; }
  let bits = 32u / p.per;
  var word = 0u;
  for (var j = 0u; j < p.per; j++) {
    let e = o * p.per + j;
    if (e >= p.count) { break; }
    var r = i32(e / p.len);
    if (p.gather == 1u) { r = idx[e / p.len]; }
    if (r >= 0 && u32(r) < p.nRows) { word = word | (x_at(u32(r) * p.n + p.start + e % p.len) << (j * bits)); }
  }
  out[o] = word;
}
`;

/** TAKE_ROWS_WGSL over [m, len] output elements; idx null: rows 0..m-1 of x. */
function takeRows(gpu: GpuDevice, x: GPUBuffer, dtype: DType, nRows: number, n: number, start: number, len: number, idx: GPUBuffer | null, m: number): GPUBuffer {
  const count = m * len;
  const per = perWord(dtype);
  const words = Math.ceil(count / per);
  const out = gpu.buffer(words * 4);
  if (count === 0) return out;
  const g = gpu.grid(words, WG);
  // Without idx the kernel does not read it; x stands in for its binding.
  const params = gpu.uniforms(Uint32Array.of(nRows, n, start, len, count, words, per, idx ? 1 : 0, g[0]));
  gpu.dispatch(TAKE_ROWS_WGSL, [x, idx ?? x, out, params], g);
  return out;
}

/** x [rows, n] of any dtype → [rows, len], columns start..start+len-1. */
export function sliceLastGpu(gpu: GpuDevice, x: GPUBuffer, dtype: DType, rows: number, n: number, start: number, len: number): GPUBuffer {
  if (start < 0 || len < 0 || start + len > n) throw new GpuError(`sliceLast: [${start}, ${start + len}) is outside the last dimension ${n}`);
  return takeRows(gpu, x, dtype, rows, n, start, len, null, rows);
}

/** Rows start..start+len-1 of x [rows, rowElems] of any dtype → [len, rowElems], a copy. */
export function sliceRowsGpu(gpu: GpuDevice, x: GPUBuffer, dtype: DType, rows: number, rowElems: number, start: number, len: number): GPUBuffer {
  if (start < 0 || len < 0 || start + len > rows) throw new GpuError(`sliceRows: rows [${start}, ${start + len}) are outside the first dimension ${rows}`);
  // Rows that are not whole words start inside a word: a slice of the flat elements.
  if (!wholeWords(dtype, rowElems)) return sliceLastGpu(gpu, x, dtype, 1, rows * rowElems, start * rowElems, len * rowElems);
  const rowBytes = rowElems * elementBytes(dtype);
  const out = gpu.buffer(len * rowBytes);
  if (len * rowBytes === 0) return out;
  gpu.copy(x, start * rowBytes, out, 0, len * rowBytes);
  return out;
}

/** Parts [rows_i, rowElems] of one dtype stacked → [Σ rows_i, rowElems]. */
export function concatRowsGpu(gpu: GpuDevice, parts: readonly { buffer: GPUBuffer; rows: number }[], dtype: DType, rowElems: number): GPUBuffer {
  if (parts.length === 0) throw new GpuError('concatRows: no tensors to concatenate');
  const rowBytes = rowElems * elementBytes(dtype);
  const total = parts.reduce((s, p) => s + p.rows, 0);
  const out = gpu.buffer(total * rowBytes);
  if (!wholeWords(dtype, rowElems)) {
    // A part may start inside a word: each is scattered element by element at its first row.
    let at = 0;
    for (const p of parts) {
      scatterGpu(gpu, { dst: out, dtype, src: p.buffer, rows: p.rows, n: rowElems, width: rowElems, colOffset: 0, rowOffset: at });
      at += p.rows;
    }
    return out;
  }
  let at = 0;
  for (const p of parts) {
    const bytes = p.rows * rowBytes;
    gpu.copy(p.buffer, 0, out, at, bytes);
    at += bytes;
  }
  return out;
}

/** Rows of x [nRows, n] of any dtype at idx (i32 [m]) → [m, n]; out-of-range indices give zero rows. */
export function gatherRowsGpu(gpu: GpuDevice, x: GPUBuffer, dtype: DType, nRows: number, n: number, idx: GPUBuffer, m: number): GPUBuffer {
  return takeRows(gpu, x, dtype, nRows, n, 0, n, idx, m);
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
  const g = gpu.grid(count, WG);
  const params = gpu.uniforms(Uint32Array.of(table.outDim, d, count, format, bo, bi, Math.ceil(d / bi), g[0]));
  gpu.dispatch(EMBEDDING_WGSL, [table.data, scales, ids, out, params], g);
  return out;
}

/**
 * WGSL: the cache slot of row t's position, slotOf(t, positions[t]) (pages.ts: through the 1-D
 * table, or through table row rowSeq[t] of a 2-D one), or NO_SLOT for a negative position or one
 * whose page, table row or slot is out of range (the row is skipped). Uses positions, table, rowSeq
 * and the Params fields slots and PAGE_FIELDS.
 */
const ROW_SLOT_WGSL = /* wgsl */ `${PAGES_WGSL}
fn rowSlot(t: u32) -> u32 {
  let pos = positions[t];
  if (pos < 0) { return NO_SLOT; }
  let slot = slotOf(t, u32(pos));
  if (slot >= p.slots) { return NO_SLOT; }
  return slot;
}
`;

export const WRITE_ROWS_WGSL = /* wgsl */ `
struct Params { slots: u32, widthW: u32, rows: u32, nW: u32, colW: u32, count: u32, groupsX: u32, ${PAGE_FIELDS} }
@group(0) @binding(0) var<storage, read_write> dst: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<i32>;
@group(0) @binding(2) var<storage, read> rowSeq: array<i32>;
@group(0) @binding(3) var<storage, read> positions: array<i32>;
@group(0) @binding(4) var<storage, read> src: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;
${ROW_SLOT_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (i >= p.count) { return; }
  let slot = rowSlot(i / p.nW);
  if (slot == NO_SLOT) { return; }
  dst[slot * p.widthW + p.colW + i % p.nW] = src[i];
}
`;

export interface WriteRowsGpuArgs {
  /** The cache [slots, width] of `dtype`, written in place. */
  dst: GPUBuffer;
  dtype: DType;
  slots: number;
  width: number;
  /**
   * The block table: i32 [nPages] (slot(p) = table[p / pageSize] · pageSize + p % pageSize), or with
   * rowSeq i32 [seqs, nPages], row t mapping through table row rowSeq[t] (pages.ts).
   */
  table: GPUBuffer;
  nPages: number;
  pageSize: number;
  /** i32 [rows]: each row's table row (several sequences in one call), or absent / null. */
  rowSeq?: GPUBuffer | null;
  /** Rows of a 2-D table (with rowSeq). */
  seqs?: number;
  /** i32 [rows]. */
  positions: GPUBuffer;
  /** [rows, n] of `dtype`. */
  src: GPUBuffer;
  rows: number;
  n: number;
  colOffset: number;
}

/**
 * Element-wise scatter of sub-word elements (bf16, u8) where rows do not fall on whole words:
 * src element i (row t = i / n, column c = i % n) goes to dst element row·width + colOffset + c,
 * row = rowSlot(t) when paged (rows whose page or slot is out of range are skipped), else
 * rowOffset + t. Each invocation sets its element's bits with atomicAnd then atomicOr: neighbours
 * in the same word touch other bits, so the order does not matter.
 */
export const SCATTER_WGSL = /* wgsl */ `
struct Params {
  slots: u32, width: u32, n: u32, colOffset: u32, count: u32, groupsX: u32,
  per: u32, paged: u32, rowOffset: u32, ${PAGE_FIELDS},
}
@group(0) @binding(0) var<storage, read_write> dst: array<atomic<u32>>;
@group(0) @binding(1) var<storage, read> table: array<i32>;
@group(0) @binding(2) var<storage, read> rowSeq: array<i32>;
@group(0) @binding(3) var<storage, read> positions: array<i32>;
@group(0) @binding(4) var<storage, read> src: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;
${elementAt('src')}${ROW_SLOT_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.y * p.groupsX + wg.x) * ${WG}u + lid.x;
  if (i >= p.count) { return; }
  let t = i / p.n;
  var row = p.rowOffset + t;
  if (p.paged == 1u) {
    row = rowSlot(t);
    if (row == NO_SLOT) { return; }
  }
  let d = row * p.width + p.colOffset + i % p.n;
  let bits = 32u / p.per;
  let shift = (d % p.per) * bits;
  let mask = ((1u << bits) - 1u) << shift;
  atomicAnd(&dst[d / p.per], ~mask);
  atomicOr(&dst[d / p.per], src_at(i) << shift);
}
`;

interface ScatterArgs {
  dst: GPUBuffer;
  /** bf16 or u8. */
  dtype: DType;
  src: GPUBuffer;
  rows: number;
  n: number;
  width: number;
  colOffset: number;
  /** Paged destination rows (writeRows); without, rows rowOffset + t (concatRows). */
  pages?: { table: GpuPages; positions: GPUBuffer; slots: number };
  rowOffset?: number;
}

function scatterGpu(gpu: GpuDevice, a: ScatterArgs): void {
  const count = a.rows * a.n;
  if (count === 0) return;
  const pg = a.pages;
  const g = gpu.grid(count, WG);
  const params = gpu.uniforms(
    Uint32Array.of(pg?.slots ?? 0, a.width, a.n, a.colOffset, count, g[0], perWord(a.dtype), pg ? 1 : 0, a.rowOffset ?? 0, ...(pg ? pageParams(pg.table) : [1, 0, 0, 0])),
  );
  // Without pages the table, rowSeq and positions are not read; the source stands in for their bindings.
  const table = pg?.table.table ?? a.src;
  gpu.dispatch(SCATTER_WGSL, [a.dst, table, pg ? rowSeqBinding(pg.table) : a.src, pg?.positions ?? a.src, a.src, params], g);
}

/**
 * dst[slot(t, positions[t]), colOffset .. colOffset + n) = src[t, :], any dtype (slot through the
 * 1-D table, or through table row rowSeq[t]: every sequence of a step in one grid). Whole u32 words are
 * written where n, colOffset and width are whole words (always for f32 and i32; the kernel then
 * never races on a word shared by two rows), else element by element (scatterGpu). Rows whose page
 * or slot is out of range are skipped.
 */
export function writeRowsGpu(gpu: GpuDevice, a: WriteRowsGpuArgs): void {
  const eb = elementBytes(a.dtype);
  if (a.colOffset < 0 || a.colOffset + a.n > a.width) throw new GpuError(`writeRows: columns [${a.colOffset}, ${a.colOffset + a.n}) exceed the cache row ${a.width}`);
  if (a.pageSize <= 0) throw new GpuError(`writeRows: page size ${a.pageSize}`);
  const table = pagesOfArgs({ ...a, tableLength: a.nPages });
  if (!wholeWords(a.dtype, a.n) || !wholeWords(a.dtype, a.colOffset) || !wholeWords(a.dtype, a.width)) {
    const pages = { table, positions: a.positions, slots: a.slots };
    scatterGpu(gpu, { dst: a.dst, dtype: a.dtype, src: a.src, rows: a.rows, n: a.n, width: a.width, colOffset: a.colOffset, pages });
    return;
  }
  const nW = (a.n * eb) / 4;
  const count = a.rows * nW;
  if (count === 0) return;
  const g = gpu.grid(count, WG);
  const params = gpu.uniforms(Uint32Array.of(a.slots, (a.width * eb) / 4, a.rows, nW, (a.colOffset * eb) / 4, count, g[0], ...pageParams(table)));
  gpu.dispatch(WRITE_ROWS_WGSL, [a.dst, a.table, rowSeqBinding(table), a.positions, a.src, params], g);
}
