/**
 * The lightning indexer on tensor cores, third form ('matrix-fused' in the kernel lab): one pass
 * over the FP8 key cache, no f16 copy of it in device memory.
 *
 * A workgroup of four subgroups takes one query row and a run of key tiles (64 keys each):
 *  1. the row's query, decoded once to f16 by a small pass (exact: every e4m3 value is an f16), is
 *     loaded as left matrices straight from storage and kept in registers for the whole run
 *     (each subgroup holds H/32 × D/16 of them: half of the heads, every 16 dims);
 *  2. per tile, every invocation reads 16-byte words of key codes (two keys' worth at a time) and
 *     decodes them exactly to f16, two at a time (dec2), into a transposed tile [D][64] in shared memory; the next
 *     tile's words are already being read while this tile is multiplied;
 *  3. each subgroup multiplies its heads by half of the tile's keys: S = q·kᵀ [H, 64], f32;
 *  4. S goes to shared memory; ReLU, the head weights (two invocations per key, half of the heads
 *     each), the key scale and the causal mask give the tile's 64 scores (−∞ past the row's
 *     position).
 * Every tile of the run is multiplied, also those past a row's position (only prefill rows have
 * such tiles, at most one chunk's worth): loop bounds come from uniforms alone. Found on the H200
 * (Dawn, Vulkan): with a loop bound taken from workgroupUniformLoad around the matrix products, or
 * with right matrices loaded column-major from shared memory, the products came out wrong; the
 * kernel lab's checks caught both (docs/webgpu.md).
 *
 * Several sequences in one grid: with `rowSeq`, row t reads its keys through row rowSeq[t] of a
 * 2-D block table of `tableStride` entries per sequence (see SeqPages in backend.ts).
 * Needs shader-f16, subgroup-matrix f16 → f32 16×16×16, subgroups of 32, H a multiple of 8·SG and
 * D a multiple of 16·SG (SG = 4 or 8 subgroups), with H/32 · D/16 ≤ 16 query matrices per subgroup (DeepSeek-V3.2: 64 × 128).
 * Its twin with plain f32 products ('fused-scalar') runs wherever shader-f16 does, and is what the
 * tests check on lavapipe (everything but the matrix products).
 */
import { GpuError, type GpuDevice } from '../device.js';
import type { IndexerGpuArgs } from './indexer.js';
import { decodeRows } from './indexer-direct.js';
import { E4M3_PAIR_TO_F16_WGSL } from './wgsl.js';

/** Keys per tile. */
const KT = 64;
/** Subgroups of 32 per workgroup: 8 where the shape allows (faster on the H200: 1.12 vs 1.49 ms at batch 16, 128K keys), else 4. */
function subgroupsFor(heads: number, dim: number, o: FusedOptions): 4 | 8 {
  if (o.subgroups) return o.subgroups;
  return heads % 64 === 0 && dim % 128 === 0 ? 8 : 4;
}

/** Shared-memory bytes for H heads of D dims: key rows (f16, padded), S (f32, padded), weights, partial sums. */
function sharedBytes(heads: number, dim: number, subgroups: number): number {
  return dim * (KT + 8) * 2 + heads * (KT + 4) * 4 + heads * 4 + 32 * subgroups * 4;
}

/** The kernel's forms: tensor-core products (default) or plain f32 ones; tiles per workgroup (default: from the grid size). */
export interface FusedOptions {
  scalar?: boolean;
  tilesPerGroup?: number;
  /** Subgroups per workgroup: 4 (each half of the heads × half of the keys) or 8 (a quarter of the heads). */
  subgroups?: 4 | 8;
  /** The head reduction by subgroup shuffles (default where the device has subgroups of 4 or more) or through shared memory (false). */
  shuffle?: boolean;
}

export function indexerFusedAvailable(gpu: GpuDevice, heads: number, dim: number, o: FusedOptions = {}): boolean {
  return (
    gpu.features.has('shader-f16') &&
    (o.scalar || (gpu.hasSubgroupMatrix('f16', 'f32', 16, 16, 16) && gpu.subgroupSize === 32)) &&
    heads % 32 === 0 &&
    dim % 32 === 0 &&
    (heads / 32) * (dim / 16) <= 16 &&
    heads % (16 * (subgroupsFor(heads, dim, o) / 2)) === 0 &&
    dim % (16 * subgroupsFor(heads, dim, o)) === 0 && // an even number of 16-byte words per invocation and tile
    sharedBytes(heads, dim, subgroupsFor(heads, dim, o)) <= gpu.limits.maxComputeWorkgroupStorageSize
  );
}

