/**
 * Backend ops vs naive references: memory (upload/read, zeros, reshape, scope/dispose), element-wise
 * (add, mul, scale, swiglu), row/column selection (sliceLast, sliceRows, concatRows, gatherRows) and
 * argmax. The case structure, tolerances and the backends run are in ./harness.ts.
 */
import {
  type ErrorCase,
  type OpCase,
  TOL,
  arrayKind,
  meta,
  readAll,
  Rng,
  runCases,
  silu,
} from './harness.js';

const cases: OpCase[] = [];
const errorCases: ErrorCase[] = [];

// ---- memory ----------------------------------------------------------------------------------

{
  const r = new Rng(101);
  const f = r.normals(12);
  const i = Int32Array.from({ length: 5 }, () => r.int(2000) - 1000);
  const u = Uint8Array.from({ length: 8 }, () => r.int(256));
  cases.push({
    name: 'upload/read: f32, i32, u8 round trip with shape, dtype and size; upload copies its input',
    async run(b) {
      const fc = f.slice();
      const tf = b.upload(fc, [3, 4]);
      const ti = b.upload(i, [5]);
      const tu = b.upload(u, [2, 2, 2]);
      fc.fill(0); // the tensor must not alias the host array
      const [rf, ri, ru] = await readAll(b, tf, ti, tu);
      return [rf!, ri!, ru!, [...meta(tf), ...meta(ti), ...meta(tu)], [arrayKind(rf!), arrayKind(ri!), arrayKind(ru!)]];
    },
    reference: () => [f, i, u, [0, 12, 3, 4, 1, 5, 5, 2, 8, 2, 2, 2], [0, 1, 2]],
    tol: TOL.exact,
  });
  cases.push({
    name: 'zeros: f32, i32, u8',
    async run(b) {
      const a = b.zeros([2, 3], 'f32');
      const c = b.zeros([4], 'i32');
      const d = b.zeros([3, 5], 'u8');
      const [ra, rc, rd] = await readAll(b, a, c, d);
      return [ra!, rc!, rd!, [...meta(a), ...meta(c), ...meta(d)], [arrayKind(ra!), arrayKind(rc!), arrayKind(rd!)]];
    },
    reference: () => [new Float64Array(6), new Float64Array(4), new Float64Array(15), [0, 6, 2, 3, 1, 4, 4, 2, 15, 3, 5], [0, 1, 2]],
    tol: TOL.exact,
  });
  cases.push({
    name: 'reshape: same data, new shape, usable by other ops; scope and dispose',
    async run(b) {
      const x = b.upload(f, [2, 6]);
      const v = b.reshape(x, [3, 4]);
      const flat = b.reshape(v, [12]);
      const doubled = b.add(v, v);
      const kept = b.scope(() => {
        const tmp = b.scale(x, 2);
        return b.add(tmp, x);
      });
      const scratch = b.scale(x, 5);
      b.dispose(scratch);
      const [rv, rflat, rd, rk, rx] = await readAll(b, v, flat, doubled, kept, x);
      return [rv!, rflat!, rd!, rk!, rx!, [...meta(v), ...meta(flat), ...meta(doubled), ...meta(kept)]];
    },
    reference: () => [f, f, Array.from(f, (v) => 2 * v), Array.from(f, (v) => 3 * v), f, [0, 12, 3, 4, 0, 12, 12, 0, 12, 3, 4, 0, 12, 2, 6]],
    tol: [TOL.exact, TOL.exact, TOL.elementwise, TOL.elementwise, TOL.exact, TOL.exact],
  });
  errorCases.push({
    name: 'reshape: element count mismatch throws',
    run: async (b) => b.read(b.reshape(b.upload(f, [2, 6]), [5, 2])),
    error: /reshape/,
  });
}

// ---- element-wise --------------------------------------------------------------------------

