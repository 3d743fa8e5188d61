/**
 * Backend ops vs naive references with the rows of several sequences in one call (SeqPages.rowSeq
 * over a 2-D block table: continuous batching's one grid per op): writeRows, indexerScores and
 * mlaAttention (dense and sparse). Three sequences of 14, 9 and 5 positions whose pages lie in
 * shuffled order over one pool, six rows in mixed order (rows of one sequence not adjacent); the
 * slots no sequence owns hold NaN, so reading one poisons the result. Cases need the backend's
 * `multiSequence`; backends without it skip them. The case structure and backends are in ./harness.ts.
 */
import type { Backend, SeqPages } from '../../../src/backend/backend.js';
import { type Arr, type ErrorCase, type OpCase, TOL, randomCodes, readAll, refE4m3, Rng, runCases } from './harness.js';

const cases: OpCase[] = [];
const errorCases: ErrorCase[] = [];

const r = new Rng(4242);
const pageSize = 4;
const lens = [14, 9, 5];
const counts = lens.map((l) => Math.ceil(l / pageSize));
const poolPages = counts.reduce((a, b) => a + b, 0) + 2;
const slots = poolPages * pageSize;
const pool = r.shuffle(Array.from({ length: poolPages }, (_, i) => i));
const tables = counts.map((c, s) => pool.slice(counts.slice(0, s).reduce((a, b) => a + b, 0), counts.slice(0, s + 1).reduce((a, b) => a + b, 0)));
const maxPages = Math.max(...counts);
const table2d = new Int32Array(lens.length * maxPages).fill(-1);
tables.forEach((t, s) => table2d.set(t, s * maxPages));
const rowSeq = Int32Array.of(2, 0, 1, 0, 2, 1);
const positions = Int32Array.of(4, 13, 8, 6, 1, 0);
const T = rowSeq.length;
const nKeys = Math.max(...lens);

/** The slot of position p of sequence s. */
const slotOf = (s: number, p: number): number => tables[s]![Math.floor(p / pageSize)]! * pageSize + (p % pageSize);
/** Whether a slot belongs to no sequence. */
const owned = new Set(tables.flatMap((t, s) => Array.from({ length: lens[s]! }, (_, p) => slotOf(s, p))));

function pages(b: Backend, seqOfRow: Int32Array = rowSeq): SeqPages {
  return { blockTable: b.upload(table2d, [lens.length, maxPages]), pageSize, rowSeq: b.upload(seqOfRow, [seqOfRow.length]) };
}

// ---- writeRows ----

{
  const width = 7;
  const n = 5;
  const colOffset = 2;
  const dst = r.normals(slots * width);
  const src = r.normals(T * n);
  const write = async (b: Backend, seqOfRow: Int32Array): Promise<Arr[]> => {
    const d = b.upload(dst.slice(), [slots, width]);
    b.writeRows(d, pages(b, seqOfRow), b.upload(positions, [T]), b.upload(src, [T, n]), colOffset);
    return readAll(b, d);
  };
  /** dst with rows t (those with a sequence) written at their sequence's slot. */
  const written = (seqOfRow: Int32Array): Float32Array => {
    const out = dst.slice();
    for (let t = 0; t < T; t++) {
      const s = seqOfRow[t]!;
      if (s < 0 || s >= lens.length) continue;
      out.set(src.subarray(t * n, (t + 1) * n), slotOf(s, positions[t]!) * width + colOffset);
    }
    return out;
  };
  cases.push({
    name: 'writeRows: rows of three sequences in one call land in their own sequence\'s pages',
    needs: 'multiSequence',
    run: (b) => write(b, rowSeq),
    reference: () => [written(rowSeq)],
    tol: TOL.exact,
  });
  const bad = Int32Array.of(2, 0, 3, 0, 2, 1);
  errorCases.push({
    name: 'writeRows: a rowSeq value outside the table throws',
    needs: 'multiSequence',
    run: (b) => write(b, bad),
    error: /writeRows.*(rowSeq|sequence|table)/,
    gpu: { does: 'skips', expect: () => [written(bad)] },
  });
  errorCases.push({
    name: 'writeRows: rowSeq of another length than the rows throws',
    needs: 'multiSequence',
    run: (b) => write(b, rowSeq.subarray(0, 4)),
    error: /writeRows.*rowSeq/,
  });
}

// ---- indexerScores ----