/**
 * The uniforms and bindings 1–8 of the fused indexers (binding 0, the query, is each kernel's own;
 * `keys` the type of the key cache's array), with the page size a constant of the kernel: slot
 * arithmetic by shifts when it is a power of two.
 */
export function fusedBindings(pageSize: number, keys = 'array<vec4u>; // key codes [slots][D], 16 per word'): string {
  return /* wgsl */ `struct Params { rows: u32, nKeys: u32, pageSize: u32, groupsX: u32, tilesPerGroup: u32, tableStride: u32, multi: u32, seqs: u32 }
const PAGE: u32 = ${pageSize}u;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> kc: ${keys}
@group(0) @binding(3) var<storage, read> kScale: array<f32>;
@group(0) @binding(4) var<storage, read> table: array<i32>;
@group(0) @binding(5) var<storage, read> positions: array<i32>;
@group(0) @binding(6) var<storage, read> rowSeq: array<i32>;
@group(0) @binding(7) var<storage, read_write> out: array<u32>; // f32 bits
@group(0) @binding(8) var<uniform> p: Params;`;
}

/** WGSL of both fused indexers (indexer-fused2.ts too): the cache slot of key s through table row `tableRow`. */
export const FUSED_SLOT_WGSL = /* wgsl */ `
fn slotOf(tableRow: u32, s: u32) -> u32 {
  return u32(table[tableRow * p.tableStride + s / PAGE]) * PAGE + s % PAGE;
}
`;

/**
 * The start of a fused indexer's main (both kernels): row t = wg.y, its table row, its head
 * weights into wS, the keys it sees (valid) and its workgroup's run of keys [span0, spanEnd).
 */
export function fusedRowStart(heads: number, threads: number, keysPerTile: number): string {
  return `  let t = wg.y;
  // A row whose sequence is outside the table sees no keys (its reads stay on table row 0).
  let seq = select(0, rowSeq[t], p.multi == 1u);
  let known = seq >= 0 && u32(seq) < max(p.seqs, 1u);
  let tableRow = select(0u, u32(seq), known);
  for (var h = li; h < ${heads}u; h += ${threads}u) { wS[h] = w[t * ${heads}u + h]; }
  let valid = select(0u, u32(clamp(positions[t] + 1, 0, i32(p.nKeys))), known); // keys the row sees
  let span0 = (wg.x + wg.z * p.groupsX) * p.tilesPerGroup * ${keysPerTile}u;
  let spanEnd = min(span0 + p.tilesPerGroup * ${keysPerTile}u, p.nKeys);`;
}

