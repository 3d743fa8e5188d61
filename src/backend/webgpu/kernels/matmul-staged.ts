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
 *
 * The 'i8nt-…' variants are NT GEMMs, C = A · Bᵀ with B given as [N][K] (linear-layer weights
 * [out][in]; the layout cuBLAS asks for int8): NVIDIA's 8-bit mma wants the right operand
 * K-contiguous, and there is no transposing ldmatrix for 8-bit, so a row-major right load of a
 * [K][N] tile costs byte loads and packing. NT stages B as a [TN][KS] tile (rows padded by 16
 * bytes, copied like A's) and loads the right matrices column-major ('-bstorage': straight from the
 * storage buffer, B not staged). The index arithmetic lives in matmul-staged-index.ts, where the
 * tests evaluate it with numbers.
 */
import type { MatmulPlan } from './matmul.js';
import { add, copyDest, copyWords, ixWgsl, leftLoad, resultOffset, rightLoad, stagedGeometry, stagedOperands, WGSL_ENV, type Ix, type MatrixLoad, type StagedOperand } from './matmul-staged-index.js';

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
  /**
   * NT: C = A · Bᵀ with B given as [N][K] row-major (linear-layer weights [out][in]), its right
   * matrices loaded column-major — from a shared tile [TN][KS] ('shared') or straight from the
   * storage buffer ('storage'). Absent: NN, B given as [K][N]. i8 only (column-major f16 loads
   * from workgroup memory were found wrong on the H200).
   */
  bT?: 'shared' | 'storage';
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
  'i8nt-w128x128-sg4-pf': { input: 'i8', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 64, prefetch: true, bT: 'shared' },
  'i8nt-w128x128-sg8-pf': { input: 'i8', sgr: 2, sgc: 4, rm: 4, rn: 2, ks: 64, prefetch: true, bT: 'shared' },
  'i8nt-w256x128-sg8-pf': { input: 'i8', sgr: 4, sgc: 2, rm: 4, rn: 4, ks: 64, prefetch: true, bT: 'shared' },
  'i8nt-w128x256-sg8-pf': { input: 'i8', sgr: 2, sgc: 4, rm: 4, rn: 4, ks: 64, prefetch: true, bT: 'shared' },
  'i8nt-w128x128-sg4-k128-pf': { input: 'i8', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 128, prefetch: true, bT: 'shared' },
  'i8nt-w128x128-sg8-k128-pf': { input: 'i8', sgr: 2, sgc: 4, rm: 4, rn: 2, ks: 128, prefetch: true, bT: 'shared' },
  'i8nt-w128x128-sg4-k32-pf': { input: 'i8', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 32, prefetch: true, bT: 'shared' },
  'i8nt-w128x128-sg4-db': { input: 'i8', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 64, double: true, bT: 'shared' },
  'i8nt-w128x64-sg4-pf': { input: 'i8', sgr: 2, sgc: 2, rm: 4, rn: 2, ks: 64, prefetch: true, bT: 'shared' },
  'i8nt-w64x128-sg4-pf': { input: 'i8', sgr: 2, sgc: 2, rm: 2, rn: 4, ks: 64, prefetch: true, bT: 'shared' },
  'i8nt-w256x128-sg8-k32-pf': { input: 'i8', sgr: 4, sgc: 2, rm: 4, rn: 4, ks: 32, prefetch: true, bT: 'shared' },
  'i8nt-w128x128-sg4-pf-bstorage': { input: 'i8', sgr: 2, sgc: 2, rm: 4, rn: 4, ks: 64, prefetch: true, bT: 'storage' },
  'i8nt-w256x128-sg8-pf-bstorage': { input: 'i8', sgr: 4, sgc: 2, rm: 4, rn: 4, ks: 64, prefetch: true, bT: 'storage' },
};

/** Shared-memory bytes a configuration needs. */
export function stagedSharedBytes(c: StagedConfig): number {
  const g = stagedGeometry(c, 1);
  return (g.aSize + g.bSize) * g.eb * (c.double ? 2 : 1);
}

