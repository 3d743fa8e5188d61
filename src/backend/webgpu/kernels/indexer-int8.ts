/**
 * The lightning indexer on int8 tensor cores: the WebGPU backend's requantInt8 and
 * indexerScoresInt8 (an int8 indexer cache, `--indexer-cache int8`, model/cache.ts), and the
 * kernel lab's int8 forms (`dsa bench gpu --sections indexer`, rows `indexer_int8_*`). Its scores
 * are not the FP8 reference's: keys and queries are re-quantized from their FP8 codes to int8 with
 * one scale per vector (CPU twin: backend/cpu/kernels/indexer-int8.ts; agreement study:
 * src/bench/indexer-int8.ts): q = round(127 · v / max|v|), halves away from zero, scale
 * scaleIn · max|v| / 127. The model stores the keys so when it writes them (requantInt8Gpu) and
 * re-quantizes each step's queries with their head weights as scales.
 *
 * The scan (indexerScoresInt8Gpu): per tile of KT keys, the subgroups (SGK along the keys, SGH
 * along the heads) compute Sᵀ = K·Qᵀ in i8 × i8 → i32 16×16×32 products, the queries' right
 * matrices loaded column-major (right for i8 on the H200, like the NT GEMMs) once per run and kept
 * in registers. The keys' left matrices come from the tile staged in shared memory (`staged`: each
 * invocation reads 16-byte words of the int8 cache, coalesced, the next tile's during the
 * products) or straight from the cache (the first form). Then ReLU, the weights (with the queries'
 * scales) and the keys' scales (read a tile ahead: indexer-fused2.ts), −∞ past the row's position.
 * No decode. Its twin with plain i32 products (`scalar`) runs on lavapipe.
 */
import { GpuError, type GpuDevice } from '../device.js';
import { FUSED_SLOT_WGSL, fusedBindings, fusedRowStart, type FusedRowSeq } from './indexer-fused.js';
import { E4M3_DECODE_WGSL } from './wgsl.js';
import { headSum, scaleAhead, weightRegisters } from './indexer-fused2.js';

/**
 * out codes (i8, packed four per u32) and out scale[r] = scaleIn[r] · max|v| / 127 for each row r
 * of `rows` FP8 code rows of `dim` (a multiple of 4): keys (scaleIn the cache scales) or queries
 * (scaleIn the head weights). One workgroup of 64 per row: each invocation takes words of four
 * codes, the row's max through shared memory.
 */
const REQUANT_WGSL = /* wgsl */ `
struct Params { rows: u32, dim: u32, groupsX: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> codes: array<u32>;
@group(0) @binding(1) var<storage, read> scaleIn: array<f32>;
@group(0) @binding(2) var<storage, read_write> outCodes: array<u32>;
@group(0) @binding(3) var<storage, read_write> outScale: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
var<workgroup> part: array<f32, 64>;
${E4M3_DECODE_WGSL}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * p.groupsX;
  let live = r < p.rows;
  let words = p.dim / 4u;
  var amax = 0.0;
  if (live) {
    for (var i = li; i < words; i += 64u) {
      let word = codes[r * words + i];
      for (var b = 0u; b < 4u; b++) { amax = max(amax, abs(e4m3((word >> (8u * b)) & 0xffu))); }
    }
  }
  part[li] = amax;
  workgroupBarrier();
  for (var half = 32u; half > 0u; half >>= 1u) {
    if (li < half) { part[li] = max(part[li], part[li + half]); }
    workgroupBarrier();
  }
  amax = part[0];
  if (!live) { return; }
  if (li == 0u) { outScale[r] = scaleIn[r] * (amax / 127.0); }
  for (var i = li; i < words; i += 64u) {
    let word = codes[r * words + i];
    var packed = 0u;
    for (var b = 0u; b < 4u; b++) {
      var q = 0;
      if (amax > 0.0) {
        let x = 127.0 * e4m3((word >> (8u * b)) & 0xffu) / amax; // 127 · v exact in f32; the quotient rounds once (no half-integer is missed: the twin's test)
        q = i32(sign(x) * floor(abs(x) + 0.5));
      }
      packed |= (u32(q) & 0xffu) << (8u * b);
    }
    outCodes[r * words + i] = packed;
  }
}
`;

