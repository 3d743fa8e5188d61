/**
 * The lightning indexer on tensor cores, second form ('matrix-direct' in the kernel lab): the FP8
 * codes are first decoded to f16 in device memory (exact: every e4m3 value is an f16) — the keys in
 * logical order through the block table, in tiles of 64 transposed, the query rows as they are —
 * and the score kernel then
 * reads both operands of its f16 × f16 → f32 16×16×16 products straight from storage buffers
 * (subgroupMatrixLoad from storage was faster than from shared memory on the H200; see
 * docs/benchmarks.md). Per workgroup: one query row and 64 keys; S = q · kᵀ [H, 64] goes to shared
 * memory, then ReLU, the head weights, the key scale and the causal mask as in indexer.ts.
 * Needs shader-f16, subgroup-matrix f16 → f32 16×16×16, subgroups of 32, H and D multiples of 16,
 * D a multiple of 4.
 *
 * Several sequences in one call (rowSeq, pages.ts): the keys are decoded per query row
 * ([rows][tiles][D][KT], row t's keys 0..min(positions[t], nKeys−1) through its own table row,
 * zeros after them in their tile), and each workgroup reads its row's block; a workgroup whose tile
 * starts past its row's position (a shorter sequence of the batch) writes −∞ and does no products. `indexerDirectFits` says whether that
 * scratch fits one storage binding; indexer.ts runs 'matrix' instead when it does not.
 */
import { GpuError, type GpuDevice } from '../device.js';
import type { IndexerGpuArgs } from './indexer.js';
import { PAGE_FIELDS, PAGES_WGSL, onePageTable, pageParams, pagesOfArgs, rowSeqBinding, type GpuPages } from './pages.js';
import { E4M3_DECODE_WGSL } from './wgsl.js';

const KT = 64;

export function indexerDirectAvailable(gpu: GpuDevice, heads: number, dim: number): boolean {
  return gpu.features.has('shader-f16') && gpu.hasSubgroupMatrix('f16', 'f32', 16, 16, 16) && gpu.subgroupSize === 32 && heads % 16 === 0 && dim % 16 === 0;
}

/**
 * Codes (four per u32) of `n` rows of D → f16, rows in logical order, rows ≥ n zeros. With
 * `tile` 0 row after row ([padded][D]); with tile T in tiles of T rows, each transposed ([D][T]), so
 * the score kernel loads its key operand row-major. Paged: row s is read from slotOf(0, s). Per
 * query row (rowWords > 0, with rowSeq): one such block of rowWords words for each query row t,
 * holding the keys 0..min(positions[t], n−1) of t's sequence (slotOf(t, s)), zeros after them in
 * their last tile; tiles that start past the row's position are left as they are (never read).
 * Invocations take consecutive rows of a tile (consecutive f16 stores).
 */
const DECODE_WGSL = /* wgsl */ `
enable f16;
struct Params { n: u32, dim: u32, paged: u32, total: u32, groupsX: u32, tile: u32, rowWords: u32, ${PAGE_FIELDS} }
@group(0) @binding(0) var<storage, read> codes: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<i32>;
@group(0) @binding(2) var<storage, read> rowSeq: array<i32>;
@group(0) @binding(3) var<storage, read> positions: array<i32>;
@group(0) @binding(4) var<storage, read_write> halves: array<f16>;
@group(0) @binding(5) var<uniform> p: Params;
${E4M3_DECODE_WGSL}
${PAGES_WGSL}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 256u + lid.x; // one u32 of codes: four values
  if (i >= p.total) { return; }
  var row = 0u; // the query row whose block this is (per-row decoding)
  var j = i;
  var limit = p.n;
  if (p.rowWords > 0u) {
    row = i / p.rowWords;
    j = i % p.rowWords;
    limit = u32(clamp(positions[row] + 1, 0, i32(p.n)));
  }
  let words = p.dim / 4u;
  var s = j / words;
  var w = j % words;
  if (p.tile > 0u) {
    let perTile = p.tile * words;
    s = (j / perTile) * p.tile + j % p.tile;
    w = (j % perTile) / p.tile;
  }
  // Per row, a tile that starts past the row's position is never read (the score kernel skips it).
  if (p.rowWords > 0u && p.tile > 0u && (s / p.tile) * p.tile >= limit) { return; }
  var word = 0u;
  if (s < limit) {
    var src = s;
    if (p.paged == 1u) { src = slotOf(row, s); }
    if (src != NO_SLOT) { word = codes[src * words + w]; }
  }
  let base = row * p.rowWords * 4u;
  for (var k = 0u; k < 4u; k++) {
    let d = 4u * w + k;
    var at = s * p.dim + d;
    if (p.tile > 0u) { at = (s / p.tile) * p.tile * p.dim + d * p.tile + s % p.tile; }
    halves[base + at] = f16(e4m3((word >> (8u * k)) & 0xffu));
  }
}
`;