{
  const H = 3;
  const D = 16;
  const q8 = randomCodes(r, T * H * D, 3);
  const w = r.normals(T * H, 0.5);
  const kCache = randomCodes(r, slots * D, 3);
  const kScale = r.uniforms(slots, 0.01, 0.2);
  for (let slot = 0; slot < slots; slot++) {
    if (owned.has(slot)) continue;
    kCache.fill(0x7f, slot * D, (slot + 1) * D); // NaN codes
    kScale[slot] = NaN;
  }
  const score = async (b: Backend, seqOfRow: Int32Array): Promise<Arr[]> =>
    readAll(b, b.indexerScores(b.upload(q8, [T, H, D]), b.upload(w, [T, H]), b.upload(kCache, [slots, D]), b.upload(kScale, [slots]), pages(b, seqOfRow), nKeys, b.upload(positions, [T])));
  /** The scores of rows with a sequence (rows without one: −∞). */
  const scores = (seqOfRow: Int32Array): Float64Array => {
    const out = new Float64Array(T * nKeys).fill(-Infinity);
    for (let t = 0; t < T; t++) {
      if (seqOfRow[t]! < 0 || seqOfRow[t]! >= lens.length) continue;
      for (let p = 0; p <= positions[t]!; p++) {
        const slot = slotOf(seqOfRow[t]!, p);
        let sum = 0;
        for (let h = 0; h < H; h++) {
          let dot = 0;
          for (let j = 0; j < D; j++) dot += refE4m3(q8[(t * H + h) * D + j]!) * refE4m3(kCache[slot * D + j]!);
          if (dot > 0) sum += w[t * H + h]! * dot;
        }
        out[t * nKeys + p] = kScale[slot]! * sum;
      }
    }
    return out;
  };
  cases.push({
    name: 'indexerScores: rows of three sequences in one call score their own sequence\'s keys, −∞ after each position',
    needs: 'multiSequence',
    run: (b) => score(b, rowSeq),
    reference: () => [scores(rowSeq)],
    tol: TOL.indexer,
  });
  const bad = Int32Array.of(2, -1, 1, 0, 2, 1);
  errorCases.push({
    name: 'indexerScores: a rowSeq value outside the table throws',
    needs: 'multiSequence',
    run: (b) => score(b, bad),
    error: /indexerScores.*(rowSeq|sequence|table)/,
    gpu: { does: 'skips', expect: () => [scores(bad)], tol: TOL.indexer },
  });
}

// ---- mlaAttention ----

{
  const H = 2;
  const rk = 16;
  const dr = 8;
  const row = rk + dr;
  const scale = 0.35;
  const qLat = r.normals(T * H * rk);
  const qPe = r.normals(T * H * dr);
  const latent = r.normals(slots * row);
  for (let slot = 0; slot < slots; slot++) if (!owned.has(slot)) latent.fill(NaN, slot * row, (slot + 1) * row);
  const K = 5;
  const idx = new Int32Array(T * K).fill(-1);
  for (let t = 0; t < T; t++) {
    const pick = r.shuffle(Array.from({ length: positions[t]! + 1 }, (_, p) => p)).slice(0, K - 1);
    pick.forEach((p, j) => (idx[t * K + (j < 1 ? j : j + 1)] = p)); // a −1 in the second place
  }
  const selected = (t: number): number[] => Array.from(idx.subarray(t * K, (t + 1) * K)).filter((p) => p >= 0);
  /** Row t of head h over the positions `set` of its sequence (none: zeros): softmax of [qLat | qPe] · latent rows, times c_kv. */
  const attendRef = (t: number, h: number, set: number[]): number[] => {
    const rows = set.map((p) => latent.subarray(slotOf(rowSeq[t]!, p) * row, (slotOf(rowSeq[t]!, p) + 1) * row));
    const q = (c: number) => (c < rk ? qLat[(t * H + h) * rk + c]! : qPe[(t * H + h) * dr + c - rk]!);
    const logits = rows.map((l) => scale * l.reduce((a, v, c) => a + v * q(c), 0));
    const top = Math.max(...logits);
    const e = logits.map((x) => Math.exp(x - top));
    const z = e.reduce((a, b) => a + b, 0);
    return Array.from({ length: rk }, (_, c) => rows.reduce((a, l, j) => a + (e[j]! / z) * l[c]!, 0));
  };
  const reference = (sets: (t: number) => number[]) => {
    const out: number[] = [];
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) out.push(...attendRef(t, h, sets(t)));
    return [out];
  };
  const run = async (b: Backend, indices: Int32Array | null, seqOfRow = rowSeq): Promise<Arr[]> =>
    readAll(
      b,
      b.mlaAttention(b.upload(qLat, [T, H, rk]), b.upload(qPe, [T, H, dr]), b.upload(latent, [slots, row]), pages(b, seqOfRow), b.upload(positions, [T]), indices ? b.upload(indices, [T, K]) : null, scale),
    );
  cases.push({
    name: 'mlaAttention: dense causal rows of three sequences in one call attend their own sequence',
    needs: 'multiSequence',
    run: (b) => run(b, null),
    reference: () => reference((t) => Array.from({ length: positions[t]! + 1 }, (_, p) => p)),
    tol: TOL.attention,
  });
  cases.push({
    name: 'mlaAttention: sparse rows of three sequences in one call (indices are positions of each row\'s sequence, −1 padding)',
    needs: 'multiSequence',
    run: (b) => run(b, idx),
    reference: () => reference(selected),
    tol: TOL.attention,
  });
  const bad = Int32Array.of(2, 0, 1, 5, 2, 1);
  errorCases.push({
    name: 'mlaAttention: a rowSeq value outside the table throws',
    needs: 'multiSequence',
    run: (b) => run(b, idx, bad),
    error: /mlaAttention.*(rowSeq|sequence|table)/,
    // The row attends nothing: zeros, as for a row of only −1.
    gpu: {
      does: 'skips',
      expect: () => reference((t) => (t === 3 ? [] : selected(t))),
      tol: TOL.attention,
    },
  });
}

runCases('several sequences in one call (rowSeq)', cases, errorCases);
