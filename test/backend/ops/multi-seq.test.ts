/**
 * Backend ops over several sequences in one call (SeqPages.rowSeq over a 2-D block table):
 * writeRows, indexerScores and mlaAttention (dense and sparse, f32 and fp8 latents), each equal bit
 * for bit to the per-sequence calls and close to the naive reference; and the errors for a bad
 * rowSeq or table. Helpers in ./multi-seq.ts; backends without `multiSequence` skip these cases.
 */
import type { Backend } from '../../../src/backend/backend.js';
import { type ErrorCase, type OpCase, TOL, randomCodes, readAll, refE4m3, refSlot, Rng, runCases } from './harness.js';
import { refPackRow, refUnpackRow } from './latent-ref.js';
import { callRowsOf, inCallOrder, multiSeqCase, needsMultiSequence, onePages, placeRows, randomTables, stackedPages, type MultiSeqLayout } from './multi-seq.js';

const cases: OpCase[] = [];
const errorCases: ErrorCase[] = [];

// Three sequences of 11, 5 and 14 keys on pages of 4 (3, 2 and 4 pages of a pool of 12), their
// rows interleaved in the call; positions per sequence (each sequence's own numbering).
const r = new Rng(4242);
const pageSize = 4;
const pool = 12;
const slots = pool * pageSize;
const keyCounts = [11, 5, 14];
const tables = randomTables(r, pool, [3, 2, 4]);
const seqPositions = [Int32Array.of(10, 7), Int32Array.of(4, 2, 3), Int32Array.of(13, 0, 9)];
const layout: MultiSeqLayout = { pageSize, tables, order: [[2, 0], [0, 0], [1, 0], [2, 1], [1, 1], [0, 1], [1, 2], [2, 2]] };
const T = layout.order.length;
const positions = inCallOrder(layout, seqPositions, 1);
const nKeys = Math.max(...keyCounts);
const seqRows = (j: number) => seqPositions[j]!.length;
/** Sequence j's slot of its position p. */
const slotOf = (j: number, p: number) => refSlot(tables[j]!, pageSize, p);

// ---- writeRows -------------------------------------------------------------------------------------

{
  const width = 6;
  const n = 3;
  const col = 2;
  const src = seqPositions.map((p) => r.normals(p.length * n));
  const srcAll = inCallOrder(layout, src, n);
  cases.push(
    multiSeqCase({
      name: 'writeRows over three sequences in one call: each row at its own sequence’s slot',
      async all(b) {
        const dst = b.zeros([slots, width], 'f32');
        b.writeRows(dst, stackedPages(b, layout), b.upload(positions, [T]), b.upload(srcAll, [T, n]), col);
        return readAll(b, dst);
      },
      async perSeq(b) {
        const dst = b.zeros([slots, width], 'f32');
        tables.forEach((_, j) => b.writeRows(dst, onePages(b, layout, j), b.upload(seqPositions[j]!, [seqRows(j)]), b.upload(src[j]!, [seqRows(j), n]), col));
        return readAll(b, dst);
      },
      reference() {
        const out = new Float64Array(slots * width);
        tables.forEach((_, j) => seqPositions[j]!.forEach((p, k) => {
          for (let c = 0; c < n; c++) out[slotOf(j, p) * width + col + c] = src[j]![k * n + c]!;
        }));
        return [out];
      },
      tol: TOL.exact,
    }),
  );
}

// ---- indexerScores ---------------------------------------------------------------------------------