/** The plan of a configuration for subgroups of `sg` invocations. */
export function stagedPlan(c: StagedConfig, sg: number): MatmulPlan {
  if (c.bT && c.input !== 'i8') throw new Error(`matmul-staged: the NT forms (bT '${c.bT}') are i8 only`);
  const g = stagedGeometry(c, sg);
  return { code: stagedWgsl(c, sg), tileM: g.tm, tileN: g.tn, kStep: c.ks, input: c.input, output: c.input === 'f16' ? 'f32' : 'i32', bTransposed: c.bT !== undefined };
}

/** The WGSL of a configuration for subgroups of `sg` invocations. */
export function stagedWgsl(c: StagedConfig, sg: number): string {
  const f16 = c.input === 'f16';
  const g = stagedGeometry(c, sg);
  const st = f16 ? 'f16' : 'i32'; // shared element type
  const per = f16 ? 1 : 4; // elements per shared element
  const ct = f16 ? 'f16' : 'i8';
  const rt = f16 ? 'f32' : 'i32';
  const left = `subgroup_matrix_left<${ct}, ${g.mk}, 16>`;
  const right = `subgroup_matrix_right<${ct}, 16, ${g.mk}>`;
  const result = `subgroup_matrix_result<${rt}, 16, 16>`;
  const load = (type: string, l: MatrixLoad) => `subgroupMatrixLoad<${type}>(&${l.from}, ${ixWgsl(l.offset)}, ${l.colMajor}, ${ixWgsl(l.stride)})`;
  const e = WGSL_ENV;

  const lines: string[] = [];
  const accs: string[] = [];
  for (let i = 0; i < c.rm; i++) for (let j = 0; j < c.rn; j++) accs.push(`acc_${i}_${j}`);
  for (let kk = 0; kk < c.ks; kk += g.mk) {
    for (let i = 0; i < c.rm; i++) lines.push(`let a${i} = ${load(left, leftLoad(g, e, i, kk))};`);
    for (let j = 0; j < c.rn; j++) lines.push(`let b${j} = ${load(right, rightLoad(c, g, e, j, kk))};`);
    for (let i = 0; i < c.rm; i++) for (let j = 0; j < c.rn; j++) lines.push(`acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, acc_${i}_${j});`);
    if (kk + g.mk < c.ks) lines.push('}\n    {'); // a new scope for the next step's a/b names
  }
  const ops = stagedOperands(c, g, e);
  const loop = loopWgsl(c, g.threads, ops, f16, `{\n    ${lines.join('\n    ')}\n    }`);
  const stores: string[] = [];
  for (let i = 0; i < c.rm; i++) {
    for (let j = 0; j < c.rn; j++) stores.push(`subgroupMatrixStore(&C, ${ixWgsl(resultOffset(e, i, j))}, acc_${i}_${j}, false, p.n);`);
  }
  const copies = c.double ? 2 : 1;
  const shared = ops.map((o) => `var<workgroup> ${o.arr}: array<${st}, ${(copies * o.size) / per}>; // ${o.src} tile [${o.copy.rows}][${o.copy.cols}] (rows padded to ${o.copy.lds})${c.double ? ', two' : ''}`);
  return /* wgsl */ `
enable chromium_experimental_subgroup_matrix;
${f16 ? 'enable f16;' : ''}
struct Params { m: u32, n: u32, k: u32 }
@group(0) @binding(0) var<storage, read> A: array<vec4u>;
@group(0) @binding(1) var<storage, read> B: array<${c.bT === 'storage' ? 'i32' : 'vec4u'}>;${c.bT ? ' // B[N][K]: C = A · Bᵀ' : ''}
@group(0) @binding(2) var<storage, read_write> C: array<${rt}>;
@group(0) @binding(3) var<uniform> p: Params;
${shared.join('\n')}

@compute @workgroup_size(${g.threads})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let row0 = wg.y * ${g.tm}u;
  let col0 = wg.x * ${g.tn}u;
  let sm = (sg / ${c.sgc}u) * ${16 * c.rm}u;
  let sn = (sg % ${c.sgc}u) * ${16 * c.rn}u;
${accs.map((a) => `  var ${a} = ${result}();`).join('\n')}
${loop}
  ${stores.join('\n  ')}
}
`;
}

