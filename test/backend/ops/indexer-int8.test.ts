/**
 * Backend ops vs naive references: the int8 indexer (an int8 indexer cache, --indexer-cache int8):
 * requantInt8 (FP8 rows → int8 with one scale per row) and indexerScoresInt8 over a paged int8 key
 * cache, for one sequence and for several in one call. The case structure and the backends run are
 * in ./harness.ts.
 */
import type { Backend, SeqPages } from '../../../src/backend/backend.js';
import { type ErrorCase, type OpCase, TOL, pagesOf, randomCodes, readAll, refE4m3, refSlot, Rng, runCases } from './harness.js';

const cases: OpCase[] = [];
const errorCases: ErrorCase[] = [];

/** The reference re-quantization: int8 codes and float32 scales, as the op defines them. */
function refRequant(codes: Uint8Array, scaleIn: Float32Array, rows: number, dim: number): { q: Int8Array; s: Float32Array } {
  const q = new Int8Array(rows * dim);
  const s = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let d = 0; d < dim; d++) amax = Math.max(amax, Math.abs(refE4m3(codes[r * dim + d]!)));
    s[r] = Math.fround(scaleIn[r]! * Math.fround(amax / 127));
    for (let d = 0; d < dim && amax > 0; d++) {
      const x = (127 * refE4m3(codes[r * dim + d]!)) / amax;
      q[r * dim + d] = Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
    }
  }
  return { q, s };
}

// ---- requantInt8 ---------------------------------------------------------------------------------

{
  const r = new Rng(4242);
  const [rows, dim] = [6, 64];
  const codes = randomCodes(r, rows * dim, 2);
  codes.fill(0, 2 * dim, 3 * dim); // a zero row: scale 0, codes 0
  codes[dim + 5] = 0xfe; // −448 (the largest magnitude): maps to −127 exactly
  const scaleIn = r.uniforms(rows, 0.01, 2);
  cases.push({
    name: 'requantInt8: e4m3 rows → int8 round(127 · v / max|v|) and scale · max|v| / 127 (a zero row: all 0)',
    async run(b) {
      const out = b.requantInt8(b.upload(codes, [rows, dim]), b.upload(scaleIn, [rows, 1]));
      const [q, s] = await readAll(b, out.q, out.s);
      return [Float64Array.from(new Int8Array((q as Uint8Array).buffer)), out.q.shape, s!, out.s.shape];
    },
    reference() {
      const want = refRequant(codes, scaleIn, rows, dim);
      return [Float64Array.from(want.q), [rows, dim], want.s, [rows, 1]];
    },
    tol: [TOL.exact, TOL.exact, TOL.exact, TOL.exact],
  });
}

// ---- indexerScoresInt8 ---------------------------------------------------------------------------

