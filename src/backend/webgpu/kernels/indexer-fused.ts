/**
 * The lightning indexer on tensor cores, third form ('matrix-fused' in the kernel lab): one pass
 * over the FP8 key cache, no f16 copy of it in device memory.
 *
 * A workgroup of four subgroups takes one query row and a run of key tiles (64 keys each):
 *  1. the row's query, decoded once to f16 by a small pass (exact: every e4m3 value is an f16), is
 *     loaded as left matrices straight from storage and kept in registers for the whole run
 *     (each subgroup holds H/32 × D/16 of them: its half of the heads, every 16 dims);
 *  2. per tile, every invocation reads 16-byte words of key codes (D/32 words: one 64-key tile
 *     is D·64 bytes), decodes them exactly to f16 in shared memory, one row per key;
 *     the next tile's words are already being read while this tile is multiplied;
 *  3. each subgroup multiplies its heads by half of the tile's keys (right matrices loaded
 *     column-major from the key rows: kᵀ without a transpose) — S = q·kᵀ [H, 64], f32;
 *  4. S goes to shared memory; ReLU, the head weights (two invocations per key, half of the heads
 *     each), the key scale and the causal mask give the tile's 64 scores.
 * Keys past the row's position are −∞ and their tiles are not multiplied at all.
 *
 * Several sequences in one grid: with `rowSeq`, row t reads its keys through row rowSeq[t] of a
 * 2-D block table of `tableStride` entries per sequence (see SeqPages in backend.ts).
 * Needs shader-f16, subgroup-matrix f16 → f32 16×16×16, subgroups of 32, H a multiple of 32 and
 * D a multiple of 32, with H/32 · D/16 ≤ 16 query matrices per subgroup (DeepSeek-V3.2: 64 × 128).
 */
import { GpuError, type GpuDevice } from '../device.js';
import type { IndexerGpuArgs } from './indexer.js';
import { decodeRows } from './indexer-direct.js';
import { E4M3_TO_F16_WGSL } from './wgsl.js';

/** Keys per tile (unless a variant asks for fewer). */
const KT_DEFAULT = 64;
/** Invocations per workgroup (four subgroups of 32). */
const THREADS = 128;

/** Shared-memory bytes for H heads of D dims: key rows (f16, padded), S (f32, padded), weights, partial sums. */
function sharedBytes(heads: number, dim: number, o: Partial<FusedOptions> = {}): number {
  const kt = o.keysPerTile ?? KT_DEFAULT;
  const pad = o.pad ?? true;
  const q = o.stageQ ? heads * (dim + (pad ? 8 : 0)) * 2 : 0;
  return dim * (kt + (pad ? 8 : 0)) * 2 + heads * (kt + (pad ? 4 : 0)) * 4 + heads * 4 + THREADS * 4 + q;
}

/**
 * Lab switches of the kernel: whether each subgroup keeps its query matrices in registers for the
 * whole run (holdQ) or loads them per tile, and whether shared rows are padded (pad).
 */
export interface FusedOptions {
  holdQ: boolean;
  pad: boolean;
  /** Each invocation decodes two adjacent keys, so neighbouring f16 values come from one invocation. */
  pairs?: boolean;
  /**
   * S = q·kᵀ by plain f32 arithmetic from the same shared tile instead of tensor cores: the
   * kernel's twin for GPUs without subgroup matrices (and the form tests run on lavapipe, which
   * checks everything but the matrix products: decoding, layout, masks, runs, several sequences).
   */
  scalar?: boolean;
  /** Key tiles per workgroup (default: chosen from the grid size). */
  tilesPerGroup?: number;
  /** Keys per tile: 64 (default) or 32. */
  keysPerTile?: number;
  /** The query row staged in shared memory (both matrix operands from shared memory). */
  stageQ?: boolean;
  /** Control-flow switches (lab): no early return; loop over the whole run (no uniform load of the row's length); no prefetch. */
  noReturn?: boolean;
  uniformSpan?: boolean;
  noPrefetch?: boolean;
}