function fusedWgsl(H: number, D: number, pageSize: number, o: FusedOptions): string {
  const SG = subgroupsFor(H, D, o);
  const THREADS = 32 * SG;
  const RM = H / 16 / (SG / 2); // head blocks of 16 per subgroup (subgroups split the heads SG/2 ways, the keys 2 ways)
  const RN = KT / 32; // key blocks of 16 per subgroup
  const DS = D / 16; // 16-dim steps
  const WPK = D / 16; // 16-byte words per key
  const V = (KT * WPK) / THREADS; // words per invocation per tile
  const LDK = KT + 8; // row stride of the keys in shared memory (f16): [D][KT], padded
  const LDS = KT + 4; // S row stride (f32), padded
  const left = 'subgroup_matrix_left<f16, 16, 16>';
  const right = 'subgroup_matrix_right<f16, 16, 16>';
  const result = 'subgroup_matrix_result<f32, 16, 16>';
  const qLoads: string[] = [];
  for (let i = 0; i < RM; i++) {
    for (let d = 0; d < DS; d++) {
      qLoads.push(`let a${i}_${d} = subgroupMatrixLoad<${left}>(&qh, qBase + ${i * 16 * D + d * 16}u, false, ${D}u);`);
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
      for (var d = 0u; d < ${D}u; d++) { acc += f32(qh[(t * ${H}u + h) * ${D}u + d]) * f32(kS[d * ${LDK}u + k]); }
      sS[h * ${LDS}u + k] = acc;
    }`;
  // Word v of an invocation: key and part (16 codes: dims 16·part …) within the tile; words 2m
  // and 2m + 1 hold the same part of two adjacent keys, so each f16 pair of the tile is written by
  // one invocation.
  const wordAt = (v: number): { key: string; part: string } => {
    const idx = `(li + ${(v >> 1) * THREADS}u)`;
    return { key: `2u * (${idx} / ${WPK}u) + ${v & 1}u`, part: `${idx} % ${WPK}u` };
  };
  const load = (v: number, tile: string) => {
    const { key, part } = wordAt(v);
    return `kc[slotOf(tableRow, min(${tile} + ${key}, lastKey)) * ${WPK}u + ${part}]`;
  };
  // Two codes (byte b of two adjacent keys' words) → two f16 in one u32: the magnitude bits moved
  // under f16's exponent (an f16 of 2⁻⁸ times the e4m3 value, subnormal codes included: exact),
  // the signs set, then one multiplication by 256 on the pair.
  const pair = (x: string, y: string, b: number) =>
    `dec2(((${x} >> ${8 * b}u) & 0xffu) | (((${y} >> ${8 * b}u) & 0xffu) << 16u))`;
  const decode: string[] = [];
  for (let v = 0; v < V; v += 2) {
    const { key, part } = wordAt(v);
    const lines: string[] = [];
    for (let c = 0; c < 4; c++) {
      for (let b = 0; b < 4; b++) {
        const at = `o + ${(4 * c + b) * LDK}u`;
        lines.push(`let h${c}${b} = ${pair(`r${v}[${c}]`, `r${v + 1}[${c}]`, b)};`);
        lines.push(`kS[${at}] = h${c}${b}.x;`);
        lines.push(`kS[${at} + 1u] = h${c}${b}.y;`);
      }
    }
    decode.push(`    {\n      let o = (${part}) * ${16 * LDK}u + ${key};\n      ${lines.join('\n      ')}\n    }`);
  }
  const hShare = (H * KT) / THREADS; // heads per invocation in the reduction
  // The head reduction, two forms. partReduce: THREADS / KT invocations per key (consecutive
  // invocations take consecutive keys: conflict-free reads), partial sums through shared memory and
  // one more barrier. shuffleReduce (tensor-core form, subgroups of 32): each subgroup takes KT / SG
  // keys with 32·SG / KT lanes per key (heads interleaved between them), summed by shuffles: no
  // barrier, no partial sums in shared memory.
  const partReduce = `    let key = li % ${KT}u;
    let share = li / ${KT}u;
    var score = 0.0;
    for (var h = share * ${hShare}u; h < (share + 1u) * ${hShare}u; h++) {
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
    }`;
  const lanesPerKey = (32 * SG) / KT;
  const shuffleReduce = `    let lane = li % 32u;
    let key = (li / 32u) * ${KT / SG}u + lane / ${lanesPerKey}u;
    let share = lane % ${lanesPerKey}u;
    var score = 0.0;
    for (var j = 0u; j < ${H / lanesPerKey}u; j++) {
      let h = j * ${lanesPerKey}u + share;
      let d = sS[h * ${LDS}u + key];
      if (d > 0.0) { score += wS[h] * d; }
    }
${Array.from({ length: Math.log2(lanesPerKey) }, (_, b) => `    score += subgroupShuffleXor(score, ${1 << b}u);`).join('\n')}
    let s = tile0 + key;
    if (share == 0u && s < spanEnd) {
      var bits = 0xff800000u;
      if (s < valid) { bits = bitcast<u32>(kScale[slotOf(tableRow, s)] * score); }
      out[t * p.nKeys + s] = bits;
    }`;
  return /* wgsl */ `
enable f16;
${o.scalar ? '' : 'enable chromium_experimental_subgroup_matrix;'}
${o.shuffle ? 'enable subgroups;' : ''}
${fusedBindings(pageSize)}
@group(0) @binding(0) var<storage, read> qh: array<f16>; // decoded queries [rows][H][D]
var<workgroup> kS: array<f16, ${D * LDK}>; // the tile's keys, transposed: [D][KT]
var<workgroup> sS: array<f32, ${H * LDS}>; // S = q·kᵀ [H][KT]
var<workgroup> wS: array<f32, ${H}>;
var<workgroup> part: array<f32, ${THREADS}>;

${E4M3_PAIR_TO_F16_WGSL}
${FUSED_SLOT_WGSL}
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32${o.scalar ? '' : ', @builtin(subgroup_id) sg: u32'}) {
${fusedRowStart(H, THREADS, KT)}
${o.scalar ? '' : `  let hb = (sg % ${SG / 2}u) * ${16 * RM}u; // this subgroup's heads and keys in the tile
  let kb = (sg / ${SG / 2}u) * ${KT / 2}u;
  let qBase = (t * ${H}u + hb) * ${D}u;
  ${qLoads.join('\n  ')}`}

  // Word v of the tile: its key and 16-byte part (see wordAt).
  let lastKey = max(valid, 1u) - 1u;
${words.map((v) => `  var r${v}: vec4u;`).join('\n')}
${words.map((v) => `  r${v} = ${load(v, 'span0')};`).join('\n')}
  for (var tile0 = span0; tile0 < spanEnd; tile0 += ${KT}u) {
    // Decode the tile's words into the transposed tile.
${decode.join('\n')}
    workgroupBarrier();
    // The next tile's words, read while this one is multiplied.
    let next = tile0 + ${KT}u;
    if (next < spanEnd) {
${words.map((v) => `      r${v} = ${load(v, 'next')};`).join('\n')}
    }
    {
    ${o.scalar ? scalarProducts : ''}
    ${o.scalar ? '' : mma.join('\n    ')}
    }
    workgroupBarrier();
${o.shuffle ? shuffleReduce : partReduce}
  }
}
`;
}

/** Multi-sequence form of the arguments: rows map to rows of a 2-D block table. */
export interface FusedRowSeq {
  rowSeq: GPUBuffer;
  /** Entries per sequence in the 2-D table, and its rows. */
  tableStride: number;
  seqs: number;
}

/** Records the scores into `out` (f32 [rows, nKeys], allocated by the caller). */
export function indexerScoresFusedGpu(gpu: GpuDevice, a: IndexerGpuArgs, out: GPUBuffer, o: FusedOptions, multi: FusedRowSeq | null = null): void {
  if (!indexerFusedAvailable(gpu, a.heads, a.dim, o)) {
    throw new GpuError(
      `indexerScoresGpu: the 'matrix-fused' variant needs subgroup-matrix f16 tensor cores, subgroups of 32 and H, D multiples of 32 with H/32·D/16 ≤ 16 (H ${a.heads}, D ${a.dim})`,
    );
  }
  const tiles = Math.ceil(a.nKeys / KT);
  // Runs of up to 8 tiles (the query matrices are loaded once per run) while at least ~2048
  // workgroups remain: on the H200 (docs/benchmarks.md) runs of 8 won at 16 × 128K keys, single
  // tiles at 16 × 4K, and longer runs (32) lost everywhere.
  const perGroup = o.tilesPerGroup ?? Math.max(1, Math.min(8, Math.floor((tiles * a.rows) / 2048)));
  const [gx, gz] = gpu.grid(Math.ceil(tiles / perGroup));
  const qh = decodeRows(gpu, 'indexer.q', a.q8, null, a.rows * a.heads, a.rows * a.heads, a.dim, 0);
  const shuffle = o.shuffle ?? (gpu.features.has('subgroups') && (gpu.subgroupSize ?? 0) >= 4);
  const form: FusedOptions = { ...o, shuffle };
  const code = gpu.generated(`indexer-fused ${a.heads}x${a.dim} page ${a.pageSize} ${JSON.stringify(form)}`, () => fusedWgsl(a.heads, a.dim, a.pageSize, form));
  const params = gpu.uniforms(Uint32Array.of(a.rows, a.nKeys, a.pageSize, gx, perGroup, multi ? multi.tableStride : 0, multi ? 1 : 0, multi ? multi.seqs : 1));
  gpu.dispatch(code, [qh, a.w, a.kCache, a.kScale, a.table, a.positions, multi ? multi.rowSeq : a.positions, out, params], [gx, a.rows, gz]);
}
