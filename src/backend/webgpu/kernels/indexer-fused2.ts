/**
 * The lightning indexer on tensor cores, fourth form ('matrix-fused2…' in the kernel lab): one pass
 * over the FP8 key cache like 'matrix-fused' (indexer-fused.ts), with the roles of keys and queries
 * swapped so that the keys never need transposing: Sᵀ = K · Qᵀ [keys, heads].
 *
 *  1. The row's query is decoded once (a small pass, exact) into Qᵀ [D][H] f16; each subgroup keeps
 *     its heads' right matrices in registers for the whole run of tiles.
 *  2. Per tile of KT keys, every invocation reads 16-byte words of key codes (16 dims of one key:
 *     consecutive invocations take consecutive words, so the reads coalesce) and writes them into
 *     the tile [KT][D] in shared memory in the key's own row order: 16 contiguous f16.
 *     The decode is five integer operations per four codes: a code's seven magnitude bits moved
 *     under f16's exponent make an f16 of 2⁻⁸ times its value (subnormal codes too: exact), its sign
 *     bit moved to f16's. Bytes 0 and 2 of a word share the shifts (one u32 holds both halves), as do
 *     bytes 1 and 3, so the dims are stored in the order 0, 2, 1, 3 within every four; the query's
 *     dims are put in the same order (a dot product does not care), and the 2⁻⁸ is given back
 *     in the key scale (× 256: exact).
 *  3. Each subgroup multiplies its keys (left matrices, from shared memory) by its heads' Qᵀ.
 *  4. Sᵀ goes to shared memory; THREADS / KT invocations per key sum ReLU(s)·w over the heads
 *     (interleaved, then subgroup shuffles), times the key scale; −∞ past the row's position.
 * Loop bounds come from uniforms alone (matrix products under a workgroupUniformLoad bound came out
 * wrong on the H200: docs/webgpu.md), and no matrix is loaded column-major from shared memory.
 *
 * The shape of the work: KT keys per tile, SGK × SGH subgroups of 32 (keys split SGK ways, heads
 * SGH ways). Its twin with plain f32 products (`scalar`) runs wherever shader-f16 does, and is
 * what the tests check on lavapipe (everything but the matrix products).
 */
import { GpuError, type GpuDevice } from '../device.js';
import type { IndexerGpuArgs } from './indexer.js';
import { E4M3_DECODE_WGSL } from './wgsl.js';
import { FUSED_SLOT_WGSL, fusedBindings, fusedRowStart, type FusedRowSeq } from './indexer-fused.js';

export interface Fused2Config {
  /** Keys per tile. */
  kt: 32 | 64;
  /** Subgroups along the keys and along the heads. */
  sgk: number;
  sgh: number;
  /** Plain f32 products instead of tensor cores (the twin). */
  scalar?: boolean;
  /** Tiles per workgroup (default: from the grid size). */
  tilesPerGroup?: number;
  /** The head reduction by subgroup shuffles (default where a subgroup holds a key's invocations) or through shared memory (false). */
  shuffle?: boolean;
  /** Each invocation's head weights in registers for the whole run (default: read from shared memory for every key). */
  wRegs?: boolean;
  /** The key scales read in the reduction (the lab's comparison; default: a tile ahead, with the key words). */
  lateScale?: boolean;
  /** Tiles of key words read ahead (1: the next tile's during the products; 2: also the one after). */
  ahead?: 1 | 2;
  /**
   * Timing probes for the kernel lab (wrong results, on purpose): leave one stage out — the key
   * loads, the decode into shared memory, the matrix products or the head reduction — and the time
   * saved is that stage's share.
   */
  probe?: Fused2Probe;
}

export const FUSED2_PROBES = ['no-load', 'no-decode', 'no-mma', 'no-reduce'] as const;
export type Fused2Probe = (typeof FUSED2_PROBES)[number];

/**
 * The named forms (variant name → config): 'matrix-fused2' is the default where tensor cores are
 * (32 keys per tile, 2 × 2 subgroups: the fastest on the H200, docs/benchmarks.md).
 */
export const FUSED2_CONFIGS = {
  'matrix-fused2': { kt: 32, sgk: 2, sgh: 2, wRegs: true },
  'matrix-fused2-kt64': { kt: 64, sgk: 4, sgh: 2, wRegs: true },
  'fused2-scalar': { kt: 32, sgk: 2, sgh: 2, wRegs: true, scalar: true },
} as const satisfies Record<string, Fused2Config>;