{
  const r = new Rng(9090);
  const [T, H, D] = [3, 16, 64];
  const pageSize = 32; // the GPU kernel's tile is 32 keys
  const table = [2, 0, 3];
  const slots = 4 * pageSize;
  const nKeys = 80;
  const positions = Int32Array.of(79, 40, 0);
  const q8 = randomCodes(r, T * H * D, 2);
  const w = r.normals(T * H, 0.5);
  const keys8 = randomCodes(r, nKeys * D, 2);
  const keyScales = r.uniforms(nKeys, 1e-4, 1e-3);
  // Unused slots hold codes and scales that would poison the scores if read.
  const kCache8 = new Uint8Array(slots * D).fill(0x7e);
  const kScaleIn = new Float32Array(slots).fill(NaN);
  for (let s = 0; s < nKeys; s++) {
    const slot = refSlot(table, pageSize, s);
    kCache8.set(keys8.subarray(s * D, (s + 1) * D), slot * D);
    kScaleIn[slot] = keyScales[s]!;
  }
  const qi = refRequant(q8, w, T * H, D);
  const ki = refRequant(keys8, keyScales, nKeys, D);
  /** Rows `rowsOf`'s reference scores; keyOf maps a row's key s to the index of the key it reads (its sequence's page order). */
  const reference = (rowsOf: number[], keyOf: (t: number, s: number) => number = (_t, s) => s) => {
    const out = new Float64Array(rowsOf.length * nKeys).fill(-Infinity);
    rowsOf.forEach((t, i) => {
      for (let s = 0; s <= Math.min(positions[t]!, nKeys - 1); s++) {
        const k = keyOf(t, s);
        let sum = 0;
        for (let h = 0; h < H; h++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qi.q[(t * H + h) * D + d]! * ki.q[k * D + d]!;
          sum += qi.s[t * H + h]! * Math.max(0, dot);
        }
        out[i * nKeys + s] = ki.s[k]! * sum;
      }
    });
    return out;
  };
  /** Keys and queries through requantInt8 (as the model does), then the scan. */
  const scan = (b: Backend, pages: SeqPages, rows: number, pos: Int32Array, qRows: Uint8Array, wRows: Float32Array, n = nKeys) => {
    const k = b.requantInt8(b.upload(kCache8, [slots, D]), b.upload(kScaleIn, [slots]));
    const q = b.requantInt8(b.upload(qRows, [rows * H, D]), b.upload(wRows, [rows * H]));
    return b.indexerScoresInt8(b.reshape(q.q, [rows, H, D]), b.reshape(q.s, [rows, H]), k.q, b.reshape(k.s, [slots]), pages, n, b.upload(pos, [rows]));
  };
  // Outputs ~1: float32 sums of 16 heads in any order against the float64 reference.
  const tol = { abs: 2e-6, rel: 2e-6 };
  cases.push({
    name: 'indexerScoresInt8: paged int8 key cache, kScale · Σ_h wq · ReLU(qI8 · kI8), −∞ after each query position',
    async run(b) {
      const out = scan(b, pagesOf(b, table, pageSize), T, positions, q8, w);
      const [o] = await readAll(b, out);
      return [o!, out.shape];
    },
    reference: () => [reference([0, 1, 2]), [T, nKeys]],
    tol: [tol, TOL.exact],
  });
  cases.push({
    name: 'indexerScoresInt8: two sequences in one call (rowSeq), each row against its own pages',
    needs: (b) => (b.multiSequence ? null : `the ${b.name} backend does not declare multiSequence`),
    async run(b) {
      // Sequence 1's pages 0, 2 hold sequence 0's keys 32–63, then 0–31 (row 1, at position 40, is sequence 1's).
      const table2 = Int32Array.of(...table, 1, 0, 2, 3, 1);
      const pages: SeqPages = { blockTable: b.upload(table2, [2, 4]), pageSize, rowSeq: b.upload(Int32Array.of(0, 1, 0), [3]) };
      const out = scan(b, pages, T, positions, q8, w);
      const [o] = await readAll(b, out);
      return [o!, out.shape];
    },
    reference: () => [reference([0, 1, 2], (t, s) => (t === 1 ? (s < 32 ? s + 32 : s - 32) : s)), [T, nKeys]],
    tol: [tol, TOL.exact],
  });
  errorCases.push({
    name: 'indexerScoresInt8: heads not a multiple of 16 throw, naming the shape',
    run: (b) =>
      b.read(b.indexerScoresInt8(b.upload(new Uint8Array(8 * D), [1, 8, D]), b.upload(new Float32Array(8), [1, 8]), b.upload(new Uint8Array(slots * D), [slots, D]), b.upload(new Float32Array(slots), [slots]), pagesOf(b, table, pageSize), nKeys, b.upload(Int32Array.of(3), [1]))),
    error: /indexerScoresInt8: the int8 indexer needs heads a multiple of 16 and dims of 32, got 8 heads of 64/,
  });
  errorCases.push({
    name: 'indexerScoresInt8: key cache rows of another width than the queries throw',
    run: (b) =>
      b.read(b.indexerScoresInt8(b.upload(new Uint8Array(H * D), [1, H, D]), b.upload(new Float32Array(H), [1, H]), b.upload(new Uint8Array(slots * 32), [slots, 32]), b.upload(new Float32Array(slots), [slots]), pagesOf(b, table, pageSize), nKeys, b.upload(Int32Array.of(3), [1]))),
    error: /indexerScoresInt8: key cache rows have 32 values, queries 64/,
  });
  errorCases.push({
    name: 'requantInt8: a scale count other than one per row throws',
    run: (b) => b.read(b.requantInt8(b.upload(new Uint8Array(4 * D), [4, D]), b.upload(new Float32Array(3), [3])).q),
    error: /requantInt8: expects one scale per row \(4\), got 3/,
  });
}

runCases('the int8 indexer', cases, errorCases);
