/**
 * Backend ops vs naive references: FP8 activation quantization (quantFp8, dequantFp8), cache writes
 * (writeRows), bf16 tensors through the memory and shape ops, and packLatent in the three latent
 * formats. The case structure, tolerances and the backends run are in ./harness.ts.
 */
import assert from 'node:assert/strict';
import { actQuant } from '../../../src/numerics/block-quant.js';
import {
  type ErrorCase,
  type OpCase,
  TOL,
  arrayKind,
  compareAll,
  fr,
  meta,
  pagesOf,
  randomBf16,
  readAll,
  refActQuant,
  refE4m3,
  refSlot,
  Rng,
  runCases,
} from './harness.js';
import { refPackRow } from './latent-ref.js';

const cases: OpCase[] = [];
const errorCases: ErrorCase[] = [];

// ---- FP8 quantization -------------------------------------------------------------------------

{
  const r = new Rng(606);
  const rows = 4;
  const n = 200; // one full 128-block and a partial one
  const x = r.normals(rows * n);
  for (let j = 0; j < n; j++) x[n + j] = 0; // zero row: amax floor 1e-4
  for (let j = 0; j < n; j++) x[2 * n + j]! *= j < 128 ? 1000 : 1e-5; // large block, then below the floor
  for (let j = 0; j < n; j++) x[3 * n + j] = x[3 * n + j]! * (j % 7 === 0 ? 50 : 0.01); // wide range in a block
  for (const fmt of ['none', 'ue8m0'] as const) {
    cases.push({
      name: `quantFp8 + dequantFp8 (block 128, '${fmt}'): codes and scales bit-exact vs numerics actQuant, round trip`,
      async run(b) {
        const { q, s } = b.quantFp8(b.upload(x, [rows, n]), 128, fmt);
        const d = b.dequantFp8(q, s, 128);
        const [rq, rs, rd] = await readAll(b, q, s, d);
        return [rq!, rs!, rd!, [...meta(q), ...meta(s), ...meta(d)]];
      },
      reference() {
        const { q, s } = actQuant(x, rows, n, 128, fmt);
        // The naive quantizer (used by the FP8 GEMM reference) agrees with numerics bit for bit.
        const mine = refActQuant(x, rows, n, 128, fmt);
        assert.deepEqual(Array.from(mine.q), Array.from(q), 'reference quantizer codes');
        assert.deepEqual(Array.from(mine.s), Array.from(s), 'reference quantizer scales');
        const d = Array.from(q, (c, i) => fr(refE4m3(c) * s[Math.floor(i / n) * 2 + Math.floor((i % n) / 128)]!));
        return [q, s, d, [2, rows * n, rows, n, 0, rows * 2, rows, 2, 0, rows * n, rows, n]];
      },
      tol: TOL.exact,
      check(got, want, tols) {
        compareAll(this.name, got, want, tols);
        // Round trip: within half an e4m3 step (1/16 relative, 2^-10 · s absolute for subnormals).
        const d = got[2]!;
        const s = got[1]!;
        for (let i = 0; i < x.length; i++) {
          const sc = s[Math.floor(i / n) * 2 + Math.floor((i % n) / 128)]!;
          const bound = Math.abs(x[i]!) / 16 + sc * 2 ** -10 + 1e-30;
          assert.ok(Math.abs(d[i]! - x[i]!) <= bound, `round trip [${i}]: ${x[i]} → ${d[i]}`);
        }
      },
    });
  }
}

errorCases.push({
  name: 'dequantFp8: scales of another count than the blocks throw',
  run: async (b) => b.read(b.dequantFp8(b.zeros([4, 200], 'u8'), b.zeros([4, 1], 'f32'), 128)),
  error: /dequantFp8: expected 8 scales, got 4/,
});

// ---- cache writes ----------------------------------------------------------------------------