/**
 * Further forms the kernel lab times (`dsa bench gpu --sections indexer`: `indexer_sweep_<name>_ms`)
 * without making them variants: run length (tiles per workgroup), the reduction's form, the head
 * weights from shared memory, the key scales read late, key words two tiles ahead — the last three
 * the default's former or rejected choices, kept to show what they cost. Measured on the H200 and
 * dropped (docs/benchmarks.md): runs of 4–16 tiles; 64-key tiles; heads split four ways; the query
 * matrices loaded again for every tile from device memory instead of held in registers (2.1×
 * slower); a pipelined loop with two key and two Sᵀ tiles and one barrier per tile (1.6× slower).
 */
export const FUSED2_SWEEP: Record<string, Fused2Config> = {
  'kt32-run128': { kt: 32, sgk: 2, sgh: 2, wRegs: true, tilesPerGroup: 128 },
  'kt32-noshuffle': { kt: 32, sgk: 2, sgh: 2, wRegs: true, shuffle: false },
  'kt32-wshared': { kt: 32, sgk: 2, sgh: 2 },
  'kt32-latescale': { kt: 32, sgk: 2, sgh: 2, wRegs: true, lateScale: true },
  'kt32-ahead2': { kt: 32, sgk: 2, sgh: 2, wRegs: true, ahead: 2 },
};

/** Row strides in shared memory: keys (f16) and Sᵀ (f32), padded by 16 bytes so matrix rows fall in different banks. */
const ldk = (dim: number) => dim + 8;
const lds = (heads: number) => heads + 4;

function sharedBytes(heads: number, dim: number, c: Fused2Config): number {
  return c.kt * ldk(dim) * 2 + c.kt * lds(heads) * 4 + heads * 4;
}

/** Why the config cannot run here for H heads of D dims, or null when it can. */
function unavailable(gpu: GpuDevice, heads: number, dim: number, c: Fused2Config): string | null {
  if (!gpu.features.has('shader-f16')) return 'shader-f16';
  if (!c.scalar && !(gpu.hasSubgroupMatrix('f16', 'f32', 16, 16, 16) && gpu.subgroupSize === 32)) return 'subgroup-matrix f16 → f32 16×16×16 and subgroups of 32';
  const threads = 32 * c.sgk * c.sgh;
  if (threads > gpu.limits.maxComputeInvocationsPerWorkgroup) return `${threads} invocations per workgroup`;
  if (heads % (16 * c.sgh) || c.kt % (16 * c.sgk) || dim % 16) return `H a multiple of ${16 * c.sgh}, D of 16`;
  if ((c.kt * dim) / 16 < threads || ((c.kt * dim) / 16) % threads) return 'a whole number of key words per invocation';
  if (threads % c.kt || c.kt * heads < threads) return 'whole invocations per key in the reduction';
  if ((heads / c.sgh / 16) * (dim / 16) > 16) return 'at most 16 query matrices per subgroup (registers)';
  if (sharedBytes(heads, dim, c) > gpu.limits.maxComputeWorkgroupStorageSize) return `${sharedBytes(heads, dim, c)} bytes of shared memory`;
  return null;
}

export function indexerFused2Available(gpu: GpuDevice, heads: number, dim: number, c: Fused2Config): boolean {
  return unavailable(gpu, heads, dim, c) === null;
}

/**
 * Qᵀ: out[t][j][h] (f16) = the e4m3 value of q8[t][h][π(j)], π = the order 0, 2, 1, 3 within
 * every four dims (self-inverse). One invocation per output element.
 */
const QT_WGSL = /* wgsl */ `
enable f16;
struct Params { rows: u32, heads: u32, dim: u32, total: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> q8: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f16>;
@group(0) @binding(2) var<uniform> p: Params;
${E4M3_DECODE_WGSL}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * p.groupsX) * 256u + li;
  if (i >= p.total) { return; }
  let h = i % p.heads;
  let j = (i / p.heads) % p.dim;
  let t = i / (p.heads * p.dim);
  let d = (j & ~3u) | ((j & 1u) << 1u) | ((j >> 1u) & 1u);
  let at = (t * p.heads + h) * p.dim + d;
  out[i] = f16(e4m3((q8[at >> 2u] >> ((at & 3u) * 8u)) & 0xffu));
}
`;

