/**
 * The staged tensor-core GEMMs of the kernel lab (matmul-staged.ts), checked without a GPU: lavapipe
 * has no subgroup-matrix feature, and the H200 lab checks every variant against the CPU before
 * timing it. Here:
 *  - the index helpers' WGSL text computes the same numbers as their numeric form (a small
 *    evaluator of the generated expressions);
 *  - the global → shared copies, as the invocations divide them, cover every element of each tile
 *    exactly once and never the row padding;
 *  - a CPU emulation of each kernel — its copies, shared tiles, matrix loads (row- or
 *    column-major), products and stores, every index from the same helpers the WGSL is generated
 *    from — gives exactly A·B (NN) or A·Bᵀ (NT, B given as [N][K]);
 *  - the generated WGSL's structure: NT right matrices loaded column-major, accumulators as named
 *    variables, shared memory within 48 KiB.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  copyDest,
  copyWords,
  copySource,
  ixNumber,
  ixWgsl,
  leftLoad,
  resultOffset,
  rightLoad,
  stagedGeometry,
  stagedOperands,
  type Ix,
  type IxEnv,
  type MatrixLoad,
} from '../../src/backend/webgpu/kernels/matmul-staged-index.js';
import { STAGED_CONFIGS, stagedPlan, stagedSharedBytes, type StagedConfig } from '../../src/backend/webgpu/kernels/matmul-staged.js';
import { rng } from './helpers.js';

const SG = 32; // NVIDIA's subgroup size
const NT = Object.entries(STAGED_CONFIGS).filter(([, c]) => c.bT !== undefined);

/** Evaluates a generated index expression (atoms: names, `Nu` literals; binary + * / %, u32). */
function evalWgsl(text: string, vars: Record<string, number>): number {
  let at = 0;
  const skip = () => {
    while (text[at] === ' ') at++;
  };
  const primary = (): number => {
    skip();
    if (text[at] === '(') {
      at++;
      const v = expr();
      skip();
      assert.equal(text[at], ')', `')' expected at ${at} of ${text}`);
      at++;
      return v;
    }
    const m = /^[A-Za-z_][\w.]*|^\d+u/.exec(text.slice(at));
    assert.ok(m, `an atom expected at ${at} of ${text}`);
    at += m[0].length;
    if (m[0].endsWith('u') && /^\d/.test(m[0])) return Number(m[0].slice(0, -1));
    assert.ok(m[0] in vars, `unknown name ${m[0]}`);
    return vars[m[0]]!;
  };
  const expr = (): number => {
    const a = primary();
    skip();
    const op = text[at];
    if (op === undefined || op === ')') return a;
    at++;
    const b = primary(); // generated expressions are parenthesized: one operator per level
    if (op === '+') return a + b;
    if (op === '*') return a * b;
    if (op === '/') return Math.floor(a / b);
    if (op === '%') return a % b;
    throw new Error(`operator ${op} in ${text}`);
  };
  const v = expr();
  skip();
  assert.equal(at, text.length, `trailing text in ${text}`);
  return v;
}

const NAMES: IxEnv = { row0: 'row0', col0: 'col0', sm: 'sm', sn: 'sn', k0: 'k0', aBase: 'aBase', bBase: 'bBase', k: 'p.k', n: 'p.n' };