{
  const H = 3;
  const D = 32;
  const q8 = seqPositions.map((p) => randomCodes(r, p.length * H * D, 3));
  const w = seqPositions.map((p) => r.normals(p.length * H, 0.5));
  // Unused slots hold NaN codes and scales: reading another sequence's or a free slot poisons a score.
  const kCache = new Uint8Array(slots * D).fill(0x7f);
  const kScale = new Float32Array(slots).fill(NaN);
  const keys = keyCounts.map((n) => randomCodes(r, n * D, 3));
  const keyScales = keyCounts.map((n) => r.uniforms(n, 0.01, 0.2));
  keyCounts.forEach((n, j) => {
    for (let s = 0; s < n; s++) {
      kCache.set(keys[j]!.subarray(s * D, (s + 1) * D), slotOf(j, s) * D);
      kScale[slotOf(j, s)] = keyScales[j]![s]!;
    }
  });
  const upKeys = (b: Backend) => [b.upload(kCache, [slots, D]), b.upload(kScale, [slots])] as const;
  const refScores = (): Float64Array => {
    const out = new Float64Array(T * nKeys).fill(-Infinity);
    layout.order.forEach(([j, k], t) => {
      for (let s = 0; s <= seqPositions[j]![k]!; s++) {
        let sum = 0;
        for (let h = 0; h < H; h++) {
          let d = 0;
          for (let i = 0; i < D; i++) d += refE4m3(q8[j]![(k * H + h) * D + i]!) * refE4m3(keys[j]![s * D + i]!);
          sum += w[j]![k * H + h]! * Math.max(0, d);
        }
        out[t * nKeys + s] = keyScales[j]![s]! * sum;
      }
    });
    return out;
  };
  cases.push(
    multiSeqCase({
      name: 'indexerScores over three sequences in one call: each row against its own sequence’s keys, width = the largest key count',
      async all(b) {
        const [kc, ks] = upKeys(b);
        const out = b.indexerScores(
          b.upload(inCallOrder(layout, q8, H * D), [T, H, D]), b.upload(inCallOrder(layout, w, H), [T, H]),
          kc, ks, stackedPages(b, layout), nKeys, b.upload(positions, [T]),
        );
        return [...(await readAll(b, out)), out.shape];
      },
      async perSeq(b) {
        const [kc, ks] = upKeys(b);
        const parts = [];
        for (let j = 0; j < tables.length; j++) {
          const t = seqRows(j);
          const out = b.indexerScores(b.upload(q8[j]!, [t, H, D]), b.upload(w[j]!, [t, H]), kc, ks, onePages(b, layout, j), keyCounts[j]!, b.upload(seqPositions[j]!, [t]));
          parts.push((await readAll(b, out))[0]!);
        }
        return [placeRows(layout, parts, nKeys, -Infinity), [T, nKeys]];
      },
      reference: () => [refScores(), [T, nKeys]],
      tol: TOL.indexer,
    }),
  );
  errorCases.push({
    name: 'indexerScores: a rowSeq entry outside the block table’s rows throws',
    needs: needsMultiSequence,
    run: async (b) => {
      const [kc, ks] = upKeys(b);
      const pages = { ...stackedPages(b, layout), rowSeq: b.upload(Int32Array.of(2, 0, 1, 2, 3, 0, 1, 2), [T]) };
      return b.read(b.indexerScores(b.upload(inCallOrder(layout, q8, H * D), [T, H, D]), b.upload(inCallOrder(layout, w, H), [T, H]), kc, ks, pages, nKeys, b.upload(positions, [T])));
    },
    error: /indexerScores: rowSeq\[4\] = 3 is outside the block table's 3 rows/,
    // rowSeq is device data on a GPU: that row scores no key.
    gpu: { does: 'skips', expect: () => [refScores().fill(-Infinity, 4 * nKeys, 5 * nKeys)], tol: TOL.indexer },
  });
}

// ---- mlaAttention ----------------------------------------------------------------------------------