export function fused2Wgsl(H: number, D: number, pageSize: number, c: Fused2Config, shuffle: boolean): string {
  const { kt: KT, sgk: SGK, sgh: SGH } = c;
  const THREADS = 32 * SGK * SGH;
  const RN = KT / SGK / 16; // key blocks of 16 per subgroup
  const RM = H / SGH / 16; // head blocks of 16 per subgroup
  const DS = D / 16; // 16-dim steps
  const WPK = D / 16; // 16-byte words per key
  const V = (KT * WPK) / THREADS; // words per invocation per tile
  const LDK = ldk(D);
  const LDS = lds(H);
  const LPK = THREADS / KT; // invocations per key in the reduction
  const left = 'subgroup_matrix_left<f16, 16, 16>';
  const right = 'subgroup_matrix_right<f16, 16, 16>';
  const result = 'subgroup_matrix_result<f32, 16, 16>';
  const qLoads: string[] = [];
  for (let i = 0; i < RM; i++) {
    for (let d = 0; d < DS; d++) qLoads.push(`let q${i}_${d} = subgroupMatrixLoad<${right}>(&qT, qBase + ${d * 16 * H + i * 16}u, false, ${H}u);`);
  }
  // The stages of a tile.
  const products = (): string => {
    if (c.probe === 'no-mma') return '';
    if (c.scalar) {
      return `for (var e = li; e < ${KT * H}u; e += ${THREADS}u) {
      let key = e / ${H}u;
      let h = e % ${H}u;
      var acc = 0.0;
      for (var j = 0u; j < ${D}u; j++) { acc += f32(kS[key * ${LDK}u + j]) * f32(qT[(t * ${D}u + j) * ${H}u + h]); }
      sS[key * ${LDS}u + h] = acc;
    }`;
    }
    const lines: string[] = [];
    for (let j = 0; j < RN; j++) for (let i = 0; i < RM; i++) lines.push(`var acc${j}_${i} = ${result}();`);
    for (let d = 0; d < DS; d++) {
      for (let j = 0; j < RN; j++) {
        lines.push(`let k${d}_${j} = subgroupMatrixLoad<${left}>(&kS, (kb + ${16 * j}u) * ${LDK}u + ${16 * d}u, false, ${LDK}u);`);
        for (let i = 0; i < RM; i++) lines.push(`acc${j}_${i} = subgroupMatrixMultiplyAccumulate(k${d}_${j}, q${i}_${d}, acc${j}_${i});`);
      }
    }
    for (let j = 0; j < RN; j++) {
      for (let i = 0; i < RM; i++) lines.push(`subgroupMatrixStore(&sS, (kb + ${16 * j}u) * ${LDS}u + hb + ${16 * i}u, acc${j}_${i}, false, ${LDS}u);`);
    }
    return lines.join('\n    ');
  };
  const words = Array.from({ length: V }, (_, v) => v);
  // Word v of an invocation: key idx / WPK of the tile, dims 16·(idx % WPK) …, idx = li + v·THREADS.
  const keyOf = (v: number) => `((li + ${v * THREADS}u) / ${WPK}u)`;
  const partOf = (v: number) => `((li + ${v * THREADS}u) % ${WPK}u)`;
  const load = (v: number, tile: string) =>
    c.probe === 'no-load' ? (tile === 'span0' ? 'kc[li & 7u]' : `r${v} + vec4u(1u)`) : `kc[slotOf(tableRow, min(${tile} + ${keyOf(v)}, lastKey)) * ${WPK}u + ${partOf(v)}]`;
  const loads = (tile: string, indent: string) => words.map((v) => `${indent}r${v} = ${load(v, tile)};`).join('\n');
  const decode = (): string => {
    if (c.probe === 'no-decode') return '    if (li == 0u) { kS[0] = f16(r0.x); }';
    return words.map((v) => {
      const lines = [`let o = ${keyOf(v)} * ${LDK}u + ${partOf(v)} * 16u;`];
      for (let w = 0; w < 4; w++) {
        lines.push(`let e${w} = bitcast<vec2<f16>>(((r${v}[${w}] << 7u) & 0x3f803f80u) | ((r${v}[${w}] << 8u) & 0x80008000u));`);
        lines.push(`let d${w} = bitcast<vec2<f16>>(((r${v}[${w}] >> 1u) & 0x3f803f80u) | (r${v}[${w}] & 0x80008000u));`);
        lines.push(`kS[o + ${4 * w}u] = e${w}.x; kS[o + ${4 * w + 1}u] = e${w}.y; kS[o + ${4 * w + 2}u] = d${w}.x; kS[o + ${4 * w + 3}u] = d${w}.y;`);
      }
      return `    {\n      ${lines.join('\n      ')}\n    }`;
    }).join('\n');
  };
  // The reduction: invocation li takes key li / LPK and the heads share, share + LPK, …
  const reduce = `    {
    let key = li / ${LPK}u;
    let share = li % ${LPK}u;
    var score = 0.0;
${headSum(H, LPK, LDS, c.wRegs ?? false, c.probe === 'no-reduce' ? 1 : H / LPK, '0.0', (d) => d)}
${shuffle ? Array.from({ length: Math.log2(LPK) }, (_, b) => `    score += subgroupShuffleXor(score, ${1 << b}u);`).join('\n') : `    part[li] = score;
    workgroupBarrier();
    if (share == 0u) { for (var m = 1u; m < ${LPK}u; m++) { score += part[li + m]; } }`}
    let s = tile0 + key;
    if (share == 0u && s < spanEnd) {
      var bits = 0xff800000u;
      if (s < valid) { bits = bitcast<u32>((${c.lateScale ? 'kScale[slotOf(tableRow, s)]' : 'sc'} * 256.0) * score); }
      out[t * p.nKeys + s] = bits;
    }
${c.lateScale ? '' : '    sc = scNext;'}
    }`;
  // Per tile: decode, barrier, products, barrier, reduction (the next tile's words read during the products).
  // Read ahead: r (the next tile's words) and, two tiles ahead, n (the one after).
  const two = c.ahead === 2 && c.probe !== 'no-load';
  const readAhead = two
    ? `${words.map((v) => `    r${v} = n${v};`).join('\n')}
    if (tile0 + ${2 * KT}u < spanEnd) {
${words.map((v) => `      n${v} = ${load(v, `tile0 + ${2 * KT}u`)};`).join('\n')}
    }
    if (tile0 + ${KT}u < spanEnd) {
${c.lateScale ? '' : scaleAhead(LPK).next(KT)}
    }`
    : `    if (tile0 + ${KT}u < spanEnd) {
${loads(`tile0 + ${KT}u`, '      ')}
${c.lateScale ? '' : scaleAhead(LPK).next(KT)}
    }`;
  const loop = `${words.map((v) => `  var r${v} = ${load(v, 'span0')};${two ? `\n  var n${v} = ${load(v, `span0 + ${KT}u`)};` : ''}`).join('\n')}
${c.lateScale ? '' : scaleAhead(LPK).init}
  for (var tile0 = span0; tile0 < spanEnd; tile0 += ${KT}u) {
${decode()}
    workgroupBarrier();
${readAhead}
    {
    ${products()}
    }
    workgroupBarrier();
${reduce}
  }`;
  return /* wgsl */ `
enable f16;
${c.scalar ? '' : 'enable chromium_experimental_subgroup_matrix;'}
${shuffle ? 'enable subgroups;' : ''}
${fusedBindings(pageSize)}
@group(0) @binding(0) var<storage, read> qT: array<f16>; // decoded queries, transposed: [rows][D][H], dims in the order 0, 2, 1, 3
var<workgroup> kS: array<f16, ${KT * LDK}>; // the tile's keys [KT][D] (2⁻⁸ × their values)
var<workgroup> sS: array<f32, ${KT * LDS}>; // Sᵀ [KT][H]
var<workgroup> wS: array<f32, ${H}>;
${shuffle ? '' : `var<workgroup> part: array<f32, ${THREADS}>;`}

${FUSED_SLOT_WGSL}
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32${c.scalar ? '' : ', @builtin(subgroup_id) sg: u32'}) {
${fusedRowStart(H, THREADS, KT)}
${c.scalar ? '' : `  let kb = (sg % ${SGK}u) * ${KT / SGK}u; // this subgroup's keys and heads
  let hb = (sg / ${SGK}u) * ${H / SGH}u;
  let qBase = t * ${D * H}u + hb;
  ${qLoads.join('\n  ')}`}
  let lastKey = max(valid, 1u) - 1u;
${c.wRegs ? weightRegisters(H, LPK) : ''}
${loop}
}
`;
}