/** Re-quantizes `rows` FP8 rows of `dim` to int8: { codes (i8 packed), scale = scaleIn · max|v| / 127 }. */
export function requantInt8Gpu(gpu: GpuDevice, codes: GPUBuffer, scaleIn: GPUBuffer, rows: number, dim: number): { codes: GPUBuffer; scale: GPUBuffer } {
  if (dim % 4) throw new GpuError(`requantInt8Gpu: dim ${dim} must be a multiple of 4`);
  const out = { codes: gpu.buffer(rows * dim), scale: gpu.buffer(rows * 4) };
  if (rows === 0) return out;
  const [gx, gy] = gpu.grid(rows);
  gpu.dispatch(REQUANT_WGSL, [codes, scaleIn, out.codes, out.scale, gpu.uniforms(Uint32Array.of(rows, dim, gx, 0))], [gx, gy]);
  return out;
}

/**
 * The scan's forms: `staged` — each tile's keys read as 16-byte words (coalesced, the next tile's
 * during the products) into shared memory and the left matrices loaded from there, instead of
 * loaded straight from the cache; `wRegs` — each invocation's head weights in registers for the
 * run (indexer-fused2.ts); `scalar` — the twin with plain i32 products.
 */
export interface Int8ScanForm {
  /** Keys per tile (default 32). */
  kt?: 16 | 32 | 64;
  /** Subgroups along the keys (each takes kt / sgk of them) and along the heads (default 2 × 2). */
  sgk?: number;
  sgh?: number;
  staged?: boolean;
  wRegs?: boolean;
  scalar?: boolean;
  /** Tiles per workgroup (default: runs of up to 64 while ~512 workgroups remain). */
  tilesPerGroup?: number;
  /** The key scales read in the reduction (as indexer-fused2.ts; always so when not staged). */
  lateScale?: boolean;
  /** Staged: tiles of key words read ahead (1: the next tile's during the products; 2: also the one after). */
  ahead?: 1 | 2;
  /** The query's right matrices loaded straight from device memory (default: for runs of 64 tiles, else staged in shared memory first). */
  qGlobal?: boolean;
  /** Timing probes for the lab (wrong results, on purpose): no products; no head reduction; 'skeleton': neither (loads, staging, barriers and writes only). */
  probe?: 'no-mma' | 'no-reduce' | 'skeleton';
}

export function indexerInt8Available(gpu: GpuDevice, heads: number, dim: number, pageSize: number, form: Int8ScanForm = {}): boolean {
  return unavailable(gpu, heads, dim, pageSize, form) === null;
}

/** Why the form cannot run here for H heads of D dims and pages of pageSize keys, or null when it can. */
function unavailable(gpu: GpuDevice, heads: number, dim: number, pageSize: number, form: Int8ScanForm): string | null {
  const { kt = 32, sgk = 2, sgh = 2 } = form;
  const threads = 32 * sgk * sgh;
  if (!form.scalar && !(gpu.hasSubgroupMatrix('i8', 'i32', 16, 16, 32) && gpu.subgroupSize === 32)) return 'int8 subgroup matrices (16×16×32) and subgroups of 32';
  if (heads % (16 * sgh) || dim % 32 || kt % (16 * sgk)) return `H a multiple of ${16 * sgh}, D of 32`;
  if ((heads / sgh / 16) * (dim / 32) > 16) return 'at most 16 query matrices per subgroup (registers)';
  if (pageSize % kt) return `pages of a multiple of ${kt} keys`;
  if (threads % kt || kt * heads < threads || ((kt * dim) / 16) % threads) return 'whole invocations per key and whole key words per invocation';
  if (sharedBytes(heads, dim, form) > gpu.limits.maxComputeWorkgroupStorageSize) return `${sharedBytes(heads, dim, form)} bytes of shared memory`;
  return null;
}

/** Shared memory: the query [H][D + 16] i8 (unless read from device memory), Sᵀ [KT][H + 4] i32, the weights; staged: the tile's keys [KT][D + 16] i8. */
function sharedBytes(heads: number, dim: number, form: Int8ScanForm): number {
  const KT = form.kt ?? 32;
  return (form.qGlobal && !form.scalar ? 0 : heads * (dim + 16)) + KT * (heads + 4) * 4 + heads * 4 + (form.staged ? KT * (dim + 16) : 0);
}