test('matmul-staged: the WGSL text of every index computes what its numeric form does', () => {
  const r = rng(5);
  const int = (n: number) => Math.floor(r() * n);
  for (const [name, c] of Object.entries(STAGED_CONFIGS)) {
    const g = stagedGeometry(c, SG);
    for (let trial = 0; trial < 4; trial++) {
      const vals = { row0: int(8) * g.tm, col0: int(8) * g.tn, sm: int(c.sgr) * 16 * c.rm, sn: int(c.sgc) * 16 * c.rn, k0: int(8) * c.ks, aBase: int(2) * g.aSize, bBase: int(2) * g.bSize, k: (8 + int(8)) * c.ks, n: (8 + int(8)) * g.tn };
      const vars = { ...vals, 'p.k': vals.k, 'p.n': vals.n, li: int(g.threads), i: 0 };
      const num: IxEnv = vals;
      const same = (text: Ix, value: Ix, what: string) => assert.equal(evalWgsl(ixWgsl(text), vars), ixNumber(value), `${name} ${what}: ${ixWgsl(text)}`);
      const loads = (f: (e: IxEnv) => MatrixLoad, what: string) => {
        const [s, v] = [f(NAMES), f(num)];
        same(s.offset, v.offset, `${what} offset`);
        same(s.stride, v.stride, `${what} stride`);
        assert.equal(s.colMajor, v.colMajor);
      };
      for (let kk = 0; kk < c.ks; kk += g.mk) {
        for (let i = 0; i < c.rm; i++) loads((e) => leftLoad(g, e, i, kk), `left ${i} kk ${kk}`);
        for (let j = 0; j < c.rn; j++) loads((e) => rightLoad(c, g, e, j, kk), `right ${j} kk ${kk}`);
      }
      for (let i = 0; i < c.rm; i++) for (let j = 0; j < c.rn; j++) same(resultOffset(NAMES, i, j), resultOffset(num, i, j), `store ${i} ${j}`);
      const [sOps, vOps] = [stagedOperands(c, g, NAMES), stagedOperands(c, g, num)];
      sOps.forEach((o, x) => {
        vars.i = int(copyWords(o.copy));
        same(o.source('i', 'k0'), vOps[x]!.source(vars.i, vals.k0), `${o.src} copy source`);
        same(copyDest(o.copy, 'i', 'aBase'), copyDest(o.copy, vars.i, vals.aBase), `${o.src} copy destination`);
        same(copySource(o.copy, 'li', 'row0', 'k0', 'p.k'), copySource(o.copy, vars.li, vals.row0, vals.k0, vals.k), `${o.src} copySource`);
      });
    }
  }
});

test('matmul-staged: the invocations\' copies cover each tile element exactly once, never the padding', () => {
  for (const [name, c] of Object.entries(STAGED_CONFIGS)) {
    const g = stagedGeometry(c, SG);
    const kLen = 4 * c.ks;
    const e: IxEnv = { row0: 0, col0: 0, sm: 0, sn: 0, k0: 0, aBase: 0, bBase: 0, k: kLen, n: 2 * g.tn };
    for (const o of stagedOperands(c, g, e)) {
      const words = copyWords(o.copy);
      if (c.prefetch || c.double) assert.equal(words % g.threads, 0, `${name}: ${o.src}'s ${words} words divide over ${g.threads} invocations`);
      const hits = new Uint8Array(o.size);
      const sources = new Set<number>();
      for (let li = 0; li < g.threads; li++) {
        for (let i = li; i < words; i += g.threads) {
          // the kernel's words of invocation li (in registers: word x is li + x·threads)
          const dst = ixNumber(copyDest(o.copy, i, 0));
          assert.equal((dst * g.eb) % 16, 0, `${name}: word ${i} lands on a 16-byte boundary`);
          for (let v = 0; v < g.perWord; v++) hits[dst + v]!++;
          sources.add(ixNumber(o.source(i, e.k0)));
        }
      }
      assert.equal(sources.size, words, `${name}: ${o.src}'s words come from distinct storage words`);
      for (let row = 0; row < o.copy.rows; row++) {
        for (let col = 0; col < o.copy.lds; col++) {
          assert.equal(hits[row * o.copy.lds + col], col < o.copy.cols ? 1 : 0, `${name}: ${o.src} tile [${row}][${col}]`);
        }
      }
    }
    if (c.bT === 'shared') {
      // B's tile is [TN][KS] of B[N][K]: word i's first element is B[col0 + row][k0 + 16·(i % words per row)].
      const [, b] = stagedOperands(c, g, { ...e, col0: g.tn, k0: c.ks });
      const wpr = c.ks / g.perWord;
      for (let i = 0; i < copyWords(b!.copy); i++) {
        assert.equal(ixNumber(b!.source(i, c.ks)) * g.perWord, (g.tn + Math.floor(i / wpr)) * kLen + c.ks + (i % wpr) * g.perWord);
      }
    }
  }
});

