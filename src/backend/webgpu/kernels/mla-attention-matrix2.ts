/**
 * MLA attention on tensor cores, second form ('matrix2' in the kernel lab): the contract of
 * mla-attention-matrix.ts (f32 or bf16 latent caches, sparse or dense rows, rowSeq; CPU twin
 * mlaAttention) with what matmul-staged.ts showed fast on the H200. Five kernels per call:
 *  1. prep: the queries transposed to Qᵀ [row][dims][heads] f16 (the scores' right operand).
 *  1b. entries: the cache slot of every entry (mlaEntrySlotsGpu of mla-attention-matrix.ts).
 *  2. scores: per tile of 64 entries and ALL heads, Sᵀ = L · Qᵀ. Each 64-dim chunk of the tile's
 *     latent rows is gathered with 16-byte loads (consecutive invocations read consecutive words
 *     of one row), converted to f16 in registers and stored in its natural layout [entry][dim]
 *     (rows padded by 16 bytes) as the LEFT operand; the next chunk's words are read while this one
 *     is multiplied; Qᵀ is the right operand straight from storage. The tile's Sᵀ goes through
 *     shared memory to S [row][head][entry] (·scale, −∞ where there is no entry), and each head's
 *     maximum is folded across tiles by an atomic max on an order-preserving key.
 *  3. values: per (split of the entries, 128 dims of r, row), ALL heads: P = exp(S − max) as f16
 *     [heads][entries] in shared memory (left operand), V = the tiles' latent rows [entry][128 dims]
 *     gathered as in 2 (right operand, row-major); O and Σ P (of the rounded P) per split. Splits
 *     are runs of tiles sized for about `groups` workgroups, so partial outputs stay small.
 *  4. combine: out = Σ O / Σ P over the splits.
 * Every subgroup-matrix loop is unrolled when the WGSL is generated (accumulators acc_i_j are plain
 * variables); no matrix is loaded column-major from shared memory; loop bounds come from uniforms or
 * constants (the H200's Dawn/Vulkan stack computed wrong products otherwise: docs/webgpu.md).
 * Robustness checks may be off: every access is in bounds by construction (slots past the latent
 * buffer count as no entry).
 *
 * `scalar: true` replaces the matrix products by plain f32 loops over the same shared tiles (same
 * f16 operands), so everything else runs wherever shader-f16 does (lavapipe in the tests).
 * Needs heads 64, 128 or 256, r a multiple of 128, r + dr a multiple of 64, and the shared memory of
 * both passes (43 KB at DeepSeek-V3.2's 128 heads); the matrix form also subgroup-matrix f16 → f32
 * 16×16×16 and subgroups of 32.
 */
import type { LatentFormat } from '../../backend.js';
import { GpuError, type GpuDevice, type UniformParams } from '../device.js';
import { mlaEntrySlotsGpu } from './mla-attention-matrix.js';
import type { MlaGpuArgs, MlaGpuShape } from './mla-attention.js';
import type { GpuPages } from './pages.js';
import { ORDER_KEY_WGSL } from './wgsl.js';

/**
 * The tensor-core attention kernel the WebGPU backend runs where both can: 'matrix'
 * (mla-attention-matrix.ts) or this one. DSA_WEBGPU_ATTENTION=matrix|matrix2 overrides it.
 */
export const TENSOR_CORE_ATTENTION: 'matrix' | 'matrix2' = 'matrix2';

/** Scores held at once, bytes (rows of a call are processed in groups under this). */
const SCORE_BUDGET = 256 * 1024 * 1024;
/** Invocations per workgroup of the two GEMM passes (8 subgroups of 32 on the H200). */
const THREADS = 256;
/** Padded shared row lengths (f16 elements): latent chunk [64][64], P [H][64], V [64][128]. */
const LDL = 72;
const LDP = 72;
const LDV = 136;

export interface Matrix2Options {
  /** Plain f32 products instead of tensor cores (the twin the tests run on lavapipe). */
  scalar?: boolean;
  /** Workgroups the values pass aims for (splits = groups / (rows · r/128)); default 128 from 8 rows, else 1024. */
  groups?: number;
  /** Tiles of 64 entries per split (overrides `groups`). */
  tilesPerSplit?: number;
  /** Values pass: read the next tile's S and V words while this tile is multiplied (default true; false: fewer registers). */
  prefetch?: boolean;
  /** Label each pass's dispatch `<gpu.label>.<pass>` (the lab's per-pass times). */
  passLabels?: boolean;
}