function scoresWgsl(H: number, D: number): string {
  const tasks = (H / 16) * (KT / 16);
  const perSubgroup = Math.ceil(tasks / 4);
  return /* wgsl */ `
enable f16;
enable chromium_experimental_subgroup_matrix;
struct Params { rows: u32, nKeys: u32, groupsX: u32, rowKeys: u32, ${PAGE_FIELDS} }
@group(0) @binding(0) var<storage, read> qh: array<f16>;
@group(0) @binding(1) var<storage, read> kh: array<f16>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> kScale: array<f32>;
@group(0) @binding(4) var<storage, read> table: array<i32>;
@group(0) @binding(5) var<storage, read> rowSeq: array<i32>;
@group(0) @binding(6) var<storage, read> positions: array<i32>;
@group(0) @binding(7) var<storage, read_write> out: array<u32>;
@group(0) @binding(8) var<uniform> p: Params;
${PAGES_WGSL}
const H: u32 = ${H}u;
const D: u32 = ${D}u;
const KT: u32 = ${KT}u;
const TASKS: u32 = ${tasks}u;
var<workgroup> sS: array<f32, ${H * KT}>; // q·k [H][KT]
var<workgroup> part: array<f32, ${2 * KT}>;

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let key0 = (wg.x + wg.z * p.groupsX) * KT;
  let t = wg.y;
  let kRow = t * p.rowKeys * D; // this row's decoded keys (0: one block shared by every row)
  if (i32(key0) > positions[t]) {
    // A tile past the row's position (a shorter sequence of the batch): no products.
    if (li < KT && key0 + li < p.nKeys) { out[t * p.nKeys + key0 + li] = 0xff800000u; }
    return;
  }
  for (var j = 0u; j < ${perSubgroup}u; j++) {
    // Tasks beyond TASKS repeat the last one (same result, same place): every subgroup stays uniform.
    let task = min(sg * ${perSubgroup}u + j, TASKS - 1u);
    let hb = task / (KT / 16u);
    let kb = task % (KT / 16u);
    var acc = subgroup_matrix_result<f32, 16, 16>();
    for (var d = 0u; d < D; d += 16u) {
      let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&qh, (t * H + hb * 16u) * D + d, false, D);
      let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&kh, kRow + key0 * D + d * KT + kb * 16u, false, KT);
      acc = subgroupMatrixMultiplyAccumulate(a, b, acc);
    }
    subgroupMatrixStore(&sS, hb * 16u * KT + kb * 16u, acc, false, KT);
  }
  workgroupBarrier();
  // Two invocations per key, half of the heads each.
  let key = li % KT;
  let half = li / KT;
  var score = 0.0;
  for (var h = half * (H / 2u); h < (half + 1u) * (H / 2u); h++) {
    let d = sS[h * KT + key];
    if (d > 0.0) { score += w[t * H + h] * d; }
  }
  part[li] = score;
  workgroupBarrier();
  let s = key0 + li;
  if (li < KT && s < p.nKeys) {
    var bits = 0xff800000u;
    var slot = NO_SLOT;
    if (i32(s) <= positions[t]) { slot = slotOf(t, s); }
    if (slot != NO_SLOT) { bits = bitcast<u32>(kScale[slot] * (part[li] + part[li + KT])); }
    out[t * p.nKeys + s] = bits;
  }
}
`;
}