/** A 16 × 16 result matrix, or a left (16 × mk) or right (mk × 16) operand, as a row-major array. */
function loadMatrix(mem: Float64Array, l: MatrixLoad, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  const stride = ixNumber(l.stride);
  const at = ixNumber(l.offset);
  for (let r = 0; r < rows; r++) {
    for (let x = 0; x < cols; x++) out[r * cols + x] = mem[at + (l.colMajor ? x * stride + r : r * stride + x)] ?? NaN;
  }
  return out;
}

/** The kernel of a configuration run on the CPU: C[M][N] from A[M][K] and B ([K][N], or [N][K] for NT). */
function emulate(c: StagedConfig, a: Float64Array, b: Float64Array, m: number, n: number, k: number): Float64Array {
  const g = stagedGeometry(c, SG);
  const out = new Float64Array(m * n).fill(NaN);
  const global = { A: a, B: b };
  for (let row0 = 0; row0 < m; row0 += g.tm) {
    for (let col0 = 0; col0 < n; col0 += g.tn) {
      const shared = { aS: new Float64Array(2 * g.aSize), bS: new Float64Array(2 * g.bSize) };
      const subgroups = Array.from({ length: c.sgr * c.sgc }, (_, s) => ({ sm: Math.floor(s / c.sgc) * 16 * c.rm, sn: (s % c.sgc) * 16 * c.rn, acc: new Float64Array(c.rm * c.rn * 256) }));
      for (let k0 = 0, round = 0; k0 < k; k0 += c.ks, round++) {
        const cur = c.double ? round & 1 : 0;
        const env: IxEnv = { row0, col0, sm: 0, sn: 0, k0, aBase: cur * g.aSize, bBase: cur * g.bSize, k, n };
        for (const o of stagedOperands(c, g, env)) {
          const tile = shared[o.arr];
          tile.fill(NaN, cur * o.size, (cur + 1) * o.size); // nothing of an earlier round may be read
          for (let i = 0; i < copyWords(o.copy); i++) {
            const src = ixNumber(o.source(i, k0)) * g.perWord;
            const dst = ixNumber(copyDest(o.copy, i, cur * o.size));
            for (let v = 0; v < g.perWord; v++) tile[dst + v] = global[o.src][src + v] ?? NaN;
          }
        }
        for (const s of subgroups) {
          const e = { ...env, sm: s.sm, sn: s.sn };
          const mem = (l: MatrixLoad) => (l.from === 'B' ? b : shared[l.from]);
          for (let kk = 0; kk < c.ks; kk += g.mk) {
            const lefts = Array.from({ length: c.rm }, (_, i) => loadMatrix(mem(leftLoad(g, e, i, kk)), leftLoad(g, e, i, kk), 16, g.mk));
            const rights = Array.from({ length: c.rn }, (_, j) => loadMatrix(mem(rightLoad(c, g, e, j, kk)), rightLoad(c, g, e, j, kk), g.mk, 16));
            for (let i = 0; i < c.rm; i++) {
              for (let j = 0; j < c.rn; j++) {
                const acc = s.acc.subarray((i * c.rn + j) * 256, (i * c.rn + j + 1) * 256);
                for (let r = 0; r < 16; r++) for (let x = 0; x < g.mk; x++) for (let q = 0; q < 16; q++) acc[r * 16 + q]! += lefts[i]![r * g.mk + x]! * rights[j]![x * 16 + q]!;
              }
            }
          }
        }
      }
      for (const s of subgroups) {
        const e: IxEnv = { row0, col0, sm: s.sm, sn: s.sn, k0: 0, aBase: 0, bBase: 0, k, n };
        for (let i = 0; i < c.rm; i++) {
          for (let j = 0; j < c.rn; j++) {
            const at = ixNumber(resultOffset(e, i, j));
            for (let r = 0; r < 16; r++) for (let q = 0; q < 16; q++) out[at + r * n + q] = s.acc[(i * c.rn + j) * 256 + r * 16 + q]!;
          }
        }
      }
    }
  }
  return out;
}

