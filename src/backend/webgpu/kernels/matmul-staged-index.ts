/**
 * The index arithmetic of the staged GEMMs (matmul-staged.ts), written once for two readers: the
 * WGSL generator, which passes names ('row0', 'p.k', 'li + 128u') and gets WGSL expressions, and
 * the tests, which pass numbers and get the numbers the kernel computes (u32 arithmetic: division
 * rounds down). An `Ix` is either; an operation on two numbers folds to a number.
 */
import type { StagedConfig } from './matmul-staged.js';

/** A u32 value: a number, or a WGSL expression. */
export type Ix = number | string;

const wgsl = (e: Ix): string => (typeof e === 'number' ? `${e}u` : e);

export function add(a: Ix, b: Ix): Ix {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  return `(${wgsl(a)} + ${wgsl(b)})`;
}

export function mul(a: Ix, b: Ix): Ix {
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  if (a === 1) return b;
  if (b === 1) return a;
  return `(${wgsl(a)} * ${wgsl(b)})`;
}

export function div(a: Ix, b: Ix): Ix {
  if (typeof a === 'number' && typeof b === 'number') return Math.floor(a / b);
  return `(${wgsl(a)} / ${wgsl(b)})`;
}

export function mod(a: Ix, b: Ix): Ix {
  if (typeof a === 'number' && typeof b === 'number') return a % b;
  return `(${wgsl(a)} % ${wgsl(b)})`;
}

/** The WGSL text of an index, without the parentheses around the whole. */
export function ixWgsl(e: Ix): string {
  const s = wgsl(e);
  let depth = 0;
  for (let i = 0; i < s.length - 1; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')') depth--;
    if (depth === 0) return s; // the first parenthesis closes before the end
  }
  return s.slice(1, -1);
}

/** The number of an index computed from numbers only. */
export function ixNumber(e: Ix): number {
  if (typeof e !== 'number') throw new Error(`matmul-staged: index ${e} is not a number`);
  return e;
}

/** Sizes of a configuration, in elements unless named otherwise. */
export interface StagedGeometry {
  /** Element bytes (2 for f16, 1 for i8), elements per 16-byte word, K of one matrix product. */
  eb: number;
  perWord: number;
  mk: number;
  /** The workgroup's tile of C. */
  tm: number;
  tn: number;
  /** Padded row length of the shared A tile [TM][KS]. */
  lda: number;
  /** Padded row length of the shared B tile: [KS][TN] (NN), [TN][KS] (NT from shared); 0 when B is read from storage. */
  ldb: number;
  /** Elements of one shared A / B tile (0 for B read from storage). */
  aSize: number;
  bSize: number;
  threads: number;
}

export function stagedGeometry(c: StagedConfig, sg: number): StagedGeometry {
  const eb = c.input === 'f16' ? 2 : 1;
  const perWord = 16 / eb;
  const tm = 16 * c.rm * c.sgr;
  const tn = 16 * c.rn * c.sgc;
  const lda = c.ks + perWord;
  const ldb = c.bT === 'storage' ? 0 : c.bT === 'shared' ? c.ks + perWord : tn + perWord;
  const bRows = c.bT === 'shared' ? tn : c.ks;
  return { eb, perWord, mk: 32 / eb, tm, tn, lda, ldb, aSize: tm * lda, bSize: bRows * ldb, threads: sg * c.sgr * c.sgc };
}

/**
 * A tile of rows × cols elements of a row-major matrix in storage (rows of `ld` elements; the
 * tile's first element at row r0, column c0), copied word by word into shared rows of `lds`
 * elements. Word i of the tile is row i / (cols / perWord), word i % (cols / perWord) of the row.
 */
export interface TileCopy {
  rows: number;
  cols: number;
  perWord: number;
  lds: number;
}

/** Words of the tile. */
export function copyWords(t: TileCopy): number {
  return (t.rows * t.cols) / t.perWord;
}

/** Index of tile word i in the storage buffer (an array of 16-byte words). */
export function copySource(t: TileCopy, i: Ix, r0: Ix, c0: Ix, ld: Ix): Ix {
  const wpr = t.cols / t.perWord;
  return add(div(add(mul(add(r0, div(i, wpr)), ld), c0), t.perWord), mod(i, wpr));
}

/** Element offset of tile word i's first element in shared memory, the tile starting at `base`. */
export function copyDest(t: TileCopy, i: Ix, base: Ix): Ix {
  const wpr = t.cols / t.perWord;
  return add(add(base, mul(div(i, wpr), t.lds)), mul(mod(i, wpr), t.perWord));
}