function sharedBytes(heads: number): { scores: number; values: number } {
  return { scores: 64 * 4 + 64 * LDL * 2 + 64 * (heads + 4) * 4, values: heads * LDP * 2 + 64 * LDV * 2 + THREADS * 4 };
}

export function mlaMatrix2Available(gpu: GpuDevice, shape: MlaGpuShape, format: LatentFormat, o: Matrix2Options = {}): boolean {
  const shared = sharedBytes(shape.heads);
  return (
    (format === 'f32' || format === 'bf16') &&
    gpu.features.has('shader-f16') &&
    (o.scalar === true || (gpu.hasSubgroupMatrix('f16', 'f32', 16, 16, 16) && gpu.subgroupSize === 32)) &&
    [64, 128, 256].includes(shape.heads) &&
    shape.r % 128 === 0 &&
    (shape.r + shape.dr) % 64 === 0 &&
    Math.max(shared.scores, shared.values) <= gpu.limits.maxComputeWorkgroupStorageSize &&
    gpu.limits.maxComputeInvocationsPerWorkgroup >= THREADS &&
    gpu.limits.maxStorageBuffersPerShaderStage >= 6
  );
}

interface Gen {
  H: number;
  R: number;
  ROW: number;
  bf16: boolean;
  scalar: boolean;
  prefetch: boolean;
}

const PARAMS = /* wgsl */ `
struct Params {
  rows: u32, E: u32, Ep: u32, splits: u32,
  tilesPerSplit: u32, scale: f32, rowOffset: u32, total: u32,
  groupsX: u32, nSlots: u32, tiles: u32, pad: u32,
}`;

/** WGSL shared by both GEMM passes: the slot of entry j of row tl, and one 16-byte word of a latent row as f16 into shared memory. */
function gatherWgsl(g: Gen, arr: 'latS' | 'vS'): string {
  const convert = g.bf16
    ? [0, 1, 2, 3].map((i) => `${arr}[o + ${2 * i}u] = f16(bitcast<f32>(v[${i}] << 16u)); ${arr}[o + ${2 * i + 1}u] = f16(bitcast<f32>(v[${i}] & 0xffff0000u));`)
    : [0, 1, 2, 3].map((i) => `${arr}[o + ${i}u] = f16(bitcast<f32>(v[${i}]));`);
  return /* wgsl */ `
const NONE: u32 = 0xffffffffu;
const H: u32 = ${g.H}u;
const R: u32 = ${g.R}u;
const ROW: u32 = ${g.ROW}u;
const EPW: u32 = ${g.bf16 ? 8 : 4}u; // latent elements per 16-byte word
const WPR: u32 = ${g.bf16 ? g.ROW / 8 : g.ROW / 4}u; // words per latent row
fn slotAt(tl: u32, j: u32) -> u32 {
  if (j >= p.E) { return NONE; }
  let s = slots[tl * p.E + j];
  return select(NONE, s, s < p.nSlots);
}
fn word(slot: u32, w: u32) -> vec4u {
  if (slot == NONE) { return vec4u(); }
  return latent[slot * WPR + w];
}
fn put_${arr}(o: u32, v: vec4u) {
  ${convert.join('\n  ')}
}
`;
}

function prepWgsl(g: Gen): string {
  return /* wgsl */ `
enable f16;
${PARAMS}
@group(0) @binding(0) var<storage, read> qLat: array<f32>;
@group(0) @binding(1) var<storage, read> qPe: array<f32>;
@group(0) @binding(2) var<storage, read_write> qT: array<u32>; // f16 pairs: [rows][ROW][H]
@group(0) @binding(3) var<uniform> p: Params;
const H: u32 = ${g.H}u;
const R: u32 = ${g.R}u;
const DR: u32 = ${g.ROW - g.R}u;
const ROW: u32 = ${g.ROW}u;
fn q(t: u32, h: u32, c: u32) -> f32 {
  if (c < R) { return qLat[(t * H + h) * R + c]; }
  return qPe[(t * H + h) * DR + c - R];
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 256u + lid.x;
  if (i >= p.total) { return; }
  // Invocations along the dims (coalesced reads); each writes the pair of heads 2·hp, 2·hp + 1.
  let c = i % ROW;
  let th = i / ROW; // t · H/2 + hp
  let t = th / (H / 2u);
  let h = 2u * (th % (H / 2u));
  qT[(t * ROW + c) * (H / 2u) + h / 2u] = bitcast<u32>(vec2<f16>(f16(q(t, h, c)), f16(q(t, h + 1u, c))));
}
`;
}

