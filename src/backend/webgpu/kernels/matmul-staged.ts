/**
 * Tensor-core GEMMs staged through shared memory, second generation (the kernel lab's 'f16-w…' and
 * 'i8-w…' variants): C[M, N] = A[M, K] · B[K, N], row-major, by the subgroup-matrix feature.
 *
 * What changed from the first 'shared' variants of matmul.ts, each a suspect for their low rate:
 *  - global → shared copies move 16 bytes per invocation (vec4<u32>), not one element;
 *  - shared rows are padded by 16 bytes, so the 16 rows a matrix load touches fall in different banks;
 *  - every loop over result matrices is unrolled when the WGSL is generated: the accumulators are
 *    plain variables (acc_i_j), never an array indexed at run time (which a compiler may keep in
 *    local memory);
 *  - more subgroups per workgroup (4 or 8) over a 128 × 128 or 128 × 256 tile.
 * The workgroup's tile is TM × TN; its subgroups form a SGR × SGC grid, each computing RM × RN
 * result matrices of 16 × 16. K advances KS per shared-memory round.
 *
 * f16 data: 8 values per vec4<u32> word; i8 data: 16 per word, kept four per i32 in shared memory
 * (subgroupMatrixLoad offsets and strides count i8 elements, as in matmul.ts).
 */
import type { MatmulPlan } from './matmul.js';

export interface StagedConfig {
  input: 'f16' | 'i8';
  /** Subgroup grid: rows × columns of subgroups in the workgroup. */
  sgr: number;
  sgc: number;
  /** Result matrices per subgroup (rows × columns of 16 × 16). */
  rm: number;
  rn: number;
  /** K per shared-memory round (a multiple of the matrix K: 16 for f16, 32 for i8). */
  ks: number;
  /** Read the next round's words into registers while this round is multiplied. */
  prefetch?: boolean;
  /** Two shared tiles of each operand (implies prefetch): the next round is stored into the other while this one is multiplied; one barrier per round. */
  double?: boolean;
}

/** Named configurations the lab times (name → config). */
export const STAGED_CONFIGS: Record<string, StagedConfig> = {
  'f16-w128x128-sg4': { input: 'f16', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 32 },
  'f16-w128x128-sg8': { input: 'f16', sgr: 2, sgc: 4, rm: 4, rn: 2, ks: 32 },
  'f16-w128x256-sg8': { input: 'f16', sgr: 2, sgc: 4, rm: 4, rn: 4, ks: 32 },
  'f16-w64x128-sg4': { input: 'f16', sgr: 2, sgc: 2, rm: 2, rn: 4, ks: 64 },
  'i8-w128x128-sg8': { input: 'i8', sgr: 2, sgc: 4, rm: 4, rn: 2, ks: 64 },
  'i8-w128x256-sg8': { input: 'i8', sgr: 2, sgc: 4, rm: 4, rn: 4, ks: 64 },
  'f16-w128x128-sg4-pf': { input: 'f16', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 32, prefetch: true },
  'f16-w128x128-sg8-pf': { input: 'f16', sgr: 2, sgc: 4, rm: 4, rn: 2, ks: 32, prefetch: true },
  'f16-w128x128-sg4-k64-pf': { input: 'f16', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 64, prefetch: true },
  'f16-w256x128-sg8-pf': { input: 'f16', sgr: 4, sgc: 2, rm: 4, rn: 4, ks: 32, prefetch: true },
  'i8-w128x128-sg8-pf': { input: 'i8', sgr: 2, sgc: 4, rm: 4, rn: 2, ks: 64, prefetch: true },
  'i8-w128x128-sg4-pf': { input: 'i8', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 64, prefetch: true },
  'i8-w128x128-sg8-k128-pf': { input: 'i8', sgr: 2, sgc: 4, rm: 4, rn: 2, ks: 128, prefetch: true },
  'f16-w256x128-sg8-k16-pf': { input: 'f16', sgr: 4, sgc: 2, rm: 4, rn: 4, ks: 16, prefetch: true },
  'f16-w128x256-sg8-pf': { input: 'f16', sgr: 2, sgc: 4, rm: 4, rn: 4, ks: 32, prefetch: true },
  'i8-w256x128-sg8-pf': { input: 'i8', sgr: 4, sgc: 2, rm: 4, rn: 4, ks: 64, prefetch: true },
  'i8-w256x128-sg8-k32-pf': { input: 'i8', sgr: 4, sgc: 2, rm: 4, rn: 4, ks: 32, prefetch: true },
  'f16-w128x128-sg8-k64-pf': { input: 'f16', sgr: 2, sgc: 4, rm: 4, rn: 2, ks: 64, prefetch: true },
  'i8-w128x128-sg4-k128-pf': { input: 'i8', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 128, prefetch: true },
  'f16-w128x128-sg4-db': { input: 'f16', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 32, double: true },
  'f16-w128x128-sg8-db': { input: 'f16', sgr: 2, sgc: 4, rm: 4, rn: 2, ks: 32, double: true },
  'f16-w128x256-sg8-db': { input: 'f16', sgr: 2, sgc: 4, rm: 4, rn: 4, ks: 32, double: true },
  'i8-w128x128-sg8-db': { input: 'i8', sgr: 2, sgc: 4, rm: 4, rn: 2, ks: 64, double: true },
  'i8-w128x128-sg4-db': { input: 'i8', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 64, double: true },
};