{
  const r = new Rng(202);
  const shape = [3, 5, 7];
  const n = 105;
  const a = r.normals(n, 2);
  const c = r.normals(n, 2);
  const g = r.normals(n, 3);
  // A few large gates: silu saturates to 0 and to the identity.
  g[0] = 40;
  g[1] = -40;
  g[2] = 15;
  g[3] = -15;
  const k = -0.37;
  cases.push({
    name: 'add, mul, scale',
    async run(b) {
      const ta = b.upload(a, shape);
      const tc = b.upload(c, shape);
      const [s, p, q] = await readAll(b, b.add(ta, tc), b.mul(ta, tc), b.scale(ta, k));
      return [s!, p!, q!];
    },
    reference: () => [Array.from(a, (v, i) => v + c[i]!), Array.from(a, (v, i) => v * c[i]!), Array.from(a, (v) => v * k)],
    tol: TOL.elementwise,
  });
  cases.push({
    name: 'swiglu: silu(gate) · up',
    async run(b) {
      return readAll(b, b.swiglu(b.upload(g, shape), b.upload(c, shape)));
    },
    reference: () => [Array.from(g, (v, i) => silu(v) * c[i]!)],
    tol: TOL.swiglu,
  });
  cases.push({
    name: 'sliceLast: [2, 3, 10] → [..., 3:7] and the whole row',
    async run(b) {
      const x = b.upload(a.subarray(0, 60), [2, 3, 10]);
      const s = b.sliceLast(x, 3, 4);
      const w = b.sliceLast(x, 0, 10);
      const [rs, rw] = await readAll(b, s, w);
      return [rs!, rw!, [...s.shape, ...w.shape]];
    },
    reference() {
      const out: number[] = [];
      for (let row = 0; row < 6; row++) for (let j = 3; j < 7; j++) out.push(a[row * 10 + j]!);
      return [out, a.subarray(0, 60), [2, 3, 4, 2, 3, 10]];
    },
    tol: TOL.exact,
  });
  const rows = [3, 0, 3, 5];
  cases.push({
    name: 'gatherRows: repeated and reordered rows',
    async run(b) {
      const t = b.gatherRows(b.upload(a.subarray(0, 30), [6, 5]), b.upload(Int32Array.from(rows), [4]));
      const [rt] = await readAll(b, t);
      return [rt!, t.shape];
    },
    reference() {
      const out: number[] = [];
      for (const row of rows) for (let j = 0; j < 5; j++) out.push(a[row * 5 + j]!);
      return [out, [4, 5]];
    },
    tol: TOL.exact,
  });
  cases.push({
    name: 'sliceRows and concatRows: a [6, 5] split into rows 1..2 and 4..5, then stacked',
    async run(b) {
      const x = b.upload(a.subarray(0, 30), [6, 5]);
      const t = b.concatRows([b.sliceRows(x, 1, 2), b.sliceRows(x, 4, 2)]);
      const [rt] = await readAll(b, t);
      return [rt!, t.shape];
    },
    reference() {
      const out: number[] = [];
      for (const row of [1, 2, 4, 5]) for (let j = 0; j < 5; j++) out.push(a[row * 5 + j]!);
      return [out, [4, 5]];
    },
    tol: TOL.exact,
  });
  errorCases.push({
    name: 'sliceRows beyond the first dimension throws',
    run: async (b) => b.read(b.sliceRows(b.upload(a.subarray(0, 30), [6, 5]), 5, 2)),
    error: /sliceRows/,
  });
  errorCases.push({
    name: 'concatRows of tensors with different trailing dims throws',
    run: async (b) => b.read(b.concatRows([b.upload(a.subarray(0, 10), [2, 5]), b.upload(a.subarray(0, 8), [2, 4])])),
    error: /concatRows/,
  });
  for (const bad of [6, -1]) {
    errorCases.push({
      name: `gatherRows: row index ${bad} outside 0..5 throws`,
      run: async (b) => b.read(b.gatherRows(b.upload(a.subarray(0, 30), [6, 5]), b.upload(Int32Array.of(0, bad), [2]))),
      error: /gatherRows: row -?\d+ is outside 0\.\.5/,
      // The indices are on the device: the kernel reads a zero row for them.
      gpu: { does: 'zeros', expect: () => [[...a.subarray(0, 5), 0, 0, 0, 0, 0]] },
    });
  }
  errorCases.push({
    name: 'add: operands of different shapes throw',
    run: async (b) => b.read(b.add(b.upload(a.subarray(0, 12), [3, 4]), b.upload(a.subarray(0, 12), [4, 3]))),
    error: /add: second operand has shape \[4, 3\], expected \[3, 4\]/,
  });
  errorCases.push({
    name: 'sliceLast beyond the last dimension throws',
    run: async (b) => b.read(b.sliceLast(b.upload(a.subarray(0, 30), [6, 5]), 3, 3)),
    error: /sliceLast: \[3, 6\) is outside the last dimension 5/,
  });
  const am = r.normals(4 * 9);
  for (let j = 0; j < 9; j++) am[9 + j] = -10 - Math.abs(am[9 + j]!); // all negative
  for (let j = 0; j < 9; j++) am[18 + j] = j === 6 ? -1e30 : -Infinity; // -inf except one
  cases.push({
    name: 'argmax over the last dim (all-negative and mostly −∞ rows)',
    run: async (b) => readAll(b, b.argmax(b.upload(am, [4, 9]))),
    reference() {
      const out: number[] = [];
      for (let row = 0; row < 4; row++) {
        let best = 0;
        for (let j = 1; j < 9; j++) if (am[row * 9 + j]! > am[row * 9 + best]!) best = j;
        out.push(best);
      }
      return [out];
    },
    tol: TOL.exact,
  });
}

runCases('memory and element-wise', cases, errorCases);