const LEFT = 'subgroup_matrix_left<f16, 16, 16>';
const RIGHT = 'subgroup_matrix_right<f16, 16, 16>';
const RESULT = 'subgroup_matrix_result<f32, 16, 16>';

/** Names acc_i_j for an RI × RJ block of result matrices. */
function accNames(ri: number, rj: number): [number, number, string][] {
  const out: [number, number, string][] = [];
  for (let i = 0; i < ri; i++) for (let j = 0; j < rj; j++) out.push([i, j, `acc_${i}_${j}`]);
  return out;
}

function scoresWgsl(g: Gen): string {
  const { H } = g;
  const LDS = H + 4;
  const WPC = g.bf16 ? 8 : 16; // words per 64-dim chunk of a row
  const NW = (64 * WPC) / THREADS; // words per invocation per chunk
  const SGH = Math.min(8, H / 16); // subgroups along the heads, and along the entries
  const SGE = 8 / SGH;
  const RE = 4 / SGE; // entry blocks per subgroup
  const RH = H / 16 / SGH; // head blocks per subgroup
  const accs = accNames(RE, RH);
  const words = Array.from({ length: NW }, (_, w) => w);
  const RES = (64 * H) / THREADS; // results per invocation (scalar form)
  const matrixProducts = [0, 16, 32, 48]
    .map((kk) => {
      const lines: string[] = [];
      for (let i = 0; i < RE; i++) lines.push(`let a${i} = subgroupMatrixLoad<${LEFT}>(&latS, (eb + ${16 * i}u) * ${LDL}u + ${kk}u, false, ${LDL}u);`);
      for (let j = 0; j < RH; j++) lines.push(`let b${j} = subgroupMatrixLoad<${RIGHT}>(&qT, qBase + (c * 64u + ${kk}u) * H + hb + ${16 * j}u, false, H);`);
      for (const [i, j, a] of accs) lines.push(`${a} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, ${a});`);
      return `{\n      ${lines.join('\n      ')}\n    }`;
    })
    .join('\n    ');
  const scalarProducts = `for (var j = 0u; j < ${RES}u; j++) {
      let idx = j * ${THREADS}u + li;
      let e = idx / H;
      let h = idx % H;
      var s = 0.0;
      for (var d = 0u; d < 64u; d++) { s += f32(latS[e * ${LDL}u + d]) * f32(qT[qBase + (c * 64u + d) * H + h]); }
      accs[j] += s;
    }`;
  const stores = g.scalar
    ? `for (var j = 0u; j < ${RES}u; j++) { let idx = j * ${THREADS}u + li; sS[(idx / H) * ${LDS}u + idx % H] = accs[j]; }`
    : accs.map(([i, j, a]) => `subgroupMatrixStore(&sS, (eb + ${16 * i}u) * ${LDS}u + hb + ${16 * j}u, ${a}, false, ${LDS}u);`).join('\n  ');
  const TPH = THREADS / H; // invocations per head for the maxima
  return /* wgsl */ `
enable f16;
${g.scalar ? '' : 'enable chromium_experimental_subgroup_matrix;'}
${PARAMS}
@group(0) @binding(0) var<storage, read> qT: array<f16>; // [rows][ROW][H]
@group(0) @binding(1) var<storage, read> latent: array<vec4u>;
@group(0) @binding(2) var<storage, read> slots: array<u32>;
@group(0) @binding(3) var<storage, read_write> S: array<u32>; // f32 bits [n][H][Ep], −∞ for no entry
@group(0) @binding(4) var<storage, read_write> mKey: array<atomic<u32>>;
@group(0) @binding(5) var<uniform> p: Params;
var<workgroup> slotS: array<u32, 64>;
var<workgroup> latS: array<f16, ${64 * LDL}>; // a 64-dim chunk of the tile's rows [64 entries][64 dims], padded
var<workgroup> sS: array<f32, ${64 * LDS}>; // Sᵀ [64 entries][H], padded
${gatherWgsl(g, 'latS')}
${ORDER_KEY_WGSL}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32${g.scalar ? '' : ', @builtin(subgroup_id) sg: u32'}) {
  let e0 = wg.x * 64u;
  let tl = wg.y;
  let t = p.rowOffset + tl;
  let qBase = t * ROW * H;
  if (li < 64u) { slotS[li] = slotAt(tl, e0 + li); }
  // Word w of this invocation: entry (li + ${THREADS}·w) / ${WPC} of the tile, part (li + ${THREADS}·w) % ${WPC} of the chunk.
${words.map((w) => `  let slot${w} = slotAt(tl, e0 + (li + ${w * THREADS}u) / ${WPC}u);\n  let at${w} = ((li + ${w * THREADS}u) / ${WPC}u) * ${LDL}u + ((li + ${w * THREADS}u) % ${WPC}u) * EPW;\n  var r${w} = word(slot${w}, (li + ${w * THREADS}u) % ${WPC}u);`).join('\n')}
${g.scalar ? `  var accs: array<f32, ${RES}>;` : `  let eb = (sg / ${SGH}u) * ${16 * RE}u;\n  let hb = (sg % ${SGH}u) * ${16 * RH}u;\n${accs.map(([, , a]) => `  var ${a} = ${RESULT}();`).join('\n')}`}
  for (var c = 0u; c < ${g.ROW / 64}u; c++) {
${words.map((w) => `    put_latS(at${w}, r${w});`).join('\n')}
    workgroupBarrier();
    if (c + 1u < ${g.ROW / 64}u) {
${words.map((w) => `      r${w} = word(slot${w}, (c + 1u) * ${WPC}u + (li + ${w * THREADS}u) % ${WPC}u);`).join('\n')}
    }
    ${g.scalar ? scalarProducts : matrixProducts}
    workgroupBarrier();
  }
  ${stores}
  workgroupBarrier();
  // S rows: invocations along the tile's entries (256 contiguous bytes per head).
  let e = li % 64u;
  let live = slotS[e] != NONE;
  for (var h = li / 64u; h < H; h += ${THREADS / 64}u) {
    var bits = 0xff800000u;
    if (live) { bits = bitcast<u32>(sS[e * ${LDS}u + h] * p.scale); }
    S[(tl * H + h) * p.Ep + e0 + e] = bits;
  }
  // Each head's maximum over the tile: ${TPH} invocation(s) per head, ${64 / TPH} entries each.
  let mh = li % H;
  var mx = 0.0;
  var any = false;
  for (var j = (li / H) * ${64 / TPH}u; j < (li / H + 1u) * ${64 / TPH}u; j++) {
    if (slotS[j] != NONE) {
      let s = sS[j * ${LDS}u + mh] * p.scale;
      mx = select(s, max(mx, s), any);
      any = true;
    }
  }
  if (any) { atomicMax(&mKey[t * H + mh], orderKey(bitcast<u32>(mx))); }
}
`;
}