{
  const r = new Rng(707);
  const table = [2, 0, 3];
  const pageSize = 4;
  const slots = 16;
  const width = 10;
  const pos1 = Int32Array.of(5, 0, 11, 6, 3, 9); // out of order, across the pages
  const src1 = r.normals(6 * 6);
  const pos2 = Int32Array.of(10);
  const src2 = r.normals(3);
  const init = Float32Array.from({ length: slots * width }, (_, i) => 1000 + i);
  cases.push({
    name: 'writeRows: f32 rows through block table [2, 0, 3] (pageSize 4) at column offsets 3 and 7',
    async run(b) {
      const dst = b.upload(init, [slots, width]);
      const pages = pagesOf(b, table, pageSize);
      b.writeRows(dst, pages, b.upload(pos1, [6]), b.upload(src1, [6, 6]), 3);
      b.writeRows(dst, pages, b.upload(pos2, [1]), b.upload(src2, [1, 3]), 7);
      return readAll(b, dst);
    },
    reference() {
      const out = Float64Array.from(init);
      pos1.forEach((p, t) => {
        for (let j = 0; j < 6; j++) out[refSlot(table, pageSize, p) * width + 3 + j] = src1[t * 6 + j]!;
      });
      for (let j = 0; j < 3; j++) out[refSlot(table, pageSize, pos2[0]!) * width + 7 + j] = src2[j]!;
      return [out];
    },
    tol: TOL.exact,
  });
  errorCases.push({
    name: 'writeRows: columns past the cache row throw',
    async run(b) {
      const dst = b.upload(init, [slots, width]);
      b.writeRows(dst, pagesOf(b, table, pageSize), b.upload(pos1, [6]), b.upload(src1, [6, 6]), 5);
      return b.read(dst);
    },
    error: /writeRows: columns \[5, 11\) exceed the cache row 10/,
  });
  errorCases.push({
    name: 'writeRows: another number of positions than rows throws',
    async run(b) {
      const dst = b.upload(init, [slots, width]);
      b.writeRows(dst, pagesOf(b, table, pageSize), b.upload(pos1.subarray(0, 5), [5]), b.upload(src1, [6, 6]), 0);
      return b.read(dst);
    },
    error: /writeRows: 6 rows but 5 positions/,
  });
  errorCases.push({
    name: 'writeRows: a position past the block table throws',
    async run(b) {
      const dst = b.upload(init, [slots, width]);
      b.writeRows(dst, pagesOf(b, table, pageSize), b.upload(Int32Array.of(12), [1]), b.upload(src2, [1, 3]), 0);
      return b.read(dst);
    },
    // The CPU's message comes from its page lookup (shared by every op that reads pages).
    error: /position 12 is beyond the sequence's 3 cache pages/,
    // The positions and the block table are on the device: the kernel skips that row.
    gpu: { does: 'skips', expect: () => [init] },
  });
  const initU8 = Uint8Array.from({ length: slots * 8 }, () => 0x7f);
  const srcU8 = Uint8Array.from({ length: 3 * 8 }, () => r.int(256));
  const posU8 = Int32Array.of(10, 1, 4);
  cases.push({
    name: 'writeRows: u8 rows (an FP8 key cache) through a paged block table',
    async run(b) {
      const dst = b.upload(initU8, [slots, 8]);
      b.writeRows(dst, pagesOf(b, table, pageSize), b.upload(posU8, [3]), b.upload(srcU8, [3, 8]), 0);
      return readAll(b, dst);
    },
    reference() {
      const out = Array.from(initU8);
      posU8.forEach((p, t) => {
        for (let j = 0; j < 8; j++) out[refSlot(table, pageSize, p) * 8 + j] = srcU8[t * 8 + j]!;
      });
      return [out];
    },
    tol: TOL.exact,
  });
}

// ---- bf16 tensors and packLatent (latent cache formats) ---------------------------------------