/** One 16-byte word `v` of an operand's tile (word i) → its shared tile starting at element `base`. */
function storeWord(op: StagedOperand, i: Ix, v: string, base: Ix, f16: boolean): string {
  const put = f16
    ? [0, 1, 2, 3].map((w) => `let h${w} = bitcast<vec2<f16>>(v[${w}]); ${op.arr}[o + ${2 * w}u] = h${w}.x; ${op.arr}[o + ${2 * w + 1}u] = h${w}.y;`)
    : [0, 1, 2, 3].map((w) => `${op.arr}[o / 4u + ${w}u] = bitcast<i32>(v[${w}]);`);
  return `{ let v = ${v}; let o = ${ixWgsl(copyDest(op.copy, i, base))};\n      ${put.join('\n      ')} }`;
}

/**
 * The k loop around `compute` (which reads the shared tiles at element offsets aBase / bBase):
 *  - plain: each round copies its words from the storage buffers, then multiplies;
 *  - prefetch: the next round's words are read into registers while this round is multiplied;
 *  - double: as prefetch, and the registers go into the other pair of shared tiles before the
 *    round's single barrier.
 */
function loopWgsl(c: StagedConfig, threads: number, ops: StagedOperand[], f16: boolean, compute: string): string {
  const read = (o: StagedOperand, i: Ix, k0: Ix) => `${o.src}[${ixWgsl(o.source(i, k0))}]`;
  const base = (o: StagedOperand) => `${o.arr[0]}Base`;
  if (!c.prefetch && !c.double) {
    const copy = ops.map((o) => `    for (var i = li; i < ${copyWords(o.copy)}u; i += ${threads}u) ${storeWord(o, 'i', read(o, 'i', 'k0'), 0, f16)}`);
    return `${ops.map((o) => `  let ${base(o)} = 0u;`).join('\n')}
  for (var k0 = 0u; k0 < p.k; k0 += ${c.ks}u) {
${copy.join('\n')}
    workgroupBarrier();
    ${compute}
    workgroupBarrier();
  }`;
  }
  for (const o of ops) {
    if (copyWords(o.copy) % threads) throw new Error(`matmul-staged: ${copyWords(o.copy)} words of ${o.src} do not divide over ${threads} invocations`);
  }
  // Word x of this invocation: li + x·threads; register r<a|b><x> holds it.
  const words = ops.flatMap((o) => Array.from({ length: copyWords(o.copy) / threads }, (_, x) => ({ o, reg: `r${o.arr[0]}${x}`, i: add('li', x * threads) })));
  const regs = words.map((w) => `  var ${w.reg} = ${read(w.o, w.i, 0)};`).join('\n');
  const fill = (bases: (o: StagedOperand) => Ix) => words.map((w) => `    ${storeWord(w.o, w.i, w.reg, bases(w.o), f16)}`).join('\n');
  const next = words.map((w) => `      ${w.reg} = ${read(w.o, w.i, add('k0', c.ks))};`).join('\n');
  if (!c.double) {
    return `${regs}
${ops.map((o) => `  let ${base(o)} = 0u;`).join('\n')}
  for (var k0 = 0u; k0 < p.k; k0 += ${c.ks}u) {
${fill(() => 0)}
    workgroupBarrier();
    if (k0 + ${c.ks}u < p.k) {
${next}
    }
    ${compute}
    workgroupBarrier();
  }`;
  }
  // Shared offsets count shared-array elements ×per for i8 (subgroupMatrixLoad counts i8 elements).
  return `${regs}
${fill(() => 0)}
  workgroupBarrier();
  for (var k0 = 0u; k0 < p.k; k0 += ${c.ks}u) {
    let cur = (k0 / ${c.ks}u) & 1u;
${ops.map((o) => `    let ${base(o)} = cur * ${o.size}u;`).join('\n')}
    let more = k0 + ${c.ks}u < p.k;
    if (more) {
${next}
    }
    ${compute}
    if (more) {
${fill((o) => `((1u - cur) * ${o.size}u)`)}
    }
    workgroupBarrier();
  }`;
}