function valuesWgsl(g: Gen): string {
  const { H } = g;
  const WPE = g.bf16 ? 16 : 32; // words per 128 dims of a row
  const NV = (64 * WPE) / THREADS; // V words per invocation per tile
  const NS = H / 16; // S words (4 entries) per invocation per tile: heads li/16 + 16·j, entries 4·(li % 16)…
  const SGH = Math.min(8, H / 16);
  const SGD = 8 / SGH;
  const RH = H / 16 / SGH;
  const RD = 8 / SGD;
  const accs = accNames(RH, RD);
  const RES = (H * 128) / THREADS;
  const vw = Array.from({ length: NV }, (_, w) => w);
  const sw = Array.from({ length: NS }, (_, j) => j);
  const matrixProducts = [0, 16, 32, 48]
    .map((kk) => {
      const lines: string[] = [];
      for (let i = 0; i < RH; i++) lines.push(`let a${i} = subgroupMatrixLoad<${LEFT}>(&pS, (hb + ${16 * i}u) * ${LDP}u + ${kk}u, false, ${LDP}u);`);
      for (let j = 0; j < RD; j++) lines.push(`let b${j} = subgroupMatrixLoad<${RIGHT}>(&vS, ${kk * LDV}u + db + ${16 * j}u, false, ${LDV}u);`);
      for (const [i, j, a] of accs) lines.push(`${a} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, ${a});`);
      return `{\n      ${lines.join('\n      ')}\n    }`;
    })
    .join('\n    ');
  const scalarProducts = `for (var j = 0u; j < ${RES}u; j++) {
      let idx = j * ${THREADS}u + li;
      let h = idx / 128u;
      let d = idx % 128u;
      var s = 0.0;
      for (var e = 0u; e < 64u; e++) { s += f32(pS[h * ${LDP}u + e]) * f32(vS[e * ${LDV}u + d]); }
      accs[j] += s;
    }`;
  const stores = g.scalar
    ? `for (var j = 0u; j < ${RES}u; j++) { let idx = j * ${THREADS}u + li; oPart[(part + idx / 128u) * R + c0 + idx % 128u] = accs[j]; }`
    : accs.map(([i, j, a]) => `subgroupMatrixStore(&oPart, (part + hb + ${16 * i}u) * R + c0 + db + ${16 * j}u, ${a}, false, R);`).join('\n  ');
  const tileLoads = (indent: string, tile: string) =>
    [
      `${indent}let e0 = (split * p.tilesPerSplit + ${tile}) * 64u;`,
      `${indent}let here = e0 < p.Ep;`,
      ...vw.map((w) => `${indent}r${w} = vec4u();\n${indent}if (here) { r${w} = word(slotAt(tl, e0 + (li + ${w * THREADS}u) / ${WPE}u), c0 / EPW + (li + ${w * THREADS}u) % ${WPE}u); }`),
      ...sw.map((j) => `${indent}s${j} = vec4f(-3.0e38);\n${indent}if (here) { s${j} = S[((tl * H + li / 16u + ${16 * j}u) * p.Ep + e0) / 4u + li % 16u]; }`),
    ].join('\n');
  return /* wgsl */ `
enable f16;
${g.scalar ? '' : 'enable chromium_experimental_subgroup_matrix;'}
${PARAMS}
@group(0) @binding(0) var<storage, read> latent: array<vec4u>;
@group(0) @binding(1) var<storage, read> slots: array<u32>;
@group(0) @binding(2) var<storage, read> S: array<vec4f>; // [n][H][Ep]
@group(0) @binding(3) var<storage, read> mKey: array<u32>;
@group(0) @binding(4) var<storage, read_write> oPart: array<f32>; // [n][splits][H][R]
@group(0) @binding(5) var<storage, read_write> lPart: array<f32>; // [n][splits][H]
@group(0) @binding(6) var<uniform> p: Params;
var<workgroup> pS: array<f16, ${H * LDP}>; // P [H][64 entries], padded
var<workgroup> vS: array<f16, ${64 * LDV}>; // V [64 entries][128 dims], padded
var<workgroup> lS: array<f32, ${THREADS}>;
${gatherWgsl(g, 'vS')}
fn fromOrderKey(key: u32) -> f32 {
  if (key == 0u) { return 0.0; } // no entry: nothing is exponentiated
  return bitcast<f32>(select(~key, key & 0x7fffffffu, (key & 0x80000000u) != 0u));
}
fn prob(s: f32, m: f32) -> f16 { return f16(select(0.0, exp(s - m), s > -1.0e38)); }

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32${g.scalar ? '' : ', @builtin(subgroup_id) sg: u32'}) {
  let split = wg.x;
  let c0 = wg.y * 128u;
  let tl = wg.z;
  let t = p.rowOffset + tl;
  let part = (tl * p.splits + split) * H;
  // This invocation's P words: heads li/16 + 16·j, entries 4·(li % 16) … + 3 of each tile.
${sw.map((j) => `  let m${j} = fromOrderKey(mKey[t * H + li / 16u + ${16 * j}u]);\n  var l${j} = 0.0;\n  var s${j}: vec4f;`).join('\n')}
${vw.map((w) => `  var r${w}: vec4u;\n  let at${w} = ((li + ${w * THREADS}u) / ${WPE}u) * ${LDV}u + ((li + ${w * THREADS}u) % ${WPE}u) * EPW;`).join('\n')}
${g.scalar ? `  var accs: array<f32, ${RES}>;` : `  let hb = (sg % ${SGH}u) * ${16 * RH}u;\n  let db = (sg / ${SGH}u) * ${16 * RD}u;\n${accs.map(([, , a]) => `  var ${a} = ${RESULT}();`).join('\n')}`}
${g.prefetch ? `  {\n${tileLoads('    ', '0u')}\n  }` : ''}
  for (var tt = 0u; tt < p.tilesPerSplit; tt++) {
${g.prefetch ? '' : `    {\n${tileLoads('      ', 'tt')}\n    }`}
${sw
  .map(
    (j) => `    {
      let q = vec4<f16>(prob(s${j}.x, m${j}), prob(s${j}.y, m${j}), prob(s${j}.z, m${j}), prob(s${j}.w, m${j}));
      l${j} += f32(q.x) + f32(q.y) + f32(q.z) + f32(q.w);
      let o = (li / 16u + ${16 * j}u) * ${LDP}u + 4u * (li % 16u);
      pS[o] = q.x; pS[o + 1u] = q.y; pS[o + 2u] = q.z; pS[o + 3u] = q.w;
    }`,
  )
  .join('\n')}
${vw.map((w) => `    put_vS(at${w}, r${w});`).join('\n')}
    workgroupBarrier();
    ${g.prefetch ? `if (tt + 1u < p.tilesPerSplit) {\n${tileLoads('      ', 'tt + 1u')}\n    }` : ''}
    ${g.scalar ? scalarProducts : matrixProducts}
    workgroupBarrier();
  }
  ${stores}
  // Σ P per head: the 16 invocations of a head add up their sums.
${sw
  .map(
    (j) => `  lS[li] = l${j};
  workgroupBarrier();
  if (li < 16u) {
    var l = 0.0;
    for (var q = 0u; q < 16u; q++) { l += lS[li * 16u + q]; }
    if (c0 == 0u) { lPart[part + li + ${16 * j}u] = l; }
  }
  workgroupBarrier();`,
  )
  .join('\n')}
}
`;
}