/** Shared-memory bytes a configuration needs. */
export function stagedSharedBytes(c: StagedConfig): number {
  const eb = c.input === 'f16' ? 2 : 1;
  const tm = 16 * c.rm * c.sgr;
  const tn = 16 * c.rn * c.sgc;
  const padA = 16 / eb;
  const padB = 16 / eb;
  return (tm * (c.ks + padA) + c.ks * (tn + padB)) * eb * (c.double ? 2 : 1);
}

/** The plan of a configuration for subgroups of `sg` invocations. */
export function stagedPlan(c: StagedConfig, sg: number): MatmulPlan {
  const tm = 16 * c.rm * c.sgr;
  const tn = 16 * c.rn * c.sgc;
  return { code: stagedWgsl(c, sg), tileM: tm, tileN: tn, kStep: c.ks, input: c.input, output: c.input === 'f16' ? 'f32' : 'i32' };
}

function stagedWgsl(c: StagedConfig, sg: number): string {
  const f16 = c.input === 'f16';
  const eb = f16 ? 2 : 1;
  const mk = f16 ? 16 : 32; // K of one matrix product
  const perWord = 16 / eb; // elements per vec4<u32>
  const tm = 16 * c.rm * c.sgr;
  const tn = 16 * c.rn * c.sgc;
  const lda = c.ks + 16 / eb; // padded shared row lengths, in elements
  const ldb = tn + 16 / eb;
  const threads = sg * c.sgr * c.sgc;
  const st = f16 ? 'f16' : 'i32'; // shared element type
  const per = f16 ? 1 : 4; // elements per shared element
  const ct = f16 ? 'f16' : 'i8';
  const rt = f16 ? 'f32' : 'i32';
  const left = `subgroup_matrix_left<${ct}, ${mk}, 16>`;
  const right = `subgroup_matrix_right<${ct}, 16, ${mk}>`;
  const result = `subgroup_matrix_result<${rt}, 16, 16>`;

  // One vec4<u32> word → shared memory at element offset `o` (a multiple of 16 bytes).
  const storeWord = (arr: string) =>
    f16
      ? [0, 1, 2, 3].map((w) => `let h${w} = bitcast<vec2<f16>>(v[${w}]); ${arr}[o + ${2 * w}u] = h${w}.x; ${arr}[o + ${2 * w + 1}u] = h${w}.y;`).join('\n      ')
      : [0, 1, 2, 3].map((w) => `${arr}[o / 4u + ${w}u] = bitcast<i32>(v[${w}]);`).join('\n      ');

  const lines: string[] = [];
  const accs: string[] = [];
  for (let i = 0; i < c.rm; i++) for (let j = 0; j < c.rn; j++) accs.push(`acc_${i}_${j}`);
  for (let kk = 0; kk < c.ks; kk += mk) {
    for (let i = 0; i < c.rm; i++) lines.push(`let a${i} = subgroupMatrixLoad<${left}>(&aS, aBase + (sm + ${16 * i}u) * ${lda}u + ${kk}u, false, ${lda}u);`);
    for (let j = 0; j < c.rn; j++) lines.push(`let b${j} = subgroupMatrixLoad<${right}>(&bS, bBase + ${kk * ldb}u + sn + ${16 * j}u, false, ${ldb}u);`);
    for (let i = 0; i < c.rm; i++) for (let j = 0; j < c.rn; j++) lines.push(`acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, acc_${i}_${j});`);
    if (kk + mk < c.ks) lines.push('}\n    {'); // a new scope for the next step's a/b names
  }
  const loop = loopWgsl(c, threads, tm, tn, lda, ldb, perWord, storeWord, `{\n    ${lines.join('\n    ')}\n    }`);
  const stores: string[] = [];
  for (let i = 0; i < c.rm; i++) {
    for (let j = 0; j < c.rn; j++) stores.push(`subgroupMatrixStore(&C, (row0 + sm + ${16 * i}u) * p.n + col0 + sn + ${16 * j}u, acc_${i}_${j}, false, p.n);`);
  }
  return /* wgsl */ `
enable chromium_experimental_subgroup_matrix;
${f16 ? 'enable f16;' : ''}
struct Params { m: u32, n: u32, k: u32 }
@group(0) @binding(0) var<storage, read> A: array<vec4u>;
@group(0) @binding(1) var<storage, read> B: array<vec4u>;
@group(0) @binding(2) var<storage, read_write> C: array<${rt}>;
@group(0) @binding(3) var<uniform> p: Params;
var<workgroup> aS: array<${st}, ${((c.double ? 2 : 1) * tm * lda) / per}>; // A tile [TM][KS] (rows padded; two with double)
var<workgroup> bS: array<${st}, ${((c.double ? 2 : 1) * c.ks * ldb) / per}>; // B tile [KS][TN] (rows padded; two with double)

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let row0 = wg.y * ${tm}u;
  let col0 = wg.x * ${tn}u;
  let sm = (sg / ${c.sgc}u) * ${16 * c.rm}u;
  let sn = (sg % ${c.sgc}u) * ${16 * c.rn}u;
${accs.map((a) => `  var ${a} = ${result}();`).join('\n')}
${loop}
  ${stores.join('\n  ')}
}
`;
}