/**
 * Decodes `n` rows of codes (padded with zero rows to `padded`) into the f16 scratch buffer `key`
 * (tiles of `tile` rows transposed, or rows when 0): rows in order, or through `pages` (slotOf row
 * 0); with `perRow` (the positions i32 [perRow] of query rows with rowSeq) one block per query row.
 */
export function decodeRows(
  gpu: GpuDevice, key: string, codes: GPUBuffer, pages: GpuPages | null, n: number, padded: number, dim: number, tile: number,
  perRow?: { positions: GPUBuffer; rows: number },
): GPUBuffer {
  const blocks = perRow?.rows ?? 1;
  const rowWords = (padded * dim) / 4;
  const total = blocks * rowWords;
  const halves = gpu.scratch(key, blocks * padded * dim * 2);
  const [gx, gy] = gpu.grid(total, 256);
  const pg = pages ?? onePageTable(codes, 0, 1);
  const params = gpu.uniforms(Uint32Array.of(n, dim, pages ? 1 : 0, total, gx, tile, perRow ? rowWords : 0, ...pageParams(pg)));
  gpu.dispatch(DECODE_WGSL, [codes, pg.table, rowSeqBinding(pg), perRow?.positions ?? codes, halves, params], [gx, gy]);
  return halves;
}

/** Bytes of the per-row key scratch of a call with rowSeq (rows × keys padded to tiles × D f16). */
function perRowKeyBytes(a: IndexerGpuArgs): number {
  return a.rows * Math.ceil(a.nKeys / KT) * KT * a.dim * 2;
}

/** Whether a call's decoded keys fit one storage binding (always without rowSeq: one block for every row). */
export function indexerDirectFits(gpu: GpuDevice, a: IndexerGpuArgs): boolean {
  const bytes = a.rowSeq ? perRowKeyBytes(a) : Math.ceil(a.nKeys / KT) * KT * a.dim * 2;
  return bytes <= gpu.limits.maxStorageBufferBindingSize;
}

/** Records the scores into `out` (f32 [rows, nKeys], allocated by the caller). */
export function indexerScoresDirectGpu(gpu: GpuDevice, a: IndexerGpuArgs, out: GPUBuffer): void {
  if (!indexerDirectAvailable(gpu, a.heads, a.dim)) {
    throw new GpuError(`indexerScoresGpu: the 'matrix-direct' variant needs subgroup-matrix f16 tensor cores and H, D multiples of 16 (H ${a.heads}, D ${a.dim})`);
  }
  if (!indexerDirectFits(gpu, a)) {
    throw new GpuError(`indexerScoresGpu: the 'matrix-direct' variant's decoded keys for ${a.rows} rows of ${a.nKeys} keys exceed the device's storage binding size`);
  }
  const pages = pagesOfArgs(a);
  const tiles = Math.ceil(a.nKeys / KT);
  const qh = decodeRows(gpu, 'indexer.q', a.q8, null, a.rows * a.heads, a.rows * a.heads, a.dim, 0);
  const perRow = a.rowSeq ? { positions: a.positions, rows: a.rows } : undefined;
  const kh = decodeRows(gpu, 'indexer.k', a.kCache, pages, a.nKeys, tiles * KT, a.dim, KT, perRow);
  const code = gpu.generated(`indexer-direct ${a.heads}x${a.dim}`, () => scoresWgsl(a.heads, a.dim));
  const [gx, gz] = gpu.grid(tiles);
  const params = gpu.uniforms(Uint32Array.of(a.rows, a.nKeys, gx, perRow ? tiles * KT : 0, ...pageParams(pages)));
  gpu.dispatch(code, [qh, kh, a.w, a.kScale, a.table, rowSeqBinding(pages), a.positions, out, params], [gx, a.rows, gz]);
}