function combineWgsl(g: Gen): string {
  return /* wgsl */ `
${PARAMS}
@group(0) @binding(0) var<storage, read> oPart: array<vec4f>;
@group(0) @binding(1) var<storage, read> lPart: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4f>;
@group(0) @binding(3) var<uniform> p: Params;
const H: u32 = ${g.H}u;
const R: u32 = ${g.R}u;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 256u + lid.x;
  if (i >= p.total) { return; }
  let c4 = i % (R / 4u);
  let th = i / (R / 4u); // tl · H + h
  let tl = th / H;
  let h = th % H;
  var o = vec4f();
  var l = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let at = (tl * p.splits + s) * H + h;
    o += oPart[at * (R / 4u) + c4];
    l += lPart[at];
  }
  out[(p.rowOffset * H + th) * (R / 4u) + c4] = select(vec4f(), o / l, l > 0.0);
}
`;
}

/** The WGSL of the four passes for a shape (for inspection and the tests' checks of the generated code). */
export function matrix2Sources(shape: MlaGpuShape, format: 'f32' | 'bf16', o: Matrix2Options = {}): Record<'prep' | 'scores' | 'values' | 'combine', string> {
  const g: Gen = { H: shape.heads, R: shape.r, ROW: shape.r + shape.dr, bf16: format === 'bf16', scalar: o.scalar === true, prefetch: o.prefetch !== false };
  return { prep: prepWgsl(g), scores: scoresWgsl(g), values: valuesWgsl(g), combine: combineWgsl(g) };
}