/**
 * The key scale of invocation li's key in the reduction (li / LPK of the tile) read a tile ahead,
 * with the key words, into `sc` (this tile) and `scNext`: read in the reduction itself, its
 * two dependent reads (page table, scale) would stand between the barrier and the scores. Past the
 * row's last key the reads stay on that key (the score is −∞ there anyway).
 */
export function scaleAhead(LPK: number): { init: string; next: (KT: number) => string } {
  return {
    init: `  var sc = kScale[slotOf(tableRow, min(span0 + li / ${LPK}u, lastKey))];\n  var scNext = sc;`,
    next: (KT) => `      scNext = kScale[slotOf(tableRow, min(tile0 + ${KT}u + li / ${LPK}u, lastKey))];`,
  };
}

/**
 * The head weights of invocation li's share of the heads (share, share + LPK, …), read once per
 * run into registers wr0, wr1, … (from device memory: no barrier needed).
 */
export function weightRegisters(H: number, LPK: number): string {
  return Array.from({ length: H / LPK }, (_, j) => `  let wr${j} = w[t * ${H}u + ${j * LPK}u + li % ${LPK}u];`).join('\n');
}

/**
 * Σ over the invocation's heads of ReLU(Sᵀ[key][h]) · w[h] into `score` (n of its H / LPK heads:
 * fewer only for the lab's probe), the weights from shared memory (a loop) or from registers
 * (unrolled). `zero` is the Sᵀ element type's zero and `toF32` converts an element.
 */