{
  const r = new Rng(1313);
  // bf16 tensors through the memory and shape ops: bit patterns are kept.
  const bits = randomBf16(r, 24);
  const table = [1, 0];
  const pageSize = 4;
  cases.push({
    name: 'bf16 tensors: upload/read, zeros, reshape, sliceLast, gatherRows and writeRows keep the bit patterns',
    async run(b) {
      const t = b.upload(bits, [4, 6]);
      const z = b.zeros([3, 2], 'bf16');
      const v = b.reshape(t, [6, 4]);
      const s = b.sliceLast(t, 2, 3);
      const g = b.gatherRows(t, b.upload(Int32Array.of(3, 0, 3), [3]));
      const dst = b.zeros([8, 6], 'bf16');
      b.writeRows(dst, pagesOf(b, table, pageSize), b.upload(Int32Array.of(5, 0), [2]), b.upload(bits.subarray(0, 8), [2, 4]), 1);
      const out = await readAll(b, t, z, v, s, g, dst);
      return [...out, [...meta(t), ...meta(z), ...meta(v), ...meta(s), ...meta(g), ...meta(dst)], out.map(arrayKind)];
    },
    reference() {
      const slice: number[] = [];
      for (let row = 0; row < 4; row++) slice.push(...bits.subarray(row * 6 + 2, row * 6 + 5));
      const gathered = [...bits.subarray(18, 24), ...bits.subarray(0, 6), ...bits.subarray(18, 24)];
      const dst = new Array<number>(48).fill(0);
      dst.splice(refSlot(table, pageSize, 5) * 6 + 1, 4, ...bits.subarray(0, 4));
      dst.splice(refSlot(table, pageSize, 0) * 6 + 1, 4, ...bits.subarray(4, 8));
      const m = [3, 24, 4, 6, 3, 6, 3, 2, 3, 24, 6, 4, 3, 12, 4, 3, 3, 18, 3, 6, 3, 48, 8, 6];
      return [bits, new Array(6).fill(0), bits, slice, gathered, dst, m, [3, 3, 3, 3, 3, 3]];
    },
    tol: TOL.exact,
  });

  // Odd row widths: a GPU keeps two bf16 or four u8 elements in a word, so these rows start inside words.
  const odd16 = randomBf16(r, 5 * 3);
  const odd8 = Uint8Array.from({ length: 5 * 7 }, () => r.int(256));
  cases.push({
    name: 'bf16 [5, 3] and u8 [5, 7] tensors (rows inside words): sliceRows, concatRows, sliceLast, gatherRows',
    async run(b) {
      const out = [];
      for (const [data, n] of [
        [odd16, 3],
        [odd8, 7],
      ] as const) {
        const t = b.upload(data, [5, n]);
        const stacked = b.concatRows([b.sliceRows(t, 3, 2), b.sliceRows(t, 0, 1), b.sliceRows(t, 1, 1)]);
        out.push(stacked, b.sliceLast(t, 1, 2), b.gatherRows(t, b.upload(Int32Array.of(4, 1, 1), [3])));
      }
      const got = await readAll(b, ...out);
      return [...got, out.flatMap(meta)];
    },
    reference() {
      const rowsOf = (data: ArrayLike<number>, n: number, rows: number[]) => rows.flatMap((row) => Array.from({ length: n }, (_, j) => data[row * n + j]!));
      const cols = (data: ArrayLike<number>, n: number) => [0, 1, 2, 3, 4].flatMap((row) => [data[row * n + 1]!, data[row * n + 2]!]);
      const m = (code: number, n: number) => [code, 4 * n, 4, n, code, 10, 5, 2, code, 3 * n, 3, n];
      return [rowsOf(odd16, 3, [3, 4, 0, 1]), cols(odd16, 3), rowsOf(odd16, 3, [4, 1, 1]), rowsOf(odd8, 7, [3, 4, 0, 1]), cols(odd8, 7), rowsOf(odd8, 7, [4, 1, 1]), [...m(3, 3), ...m(2, 7)]];
    },
    tol: TOL.exact,
  });

  // packLatent: T rows of c_kv [T, 256] (two 128-blocks) and k_rope [T, 8].
  const T = 5;
  const rk = 256;
  const dr = 8;
  const ckv = r.normals(T * rk, 1.5);
  for (let j = 0; j < 128; j++) ckv[1 * rk + j] = 0; // row 1, block 0: all zero (amax floor)
  for (let j = 128; j < 256; j++) ckv[2 * rk + j]! *= 300; // row 2, block 1: large values
  for (let j = 0; j < rk; j++) ckv[3 * rk + j]! *= 1e-3; // row 3: small values
  ckv[4 * rk + 7] = 448 * 2 ** -3; // row 4: amax exactly a power of two times 448
  const kPe = r.normals(T * dr, 2);
  kPe[0] = fr(1 + 2 ** -8); // exactly halfway between two bf16 values: ties to even (down)
  kPe[1] = fr(1 + 3 * 2 ** -8); // halfway, ties to even (up)
  const widthOf = { f32: rk + dr, bf16: rk + dr, fp8: rk + 4 * (rk / 128) + 2 * dr } as const;
  const dtypeCode = { f32: 0, bf16: 3, fp8: 2 } as const;
  for (const format of ['f32', 'bf16', 'fp8'] as const) {
    cases.push({
      name: `packLatent '${format}': ${format === 'fp8' ? 'e4m3 codes, power-of-two scales (bit-exact vs actQuantRow ue8m0) and bf16 k_rope bytes' : format === 'bf16' ? 'bf16 bits, round to nearest even' : 'c_kv then k_rope'}`,
      async run(b) {
        const t = b.packLatent(b.upload(ckv, [T, rk]), b.upload(kPe, [T, dr]), format);
        const [rt] = await readAll(b, t);
        return [rt!, meta(t)];
      },
      reference() {
        const rows: number[] = [];
        for (let t = 0; t < T; t++) rows.push(...refPackRow(ckv.subarray(t * rk, (t + 1) * rk), kPe.subarray(t * dr, (t + 1) * dr), format));
        const w = widthOf[format];
        return [rows, [dtypeCode[format], T * w, T, w]];
      },
      tol: TOL.exact,
    });
  }
  errorCases.push({
    name: "packLatent 'fp8': r not a multiple of 128 throws",
    run: async (b) => b.read(b.packLatent(b.upload(new Float32Array(2 * 96), [2, 96]), b.upload(new Float32Array(16), [2, 8]), 'fp8')),
    error: /packLatent.*128/,
  });
}

runCases('quantization and cache writes', cases, errorCases);