/**
 * The values a kernel's indices depend on: the workgroup's corner of C, the subgroup's corner in
 * the tile, the k round, the shared tiles' bases, and the problem's K and N.
 */
export interface IxEnv {
  row0: Ix;
  col0: Ix;
  sm: Ix;
  sn: Ix;
  k0: Ix;
  aBase: Ix;
  bBase: Ix;
  k: Ix;
  n: Ix;
}

/** The names the WGSL gives them. */
export const WGSL_ENV: IxEnv = { row0: 'row0', col0: 'col0', sm: 'sm', sn: 'sn', k0: 'k0', aBase: 'aBase', bBase: 'bBase', k: 'p.k', n: 'p.n' };

/** A subgroupMatrixLoad's arguments: where (shared aS / bS, or storage B), offset, column-major, stride. */
export interface MatrixLoad {
  from: 'aS' | 'bS' | 'B';
  offset: Ix;
  colMajor: boolean;
  stride: Ix;
}

/** Left matrix i (rows sm + 16i) at k step kk of the round, from the shared A tile [TM][KS]. */
export function leftLoad(g: StagedGeometry, e: IxEnv, i: number, kk: number): MatrixLoad {
  return { from: 'aS', offset: add(add(e.aBase, mul(add(e.sm, 16 * i), g.lda)), kk), colMajor: false, stride: g.lda };
}

/**
 * Right matrix j (columns sn + 16j) at k step kk: NN from the shared B tile [KS][TN] row-major;
 * NT (B given as [N][K]) column-major, from the shared tile [TN][KS] or straight from storage.
 */
export function rightLoad(c: StagedConfig, g: StagedGeometry, e: IxEnv, j: number, kk: number): MatrixLoad {
  const col = add(e.sn, 16 * j);
  if (c.bT === 'storage') return { from: 'B', offset: add(add(mul(add(e.col0, col), e.k), e.k0), kk), colMajor: true, stride: e.k };
  if (c.bT === 'shared') return { from: 'bS', offset: add(add(e.bBase, mul(col, g.ldb)), kk), colMajor: true, stride: g.ldb };
  return { from: 'bS', offset: add(add(e.bBase, kk * g.ldb), col), colMajor: false, stride: g.ldb };
}

/** Element offset in C of result matrix (i, j)'s first element (C is row-major, rows of N). */
export function resultOffset(e: IxEnv, i: number, j: number): Ix {
  return add(mul(add(e.row0, add(e.sm, 16 * i)), e.n), add(e.col0, add(e.sn, 16 * j)));
}

/** An operand staged through shared memory: its storage buffer, shared array, tile copy and tile size. */
export interface StagedOperand {
  src: 'A' | 'B';
  arr: 'aS' | 'bS';
  copy: TileCopy;
  /** Elements of one shared tile (rows padded). */
  size: number;
  /** Storage word index of tile word i in the round starting at k0. */
  source: (i: Ix, k0: Ix) => Ix;
}

/**
 * The staged operands: A's tile [TM][KS] of A[M][K]; then B's, [KS][TN] of B[K][N] (NN) or
 * [TN][KS] of B[N][K] (NT from shared); none for B when the right matrices come from storage.
 */
export function stagedOperands(c: StagedConfig, g: StagedGeometry, e: IxEnv): StagedOperand[] {
  const aCopy = { rows: g.tm, cols: c.ks, perWord: g.perWord, lds: g.lda };
  const a: StagedOperand = { src: 'A', arr: 'aS', copy: aCopy, size: g.aSize, source: (i, k0) => copySource(aCopy, i, e.row0, k0, e.k) };
  if (c.bT === 'storage') return [a];
  if (c.bT === 'shared') {
    const bCopy = { rows: g.tn, cols: c.ks, perWord: g.perWord, lds: g.ldb };
    return [a, { src: 'B', arr: 'bS', copy: bCopy, size: g.bSize, source: (i, k0) => copySource(bCopy, i, e.col0, k0, e.k) }];
  }
  const bCopy = { rows: c.ks, cols: g.tn, perWord: g.perWord, lds: g.ldb };
  return [a, { src: 'B', arr: 'bS', copy: bCopy, size: g.bSize, source: (i, k0) => copySource(bCopy, i, k0, e.col0, e.n) }];
}