{
  const H = 2;
  const rk = 128; // kv_lora_rank (a multiple of 128 for the fp8 latent)
  const dr = 8;
  const scale = 0.08;
  const qLat = seqPositions.map((p) => r.normals(p.length * H * rk));
  const qPe = seqPositions.map((p) => r.normals(p.length * H * dr));
  const ckv = keyCounts.map((n) => r.normals(n * rk, 1.5));
  const kPe = keyCounts.map((n) => r.normals(n * dr, 2));
  // Sparse selections: a random subset of each row's keys in random order, −1 padded to width K.
  const K = 5;
  const idx = seqPositions.map((ps) => {
    const out = new Int32Array(ps.length * K).fill(-1);
    ps.forEach((p, k) => r.shuffle(Array.from({ length: p + 1 }, (_, s) => s)).slice(0, 1 + r.int(Math.min(K, p + 1))).forEach((s, i) => (out[k * K + i] = s)));
    return out;
  });
  for (const format of ['f32', 'fp8'] as const) {
    const width = format === 'f32' ? rk + dr : rk + 4 * (rk / 128) + 2 * dr;
    const cache = format === 'f32' ? new Float32Array(slots * width).fill(NaN) : new Uint8Array(slots * width).fill(0x7f);
    const logical: number[][][] = keyCounts.map(() => []);
    keyCounts.forEach((n, j) => {
      for (let s = 0; s < n; s++) {
        const c = ckv[j]!.subarray(s * rk, (s + 1) * rk);
        const k = kPe[j]!.subarray(s * dr, (s + 1) * dr);
        if (format === 'f32') {
          (cache as Float32Array).set(c, slotOf(j, s) * width);
          (cache as Float32Array).set(k, slotOf(j, s) * width + rk);
          logical[j]!.push([...c, ...k]);
        } else {
          const row = refPackRow(c, k, 'fp8');
          cache.set(row, slotOf(j, s) * width);
          logical[j]!.push(refUnpackRow(row, 'fp8', rk, dr));
        }
      }
    });
    const refRow = (j: number, k: number, set: number[], out: Float64Array, t: number) => {
      for (let h = 0; h < H; h++) {
        const q = [...qLat[j]!.subarray((k * H + h) * rk, (k * H + h + 1) * rk), ...qPe[j]!.subarray((k * H + h) * dr, (k * H + h + 1) * dr)];
        const logits = set.map((s) => logical[j]![s]!.reduce((a, v, i) => a + v * q[i]!, 0) * scale);
        const mx = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let c = 0; c < rk; c++) out[(t * H + h) * rk + c] = set.reduce((a, s, i) => a + (e[i]! / z) * logical[j]![s]![c]!, 0);
      }
    };
    for (const sparse of [false, true]) {
      const attended = (j: number, k: number) =>
        sparse ? Array.from(idx[j]!.subarray(k * K, (k + 1) * K)).filter((s) => s >= 0) : Array.from({ length: seqPositions[j]![k]! + 1 }, (_, s) => s);
      cases.push(
        multiSeqCase({
          name: `mlaAttention over three sequences in one call, ${sparse ? 'sparse indices' : 'dense causal'}, ${format} latent: each row over its own sequence`,
          async all(b) {
            const out = b.mlaAttention(
              b.upload(inCallOrder(layout, qLat, H * rk), [T, H, rk]), b.upload(inCallOrder(layout, qPe, H * dr), [T, H, dr]),
              b.upload(cache, [slots, width]), stackedPages(b, layout), b.upload(positions, [T]),
              sparse ? b.upload(inCallOrder(layout, idx, K), [T, K]) : null, scale,
            );
            return [...(await readAll(b, out)), out.shape];
          },
          async perSeq(b) {
            const latent = b.upload(cache, [slots, width]);
            const parts = [];
            for (let j = 0; j < tables.length; j++) {
              const t = seqRows(j);
              const out = b.mlaAttention(
                b.upload(qLat[j]!, [t, H, rk]), b.upload(qPe[j]!, [t, H, dr]), latent, onePages(b, layout, j),
                b.upload(seqPositions[j]!, [t]), sparse ? b.upload(idx[j]!, [t, K]) : null, scale,
              );
              parts.push((await readAll(b, out))[0]!);
            }
            return [placeRows(layout, parts, H * rk), [T, H, rk]];
          },
          reference() {
            const out = new Float64Array(T * H * rk);
            layout.order.forEach(([j, k], t) => refRow(j, k, attended(j, k), out, t));
            return [out, [T, H, rk]];
          },
          tol: TOL.attention,
        }),
      );
    }
  }

  // ---- errors ----
  const call = (b: Backend, o: { table?: number[]; tableShape?: number[]; rowSeq?: Int32Array | null; pos?: Int32Array }) => {
    const pages = stackedPages(b, layout);
    const blockTable = o.table ? b.upload(Int32Array.from(o.table), o.tableShape ?? [o.table.length]) : pages.blockTable;
    const rowSeq = o.rowSeq === null ? undefined : o.rowSeq ? b.upload(o.rowSeq, [o.rowSeq.length]) : pages.rowSeq;
    const pos = o.pos ?? positions;
    return b.read(
      b.mlaAttention(
        b.upload(inCallOrder(layout, qLat, H * rk), [T, H, rk]), b.upload(inCallOrder(layout, qPe, H * dr), [T, H, dr]),
        b.zeros([slots, rk + dr], 'f32'), { blockTable, pageSize, rowSeq }, b.upload(pos, [pos.length]), null, scale,
      ),
    );
  };
  errorCases.push({
    name: 'mlaAttention: rowSeq of another length than the rows throws',
    needs: needsMultiSequence,
    run: (b) => call(b, { rowSeq: Int32Array.of(0, 1) }),
    error: /mlaAttention: rowSeq has shape \[2\], expected \[8\]/,
  });
  errorCases.push({
    name: 'mlaAttention: a position on a page past the block table’s width throws',
    needs: needsMultiSequence,
    run: (b) => {
      const pos = positions.slice();
      pos[0] = 17; // sequence 2 (4 pages of 4): position 17 is on page 4
      return call(b, { pos });
    },
    error: /mlaAttention: row 0 \(sequence 2\) reaches position 17, on page 4, past the block table's 4 pages per sequence/,
    // On a GPU the entries past the table are skipped; the others are zero latent rows.
    gpu: { does: 'skips', expect: () => [new Float64Array(T * H * rk)] },
  });
  errorCases.push({
    name: 'mlaAttention: a 1-D block table with rowSeq throws',
    needs: needsMultiSequence,
    run: (b) => call(b, { table: tables[0]! }),
    error: /mlaAttention: with rowSeq the block table must be 2-D \[seqs, maxPages\], got \[3\]/,
  });
  errorCases.push({
    name: 'mlaAttention: a 2-D block table without rowSeq throws',
    needs: needsMultiSequence,
    run: (b) => call(b, { rowSeq: null }),
    error: /mlaAttention: a block table of shape \[3, 4\] needs rowSeq/,
  });
  errorCases.push({
    name: 'writeRows: a position past the block table’s width throws',
    needs: needsMultiSequence,
    run: async (b) => {
      const pos = positions.slice();
      pos[callRowsOf(layout, 1)[0]!] = 16; // the table is 4 pages wide (sequence 1 has 2; the rest is padding)
      const dst = b.zeros([slots, 4], 'f32');
      b.writeRows(dst, stackedPages(b, layout), b.upload(pos, [T]), b.upload(Float32Array.from({ length: T * 4 }, (_, i) => 1 + Math.floor(i / 4)), [T, 4]), 0);
      return b.read(dst);
    },
    error: /writeRows: row 2 \(sequence 1\) reaches position 16, on page 4, past the block table's 4 pages per sequence/,
    // On a GPU that row is skipped; every other row t (its values t + 1) lands at its slot.
    gpu: {
      does: 'skips',
      expect: () => {
        const out = new Float64Array(slots * 4);
        layout.order.forEach(([j, k], t) => t !== 2 && out.fill(t + 1, slotOf(j, seqPositions[j]![k]!) * 4, slotOf(j, seqPositions[j]![k]!) * 4 + 4));
        return [out];
      },
    },
  });
}

runCases('several sequences per call (SeqPages.rowSeq)', cases, errorCases);