function smallInts(len: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: len }, () => Math.floor(r() * 9) - 4);
}

for (const [name, c] of Object.entries(STAGED_CONFIGS)) {
  test(`matmul-staged: ${name} emulated on the CPU gives exactly A·${c.bT ? 'Bᵀ' : 'B'}`, () => {
    const g = stagedGeometry(c, SG);
    const [m, n, k] = [2 * g.tm, 2 * g.tn, 3 * c.ks];
    const a = smallInts(m * k, 1);
    const b = smallInts(k * n, 2);
    const got = emulate(c, a, b, m, n, k);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let want = 0;
        for (let x = 0; x < k; x++) want += a[i * k + x]! * b[c.bT ? j * k + x : x * n + j]!;
        if (got[i * n + j] !== want) assert.fail(`${name}: C[${i}][${j}] = ${got[i * n + j]}, want ${want}`);
      }
    }
  });
}

test('matmul-staged: the NT kernels load their right matrices column-major, keep named accumulators, fit 48 KiB', () => {
  assert.ok(NT.length >= 4);
  for (const [name, c] of NT) {
    assert.equal(c.input, 'i8', `${name}: NT is i8 only`);
    const plan = stagedPlan(c, SG);
    assert.equal(plan.bTransposed, true);
    const rights = [...plan.code.matchAll(/subgroupMatrixLoad<subgroup_matrix_right<i8, 16, 32>>\(&(\w+), [^;]*, (true|false), ([^;]*)\);/g)];
    assert.equal(rights.length, (c.rn * c.ks) / 32, `${name}: one right load per matrix and k step`);
    for (const r of rights) {
      assert.equal(r[2], 'true', `${name}: column-major`);
      assert.equal(r[1], c.bT === 'storage' ? 'B' : 'bS');
      assert.equal(r[3], c.bT === 'storage' ? 'p.k' : `${c.ks + 16}u`);
    }
    assert.equal(plan.code.includes('var<workgroup> bS'), c.bT === 'shared', `${name}: B staged only in the shared form`);
    assert.match(plan.code, c.bT === 'storage' ? /var<storage, read> B: array<i32>/ : /var<storage, read> B: array<vec4u>/);
    for (let i = 0; i < c.rm; i++) for (let j = 0; j < c.rn; j++) assert.ok(plan.code.includes(`var acc_${i}_${j} = subgroup_matrix_result<i32, 16, 16>();`));
    assert.doesNotMatch(plan.code, /array<subgroup_matrix/, `${name}: no arrays of matrices`);
    assert.doesNotMatch(plan.code, /workgroupUniformLoad/, `${name}: no loop bounds from workgroupUniformLoad (miscompiled on the H200)`);
    assert.ok(stagedSharedBytes(c) <= 48 * 1024, `${name}: ${stagedSharedBytes(c)} bytes of shared memory`);
  }
  // The NN forms still load row-major, and f16 has no NT form (column-major f16 loads from workgroup memory were wrong on the H200).
  assert.doesNotMatch(stagedPlan(STAGED_CONFIGS['i8-w128x128-sg4-pf']!, SG).code, /, true, /);
  assert.throws(() => stagedPlan({ ...STAGED_CONFIGS['f16-w128x128-sg4-pf']!, bT: 'shared' }, SG), /i8 only/);
});