export function headSum(H: number, LPK: number, LDS: number, regs: boolean, n: number, zero: string, toF32: (x: string) => string): string {
  if (!regs) {
    return `    for (var j = 0u; j < ${n}u; j++) {
      let h = j * ${LPK}u + share;
      let d = sS[key * ${LDS}u + h];
      if (d > ${zero}) { score += wS[h] * ${toF32('d')}; }
    }`;
  }
  return Array.from({ length: n }, (_, j) => `    { let d = sS[key * ${LDS}u + ${j * LPK}u + share]; if (d > ${zero}) { score += wr${j} * ${toF32('d')}; } }`).join('\n');
}

/** Records the scores into `out` (f32 [rows, nKeys], allocated by the caller). */
export function indexerScoresFused2Gpu(gpu: GpuDevice, a: IndexerGpuArgs, out: GPUBuffer, c: Fused2Config, multi: FusedRowSeq | null = null): void {
  const why = unavailable(gpu, a.heads, a.dim, c);
  if (why) throw new GpuError(`indexerScoresGpu: this 'matrix-fused2' form (${c.kt} keys per tile, ${c.sgk}×${c.sgh} subgroups) needs ${why} (H ${a.heads}, D ${a.dim})`);
  const tiles = Math.ceil(a.nKeys / c.kt);
  // Runs of up to 64 tiles (the query matrices are loaded once per run) while ~512 workgroups
  // remain: on the H200 the longer the run the faster, at 16 × 32K and 16 × 128K keys (runs of 64
  // ~15% faster than runs of 8; the lab's sweep, docs/benchmarks.md).
  const perGroup = c.tilesPerGroup ?? Math.max(1, Math.min(64, Math.floor((tiles * a.rows) / 512)));
  const [gx, gz] = gpu.grid(Math.ceil(tiles / perGroup));
  const total = a.rows * a.heads * a.dim;
  const qT = gpu.scratch('indexer.qT', total * 2);
  const [qx, qy] = gpu.grid(total, 256);
  gpu.dispatch(QT_WGSL, [a.q8, qT, gpu.uniforms(Uint32Array.of(a.rows, a.heads, a.dim, total, qx))], [qx, qy]);
  // The reduction's invocations of one key are consecutive: shuffles sum them where a subgroup holds them all.
  const lanesPerKey = (32 * c.sgk * c.sgh) / c.kt;
  const shuffle = c.shuffle ?? (gpu.features.has('subgroups') && gpu.subgroupSize !== null && gpu.subgroupSize % lanesPerKey === 0);
  const code = gpu.generated(`indexer-fused2 ${a.heads}x${a.dim} page ${a.pageSize} ${JSON.stringify(c)} ${shuffle}`, () => fused2Wgsl(a.heads, a.dim, a.pageSize, c, shuffle));
  const params = gpu.uniforms(Uint32Array.of(a.rows, a.nKeys, a.pageSize, gx, perGroup, multi ? multi.tableStride : 0, multi ? 1 : 0, multi ? multi.seqs : 1));
  gpu.dispatch(code, [qT, a.w, a.kCache, a.kScale, a.table, a.positions, multi ? multi.rowSeq : a.positions, out, params], [gx, a.rows, gz]);
}