export function indexerInt8Wgsl(H: number, D: number, pageSize: number, form: Int8ScanForm): string {
  const { kt: KT = 32, sgk: SGK = 2, sgh: SGH = 2, staged = false, wRegs = false, scalar = false } = form;
  const late = form.lateScale || !staged;
  const THREADS = 32 * SGK * SGH;
  const RN = KT / SGK / 16; // key blocks of 16 per subgroup
  const LDQ = D + 16; // i8 elements per staged query row
  const LDK = D + 16; // i8 elements per staged key row
  const LDS = H + 4;
  const RM = H / SGH / 16;
  const DS = D / 32;
  const LPK = THREADS / KT;
  const WPK = D / 16; // 16-byte words per key
  const V = (KT * WPK) / THREADS; // words per invocation per tile
  const right = 'subgroup_matrix_right<i8, 16, 32>';
  const left = 'subgroup_matrix_left<i8, 32, 16>';
  const result = 'subgroup_matrix_result<i32, 16, 16>';
  const qLoads: string[] = [];
  for (let i = 0; i < RM; i++) {
    for (let d = 0; d < DS; d++) {
      qLoads.push(form.qGlobal
        ? `let q${i}_${d} = subgroupMatrixLoad<${right}>(&qI8, t * ${H * D}u + (hb + ${16 * i}u) * ${D}u + ${32 * d}u, true, ${D}u);`
        : `let q${i}_${d} = subgroupMatrixLoad<${right}>(&qS, (hb + ${16 * i}u) * ${LDQ}u + ${32 * d}u, true, ${LDQ}u);`);
    }
  }
  const mma: string[] = [];
  for (let j = 0; j < RN; j++) for (let i = 0; i < RM; i++) mma.push(`var acc${j}_${i} = ${result}();`);
  if (!staged) {
    // 16 consecutive slots of one page each (clamped to the block of the row's last key: in bounds).
    for (let j = 0; j < RN; j++) mma.push(`let kBase${j} = slotOf(tableRow, min(tile0 + kb + ${16 * j}u, (lastKey / 16u) * 16u)) * ${D}u;`);
  }
  for (let d = 0; d < DS; d++) {
    for (let j = 0; j < RN; j++) {
      mma.push(staged ? `let k${d}_${j} = subgroupMatrixLoad<${left}>(&kS, (kb + ${16 * j}u) * ${LDK}u + ${32 * d}u, false, ${LDK}u);` : `let k${d}_${j} = subgroupMatrixLoad<${left}>(&kc, kBase${j} + ${32 * d}u, false, ${D}u);`);
      for (let i = 0; i < RM; i++) mma.push(`acc${j}_${i} = subgroupMatrixMultiplyAccumulate(k${d}_${j}, q${i}_${d}, acc${j}_${i});`);
    }
  }
  for (let j = 0; j < RN; j++) for (let i = 0; i < RM; i++) mma.push(`subgroupMatrixStore(&sS, (kb + ${16 * j}u) * ${LDS}u + hb + ${16 * i}u, acc${j}_${i}, false, ${LDS}u);`);
  // The twin's key word d of a tile key: from the staged tile, or from the cache.
  const keyWord = staged ? `kS[key * ${LDK / 4}u + d]` : `kc[slotOf(tableRow, min(tile0 + key, lastKey)) * ${D / 4}u + d]`;
  const scalarProducts = `for (var e = li; e < ${KT * H}u; e += ${THREADS}u) {
      let key = e / ${H}u;
      let h = e % ${H}u;
      var acc = 0;
      for (var d = 0u; d < ${D / 4}u; d++) {
        let kw = ${keyWord};
        let qw = qS[(h * ${LDQ}u) / 4u + d];
        for (var b = 0u; b < 4u; b++) { acc += i8At(kw, b) * i8At(qw, b); }
      }
      sS[key * ${LDS}u + h] = acc;
    }`;
  const noMma = form.probe === 'no-mma' || form.probe === 'skeleton';
  const noReduce = form.probe === 'no-reduce' || form.probe === 'skeleton';
  const products = noMma ? '' : scalar ? scalarProducts : mma.join('\n    ');
  // Staging: word v of an invocation is key (li + v·THREADS) / WPK of the tile, its part (li + v·THREADS) % WPK.
  const words = Array.from({ length: staged ? V : 0 }, (_, v) => v);
  const keyOf = (v: number) => `((li + ${v * THREADS}u) / ${WPK}u)`;
  const partOf = (v: number) => `((li + ${v * THREADS}u) % ${WPK}u)`;
  const load = (v: number, tile: string) => `kc[slotOf(tableRow, min(${tile} + ${keyOf(v)}, lastKey)) * ${WPK}u + ${partOf(v)}]`;
  const store = words.map((v) => `    { let o = ${keyOf(v)} * ${LDK / 4}u + ${partOf(v)} * 4u; kS[o] = bitcast<i32>(r${v}.x); kS[o + 1u] = bitcast<i32>(r${v}.y); kS[o + 2u] = bitcast<i32>(r${v}.z); kS[o + 3u] = bitcast<i32>(r${v}.w); }`).join('\n');
  // Read ahead: r (the next tile's words) and, two tiles ahead, n (the one after).
  const two = (form.ahead ?? 1) === 2;
  const nextLoads = !words.length
    ? ''
    : two
      ? `${words.map((v) => `    r${v} = n${v};`).join('\n')}
    if (tile0 + ${2 * KT}u < spanEnd) {\n${words.map((v) => `      n${v} = ${load(v, `tile0 + ${2 * KT}u`)};`).join('\n')}\n    }
    if (tile0 + ${KT}u < spanEnd) {\n${late ? '' : scaleAhead(LPK).next(KT)}\n    }`
      : `    if (tile0 + ${KT}u < spanEnd) {\n${words.map((v) => `      r${v} = ${load(v, `tile0 + ${KT}u`)};`).join('\n')}\n${late ? '' : scaleAhead(LPK).next(KT)}\n    }`;
  const firstLoads = words.map((v) => `  var r${v} = ${load(v, 'span0')};${two ? `\n  var n${v} = ${load(v, `span0 + ${KT}u`)};` : ''}`).join('\n');
  // The reduction of the tile at tile0 from Sᵀ row `key` on (key: the invocation's, li / LPK, plus the tile's first row), each key's score × its scale.
  const reduce = (scale: string) => `    let share = li % ${LPK}u;
    var score = 0.0;
${noReduce ? '    score = f32(sS[key]);' : headSum(H, LPK, LDS, wRegs, H / LPK, '0', (d) => `f32(${d})`)}
${scalar ? `    part[li] = score;
    workgroupBarrier();
    if (share == 0u) { for (var m = 1u; m < ${LPK}u; m++) { score += part[li + m]; } }` : Array.from({ length: Math.log2(LPK) }, (_, b) => `    score += subgroupShuffleXor(score, ${1 << b}u);`).join('\n')}
    let s = tile0 + li / ${LPK}u;
    if (share == 0u && s < spanEnd) {
      var bits = 0xff800000u;
      if (s < valid) { bits = bitcast<u32>(${scale} * score); }
      out[t * p.nKeys + s] = bits;
    }`;
  return /* wgsl */ `
${scalar ? '' : 'enable chromium_experimental_subgroup_matrix;\nenable subgroups;'}
${fusedBindings(pageSize, staged ? 'array<vec4u>; // int8 keys [slots][D], 16 per word' : 'array<i32>; // int8 keys [slots][D], 4 per word')}
@group(0) @binding(0) var<storage, read> qI8: array<i32>; // int8 queries [rows][H][D], 4 per word
${form.qGlobal && !scalar ? '' : `var<workgroup> qS: array<i32, ${(H * LDQ) / 4}>; // this row's query [H][D], padded rows`}
var<workgroup> sS: array<i32, ${KT * LDS}>; // Sᵀ [KT][H]
var<workgroup> wS: array<f32, ${H}>;
${staged ? `var<workgroup> kS: array<i32, ${(KT * LDK) / 4}>; // the tile's keys [KT][D], padded rows` : ''}
${scalar ? `var<workgroup> part: array<f32, ${THREADS}>;` : ''}
${FUSED_SLOT_WGSL}
fn i8At(word: i32, b: u32) -> i32 { return (word << (24u - 8u * b)) >> 24u; }

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32${scalar ? '' : ', @builtin(subgroup_id) sg: u32'}) {
${fusedRowStart(H, THREADS, KT)}
${form.qGlobal && !scalar ? '' : `  for (var i = li; i < ${(H * D) / 4}u; i += ${THREADS}u) {
    qS[(i / ${D / 4}u) * ${LDQ / 4}u + i % ${D / 4}u] = qI8[t * ${(H * D) / 4}u + i];
  }
  workgroupBarrier();`}
  let lastKey = max(valid, 1u) - 1u;
${scalar ? '' : `  let kb = (sg % ${SGK}u) * ${KT / SGK}u; // this subgroup's keys and heads
  let hb = (sg / ${SGK}u) * ${H / SGH}u;
  ${qLoads.join('\n  ')}`}
${wRegs ? weightRegisters(H, LPK) : ''}
${firstLoads}
${late ? '' : scaleAhead(LPK).init}
  for (var tile0 = span0; tile0 < spanEnd; tile0 += ${KT}u) {
${staged ? `${store}\n    workgroupBarrier();\n${nextLoads}` : ''}
    {
    ${products}
    }
    workgroupBarrier();
    let key = li / ${LPK}u;
${reduce(late ? 'kScale[slotOf(tableRow, s)]' : 'sc')}
${late ? '' : '    sc = scNext;'}
${staged ? '' : '    workgroupBarrier(); // Sᵀ is written again next tile (staged: after the next barrier anyway)'}
  }
}
`;
}

/**
 * The form the WebGPU backend runs for H heads of D dims and pages of pageSize keys: with int8
 * tensor cores the lab's fastest (keys staged, weights in registers; the queries' matrices as the
 * run length says: indexerScoresInt8Gpu; docs/benchmarks.md); 2 × 2 subgroups where H is a
 * multiple of 32, else 2 × 1; the twin with i32 products without tensor cores. Null when none runs.
 */
export function int8ScanFormFor(gpu: GpuDevice, heads: number, dim: number, pageSize: number): Int8ScanForm | null {
  const base: Int8ScanForm = { staged: true, wRegs: true, sgk: 2, sgh: heads % 32 === 0 ? 2 : 1 };
  for (const form of [base, { ...base, scalar: true }]) if (indexerInt8Available(gpu, heads, dim, pageSize, form)) return form;
  return null;
}

/** The scan's inputs: int8 queries [rows][H][D] with their weights (× their scales), the int8 key cache with its scales (× theirs). */
export interface Int8ScanArgs {
  qI8: GPUBuffer;
  wq: GPUBuffer;
  kI8: GPUBuffer;
  kScale: GPUBuffer;
  table: GPUBuffer;
  pageSize: number;
  positions: GPUBuffer;
  rows: number;
  heads: number;
  dim: number;
  nKeys: number;
}

/** Records the scores into `out` (f32 [rows, nKeys]). */
export function indexerScoresInt8Gpu(gpu: GpuDevice, a: Int8ScanArgs, out: GPUBuffer, multi: FusedRowSeq | null, form: Int8ScanForm = {}): void {
  const why = unavailable(gpu, a.heads, a.dim, a.pageSize, form);
  if (why) throw new GpuError(`indexerScoresInt8Gpu: this form (${JSON.stringify(form)}) needs ${why} (H ${a.heads}, D ${a.dim}, page ${a.pageSize})`);
  const tiles = Math.ceil(a.nKeys / (form.kt ?? 32));
  const perGroup = form.tilesPerGroup ?? Math.max(1, Math.min(64, Math.floor((tiles * a.rows) / 512)));
  // Unless the form says: the query's matrices from device memory for runs of 64 tiles (16 × 128K
  // keys on the H200: 0.186 against 0.208 ms), staged in shared memory for shorter ones (16 × 32K:
  // 0.063 against 0.073 ms).
  form = { ...form, qGlobal: form.qGlobal ?? perGroup >= 64 };
  const [gx, gz] = gpu.grid(Math.ceil(tiles / perGroup));
  const code = gpu.generated(`indexer-int8 ${a.heads}x${a.dim} page ${a.pageSize} ${JSON.stringify(form)}`, () => indexerInt8Wgsl(a.heads, a.dim, a.pageSize, form));
  const params = gpu.uniforms(Uint32Array.of(a.rows, a.nKeys, a.pageSize, gx, perGroup, multi ? multi.tableStride : 0, multi ? 1 : 0, multi ? multi.seqs : 1));
  gpu.dispatch(code, [a.qI8, a.wq, a.kI8, a.kScale, a.table, a.positions, multi ? multi.rowSeq : a.positions, out, params], [gx, a.rows, gz]);
}