/**
 * The k loop around `compute` (which reads the shared tiles at element offsets aBase / bBase):
 *  - plain: each round copies its words from the storage buffers, then multiplies;
 *  - prefetch: the next round's words are read into registers while this round is multiplied;
 *  - double: as prefetch, and the registers go into the other pair of shared tiles before the
 *    round's single barrier.
 */
function loopWgsl(
  c: StagedConfig, threads: number, tm: number, tn: number, lda: number, ldb: number, perWord: number, storeWord: (arr: string) => string, compute: string,
): string {
  const aWords = (tm * c.ks) / perWord;
  const bWords = (c.ks * tn) / perWord;
  const aSize = tm * lda; // elements of one A tile
  const bSize = c.ks * ldb;
  const aAt = (i: string, k0: string) => `A[((row0 + (${i}) / ${c.ks / perWord}u) * p.k + ${k0}) / ${perWord}u + (${i}) % ${c.ks / perWord}u]`;
  const bAt = (i: string, k0: string) => `B[((${k0} + (${i}) / ${tn / perWord}u) * p.n + col0) / ${perWord}u + (${i}) % ${tn / perWord}u]`;
  const aStore = (i: string, v: string, base: string) => `{ let v = ${v}; let o = ${base} + ((${i}) / ${c.ks / perWord}u) * ${lda}u + ((${i}) % ${c.ks / perWord}u) * ${perWord}u;\n      ${storeWord('aS')} }`;
  const bStore = (i: string, v: string, base: string) => `{ let v = ${v}; let o = ${base} + ((${i}) / ${tn / perWord}u) * ${ldb}u + ((${i}) % ${tn / perWord}u) * ${perWord}u;\n      ${storeWord('bS')} }`;
  if (!c.prefetch && !c.double) {
    return `  let aBase = 0u;
  let bBase = 0u;
  for (var k0 = 0u; k0 < p.k; k0 += ${c.ks}u) {
    for (var i = li; i < ${aWords}u; i += ${threads}u) ${aStore('i', aAt('i', 'k0'), '0u')}
    for (var i = li; i < ${bWords}u; i += ${threads}u) ${bStore('i', bAt('i', 'k0'), '0u')}
    workgroupBarrier();
    ${compute}
    workgroupBarrier();
  }`;
  }
  if (aWords % threads || bWords % threads) throw new Error(`matmul-staged: ${aWords} and ${bWords} words do not divide over ${threads} invocations`);
  const na = aWords / threads;
  const nb = bWords / threads;
  const ia = (x: number) => `li + ${x * threads}u`;
  const regs = [...Array.from({ length: na }, (_, x) => `  var ra${x} = ${aAt(ia(x), '0u')};`), ...Array.from({ length: nb }, (_, x) => `  var rb${x} = ${bAt(ia(x), '0u')};`)];
  const fill = (a: string, b: string) => [...Array.from({ length: na }, (_, x) => `    ${aStore(ia(x), `ra${x}`, a)}`), ...Array.from({ length: nb }, (_, x) => `    ${bStore(ia(x), `rb${x}`, b)}`)].join('\n');
  const next = [...Array.from({ length: na }, (_, x) => `      ra${x} = ${aAt(ia(x), 'k0 + ' + c.ks + 'u')};`), ...Array.from({ length: nb }, (_, x) => `      rb${x} = ${bAt(ia(x), 'k0 + ' + c.ks + 'u')};`)].join('\n');
  if (!c.double) {
    return `${regs.join('\n')}
  let aBase = 0u;
  let bBase = 0u;
  for (var k0 = 0u; k0 < p.k; k0 += ${c.ks}u) {
${fill('0u', '0u')}
    workgroupBarrier();
    if (k0 + ${c.ks}u < p.k) {
${next}
    }
    ${compute}
    workgroupBarrier();
  }`;
  }
  // Shared offsets count shared-array elements ×per for i8 (subgroupMatrixLoad counts i8 elements).
  return `${regs.join('\n')}
${fill('0u', '0u')}
  workgroupBarrier();
  for (var k0 = 0u; k0 < p.k; k0 += ${c.ks}u) {
    let cur = (k0 / ${c.ks}u) & 1u;
    let aBase = cur * ${aSize}u;
    let bBase = cur * ${bSize}u;
    let more = k0 + ${c.ks}u < p.k;
    if (more) {
${next}
    }
    ${compute}
    if (more) {
${fill(`(1u - cur) * ${aSize}u`, `(1u - cur) * ${bSize}u`)}
    }
    workgroupBarrier();
  }`;
}