export function indexerFusedAvailable(gpu: GpuDevice, heads: number, dim: number, o: Partial<FusedOptions> = {}): boolean {
  return (
    gpu.features.has('shader-f16') &&
    (o.scalar || (gpu.hasSubgroupMatrix('f16', 'f32', 16, 16, 16) && gpu.subgroupSize === 32)) &&
    heads % 32 === 0 &&
    dim % 32 === 0 &&
    (heads / 32) * (dim / 16) <= 16 &&
    sharedBytes(heads, dim, o) <= gpu.limits.maxComputeWorkgroupStorageSize
  );
}

function fusedWgsl(H: number, D: number, o: FusedOptions): string {
  const KT = o.keysPerTile ?? KT_DEFAULT;
  const RM = H / 32; // head blocks of 16 per subgroup
  const RN = KT / 32; // key blocks of 16 per subgroup
  const LDQ = o.pad ? D + 8 : D; // query row stride when staged in shared memory
  const DS = D / 16; // 16-dim steps
  const WPK = D / 16; // 16-byte words per key
  const V = (KT * WPK) / THREADS; // words per invocation per tile
  const LDK = o.pad ? KT + 8 : KT; // row stride of the keys in shared memory (f16): [D][KT]
  const LDS = o.pad ? KT + 4 : KT; // S row stride (f32)
  const left = 'subgroup_matrix_left<f16, 16, 16>';
  const right = 'subgroup_matrix_right<f16, 16, 16>';
  const result = 'subgroup_matrix_result<f32, 16, 16>';
  const qLoads: string[] = [];
  for (let i = 0; i < RM; i++) {
    for (let d = 0; d < DS; d++) {
      qLoads.push(
        o.stageQ
          ? `let a${i}_${d} = subgroupMatrixLoad<${left}>(&qS, (hb + ${16 * i}u) * ${LDQ}u + ${16 * d}u, false, ${LDQ}u);`
          : `let a${i}_${d} = subgroupMatrixLoad<${left}>(&qh, qBase + ${i * 16 * D + d * 16}u, false, ${D}u);`,
      );
    }
  }
  const mma: string[] = [];
  for (let j = 0; j < RN; j++) for (let i = 0; i < RM; i++) mma.push(`var acc${i}_${j} = ${result}();`);
  for (let d = 0; d < DS; d++) {
    for (let j = 0; j < RN; j++) {
      mma.push(`let b${d}_${j} = subgroupMatrixLoad<${right}>(&kS, ${16 * d * LDK}u + kb + ${16 * j}u, false, ${LDK}u);`);
    }
    for (let j = 0; j < RN; j++) for (let i = 0; i < RM; i++) mma.push(`acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}_${d}, b${d}_${j}, acc${i}_${j});`);
  }
  for (let j = 0; j < RN; j++) {
    for (let i = 0; i < RM; i++) mma.push(`subgroupMatrixStore(&sS, (hb + ${16 * i}u) * ${LDS}u + kb + ${16 * j}u, acc${i}_${j}, false, ${LDS}u);`);
  }
  const words = Array.from({ length: V }, (_, v) => v);
  const scalarProducts = `for (var e = li; e < ${H * KT}u; e += ${THREADS}u) {
      let h = e / ${KT}u;
      let k = e % ${KT}u;
      var acc = 0.0;
      for (var d = 0u; d < ${D}u; d++) { acc += f32(${o.stageQ ? `qS[h * ${LDQ}u + d]` : `qh[(t * ${H}u + h) * ${D}u + d]`}) * f32(kS[d * ${LDK}u + k]); }
      sS[h * ${LDS}u + k] = acc;
    }`;
  // Word v of an invocation: key and part (16 codes: dims 16·part …) within the tile.
  const wordAt = (v: number): { key: string; part: string } => {
    if (!o.pairs) return { key: `(li + ${v * THREADS}u) / ${WPK}u`, part: `(li + ${v * THREADS}u) % ${WPK}u` };
    const idx = `(li + ${(v >> 1) * THREADS}u)`;
    return { key: `2u * (${idx} / ${WPK}u) + ${v & 1}u`, part: `${idx} % ${WPK}u` };
  };
  const load = (v: number, tile: string) => {
    const { key, part } = wordAt(v);
    return `kc[slotOf(tableRow, min(${tile} + ${key}, lastKey)) * ${WPK}u + ${part}]`;
  };
  const bytes = (word: string, b: number) => `h16((${word} >> ${8 * b}u) & 0xffu)`;
  const decode: string[] = [];
  for (let v = 0; v < V; v += o.pairs ? 2 : 1) {
    const { key, part } = wordAt(v);
    const lines: string[] = [];
    for (let c = 0; c < 4; c++) {
      for (let b = 0; b < 4; b++) {
        const at = `o + ${(4 * c + b) * LDK}u`;
        lines.push(`kS[${at}] = ${bytes(`r${v}[${c}]`, b)};`);
        if (o.pairs) lines.push(`kS[${at} + 1u] = ${bytes(`r${v + 1}[${c}]`, b)};`);
      }
    }
    decode.push(`    {\n      let o = (${part}) * ${16 * LDK}u + ${key};\n      ${lines.join('\n      ')}\n    }`);
  }
  return /* wgsl */ `
enable f16;
${o.scalar ? '' : 'enable chromium_experimental_subgroup_matrix;'}
struct Params { rows: u32, nKeys: u32, pageSize: u32, groupsX: u32, tilesPerGroup: u32, tableStride: u32, multi: u32 }
@group(0) @binding(0) var<storage, read> qh: array<f16>; // decoded queries [rows][H][D]
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<vec4u>; // key codes [slots][D], 16 per word
@group(0) @binding(3) var<storage, read> kScale: array<f32>;
@group(0) @binding(4) var<storage, read> table: array<i32>;
@group(0) @binding(5) var<storage, read> positions: array<i32>;
@group(0) @binding(6) var<storage, read> rowSeq: array<i32>;
@group(0) @binding(7) var<storage, read_write> out: array<u32>; // f32 bits
@group(0) @binding(8) var<uniform> p: Params;
var<workgroup> kS: array<f16, ${D * LDK}>; // the tile's keys, transposed: [D][KT]
${o.stageQ ? `var<workgroup> qS: array<f16, ${H * LDQ}>; // the query row [H][D]` : ''}
var<workgroup> sS: array<f32, ${H * LDS}>; // S = q·kᵀ [H][KT]
var<workgroup> wS: array<f32, ${H}>;
var<workgroup> part: array<f32, ${THREADS}>;
var<workgroup> validW: u32;

${E4M3_TO_F16_WGSL}
/** The cache slot of key s of row t's sequence. */
fn slotOf(tableRow: u32, s: u32) -> u32 {
  return u32(table[tableRow * p.tableStride + s / p.pageSize]) * p.pageSize + s % p.pageSize;
}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32${o.scalar ? '' : ', @builtin(subgroup_id) sg: u32'}) {
  let t = wg.y;
  let tableRow = select(0u, u32(rowSeq[t]), p.multi == 1u);
${o.uniformSpan ? '' : '  if (li == 0u) { validW = u32(clamp(positions[t] + 1, 0, i32(p.nKeys))); }'}
  for (var h = li; h < ${H}u; h += ${THREADS}u) { wS[h] = w[t * ${H}u + h]; }
${o.stageQ ? `  for (var i = li; i < ${H * D}u; i += ${THREADS}u) { qS[(i / ${D}u) * ${LDQ}u + i % ${D}u] = qh[t * ${H * D}u + i]; }` : ''}
  let valid = ${o.uniformSpan ? 'u32(clamp(positions[t] + 1, 0, i32(p.nKeys)))' : 'workgroupUniformLoad(&validW)'};
  let span0 = (wg.x + wg.z * p.groupsX) * p.tilesPerGroup * ${KT}u;
  let spanEnd = min(span0 + p.tilesPerGroup * ${KT}u, p.nKeys);
  // Tiles with at least one valid key are multiplied; keys after them are −∞.
  let workEnd = ${o.uniformSpan ? 'spanEnd' : `min(spanEnd, ((valid + ${KT - 1}u) / ${KT}u) * ${KT}u)`};
  for (var s = max(span0, workEnd) + li; s < spanEnd; s += ${THREADS}u) { out[t * p.nKeys + s] = 0xff800000u; }
${o.noReturn || o.uniformSpan ? '' : '  if (span0 >= workEnd) { return; }'}

${o.scalar ? '' : `  let hb = (sg % 2u) * ${16 * RM}u; // this subgroup's heads and keys in the tile
  let kb = (sg / 2u) * ${KT / 2}u;
  let qBase = (t * ${H}u + hb) * ${D}u;
  ${o.holdQ ? qLoads.join('\n  ') : ''}`}

  // Word v of the tile: its key and 16-byte part (see wordAt).
  let lastKey = max(valid, 1u) - 1u;
${words.map((v) => `  var r${v}: vec4u;`).join('\n')}
${o.noPrefetch ? '' : words.map((v) => `  r${v} = ${load(v, 'span0')};`).join('\n')}
  for (var tile0 = span0; tile0 < workEnd; tile0 += ${KT}u) {
${o.noPrefetch ? words.map((v) => `    r${v} = ${load(v, 'tile0')};`).join('\n') : ''}
    // Decode the tile's words into the transposed tile.
${decode.join('\n')}
    workgroupBarrier();
    // The next tile's words, read while this one is multiplied.
    let next = tile0 + ${KT}u;
    if (${o.noPrefetch ? 'false' : 'next < workEnd'}) {
${words.map((v) => `      r${v} = ${load(v, 'next')};`).join('\n')}
    }
    {
    ${o.scalar ? scalarProducts : o.holdQ ? '' : qLoads.join('\n    ')}
    ${o.scalar ? '' : mma.join('\n    ')}
    }
    workgroupBarrier();
    // THREADS / KT invocations per key, a share of the heads each.
    let key = li % ${KT}u;
    let share = li / ${KT}u;
    var score = 0.0;
    for (var h = share * ${(H * KT) / THREADS}u; h < (share + 1u) * ${(H * KT) / THREADS}u; h++) {
      let d = sS[h * ${LDS}u + key];
      if (d > 0.0) { score += wS[h] * d; }
    }
    part[li] = score;
    workgroupBarrier();
    let s = tile0 + li;
    if (li < ${KT}u && s < spanEnd) {
      var bits = 0xff800000u;
      if (s < valid) { bits = bitcast<u32>(kScale[slotOf(tableRow, s)] * (${Array.from({ length: THREADS / KT }, (_, m) => `part[li + ${m * KT}u]`).join(' + ')})); }
      out[t * p.nKeys + s] = bits;
    }
  }
}
`;
}

/** Multi-sequence form of the arguments: rows map to rows of a 2-D block table. */
export interface FusedRowSeq {
  rowSeq: GPUBuffer;
  /** Entries per sequence in the 2-D table. */
  tableStride: number;
}

/** Records the scores into `out` (f32 [rows, nKeys], allocated by the caller). */
export function indexerScoresFusedGpu(gpu: GpuDevice, a: IndexerGpuArgs, out: GPUBuffer, o: FusedOptions, multi: FusedRowSeq | null = null): void {
  if (!indexerFusedAvailable(gpu, a.heads, a.dim, o)) {
    throw new GpuError(
      `indexerScoresGpu: the 'matrix-fused' variant needs subgroup-matrix f16 tensor cores, subgroups of 32 and H, D multiples of 32 with H/32·D/16 ≤ 16 (H ${a.heads}, D ${a.dim})`,
    );
  }
  const tiles = Math.ceil(a.nKeys / (o.keysPerTile ?? KT_DEFAULT));
  // Enough workgroups to fill the GPU several times over; each takes a run of tiles so the query
  // matrices are loaded once per run.
  const perGroup = o.tilesPerGroup ?? Math.max(1, Math.min(32, Math.floor((tiles * a.rows) / 1024)));
  const [gx, gz] = gpu.grid(Math.ceil(tiles / perGroup));
  const qh = decodeRows(gpu, 'indexer.q', a.q8, null, 1, a.rows * a.heads, a.rows * a.heads, a.dim, 0);
  const code = gpu.generated(`indexer-fused ${a.heads}x${a.dim} ${JSON.stringify(o)}`, () => fusedWgsl(a.heads, a.dim, o));
  const params = gpu.uniforms(Uint32Array.of(a.rows, a.nKeys, a.pageSize, gx, perGroup, multi ? multi.tableStride : 0, multi ? 1 : 0));
  gpu.dispatch(code, [qh, a.w, a.kCache, a.kScale, a.table, a.positions, multi ? multi.rowSeq : a.positions, out, params], [gx, a.rows, gz]);
}