/** Splits of the values pass for `tiles` tiles: runs of tilesPerSplit tiles, about `groups` workgroups over n rows. */
export function matrix2Splits(tiles: number, n: number, r: number, o: Matrix2Options): { splits: number; tilesPerSplit: number } {
  // Default aim, from the H200 lab (batched_attention_matrix2_groups*): few long splits for many
  // rows (128 workgroups: 0.253 against 0.264 ms at 16 × 2048 entries), many short ones for a few
  // rows (1024: 0.064 against 0.086 ms for one row of 4K).
  const want = Math.max(1, Math.min(tiles, Math.ceil((o.groups ?? (n >= 8 ? 128 : 1024)) / (n * (r / 128)))));
  const tilesPerSplit = Math.max(1, o.tilesPerSplit ?? Math.ceil(tiles / want));
  return { splits: Math.ceil(tiles / tilesPerSplit), tilesPerSplit };
}

/**
 * MLA attention on tensor cores (second form); arguments as mlaAttentionMatrixGpu
 * (mla-attention-matrix.ts), plus the options. Returns f32 [rows, heads, r].
 */
export function mlaAttentionMatrix2Gpu(gpu: GpuDevice, a: MlaGpuArgs, o: Matrix2Options = {}): GPUBuffer {
  const { qLat, qPe, latent, format, pages, positions, indices, k, nKeys, shape, scale } = a;
  const { rows, heads, r, dr } = shape;
  if (!mlaMatrix2Available(gpu, shape, format, o)) {
    throw new GpuError(`mlaAttentionMatrix2Gpu${o.scalar ? ' (scalar)' : ''}: not available for H ${heads}, r ${r}, dr ${dr}, ${format} latents on this device`);
  }
  const out = gpu.buffer(rows * heads * r * 4);
  const E = indices ? k : nKeys;
  if (rows === 0 || E === 0) return out;
  const g: Gen = { H: heads, R: r, ROW: r + dr, bf16: format === 'bf16', scalar: o.scalar === true, prefetch: o.prefetch !== false };
  const rowBytes = (r + dr) * (g.bf16 ? 2 : 4);
  const nSlots = Math.floor(latent.size / rowBytes);
  const tiles = Math.ceil(E / 64);
  const Ep = tiles * 64;
  const group = Math.max(1, Math.min(rows, Math.floor(SCORE_BUDGET / (heads * Ep * 4))));
  const base = gpu.label;
  const label = (pass: string) => {
    if (o.passLabels) gpu.label = `${base}.${pass}`;
  };
  const params = (rowOffset: number, n: number, total: number, groupsX: number, splits = 0, tilesPerSplit = 0): UniformParams => {
    const b = new ArrayBuffer(48);
    const u = new Uint32Array(b);
    u.set([n, E, Ep, splits, tilesPerSplit, 0, rowOffset, total, groupsX, nSlots, tiles, 0]);
    new Float32Array(b)[5] = scale;
    return gpu.uniforms(u);
  };
  const key = `${heads} ${r} ${dr} ${format} ${g.scalar} ${g.prefetch}`;
  const sources = gpu.generated(`mla2 ${key}`, () => matrix2Sources(shape, format as 'f32' | 'bf16', o));
  const qT = gpu.scratch('mla2.qT', rows * heads * (r + dr) * 2);
  const qTotal = (rows * heads * (r + dr)) / 2;
  const qg = gpu.grid(qTotal, 256);
  label('prep');
  gpu.dispatch(sources.prep, [qLat, qPe, qT, params(0, rows, qTotal, qg[0])], qg);
  const mKey = gpu.buffer(rows * heads * 4); // zeros: the running maxima start below every key
  for (let t0 = 0; t0 < rows; t0 += group) {
    const n = Math.min(group, rows - t0);
    const { splits, tilesPerSplit } = matrix2Splits(tiles, n, r, o);
    const S = gpu.scratch('mla2.scores', n * heads * Ep * 4);
    const oPart = gpu.scratch('mla2.o', n * splits * heads * r * 4);
    const lPart = gpu.scratch('mla2.l', n * splits * heads * 4);
    const slots = gpu.scratch('mla2.slots', n * E * 4);
    label('entries');
    mlaEntrySlotsGpu(gpu, pages, positions, indices, k, E, t0, n, slots);
    const pr = params(t0, n, 0, 0, splits, tilesPerSplit);
    label('scores');
    gpu.dispatch(sources.scores, [qT, latent, slots, S, mKey, pr], [tiles, n]);
    label('values');
    gpu.dispatch(sources.values, [latent, slots, S, mKey, oPart, lPart, pr], [splits, r / 128, n]);
    const total = (n * heads * r) / 4;
    const cg = gpu.grid(total, 256);
    label('combine');
    gpu.dispatch(sources.combine, [oPart, lPart, out, params(t0, n, total, cg[0], splits, tilesPerSplit)], cg);
  }
  gpu.label = base;
  gpu.release(mKey);
  return out;
}
