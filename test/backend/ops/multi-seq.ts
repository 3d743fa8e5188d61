/**
 * Multi-sequence cases for the op harness: the cache ops (writeRows, indexerScores, mlaAttention)
 * called once over the rows of several sequences (SeqPages.rowSeq over a 2-D block table) must give
 * every row exactly what the op gives it when called for its sequence alone (1-D table). A case
 * runs both ways on the backend under test and checks them equal bit for bit, and the batched
 * result against the naive reference.
 *
 * To turn a single-sequence case into a multi-sequence one: describe the sequences (their block
 * tables over one page pool) and the batched call's rows (`MultiSeqLayout.order`, any
 * interleaving), then give `multiSeqCase` the batched call (`all`, with stackedPages) and the
 * per-sequence calls (`perSeq`, with onePages), placing their rows with placeRows.
 *
 * Backends that do not declare `multiSequence` skip these cases (with the reason).
 */
import type { Backend, SeqPages } from '../../../src/backend/backend.js';
import { type Arr, type OpCase, type Tol, TOL, compareAll, Rng } from './harness.js';

export interface MultiSeqLayout {
  pageSize: number;
  /** Each sequence's block table: distinct pages of one pool. */
  tables: number[][];
  /** The batched call's rows in call order: [sequence, its row number]. */
  order: Array<[number, number]>;
}

/** The skip reason for backends without several sequences per call. */
export function needsMultiSequence(b: Backend): string | null {
  return b.multiSequence ? null : `the ${b.name} backend does not declare multiSequence (SeqPages.rowSeq)`;
}

/** Random tables: sequence j gets pages[j] distinct pages of a shuffled pool of `pool` pages. */
export function randomTables(r: Rng, pool: number, pages: readonly number[]): number[][] {
  const ids = r.shuffle(Array.from({ length: pool }, (_, i) => i));
  let at = 0;
  return pages.map((n) => ids.slice(at, (at += n)));
}

/** The tables stacked into one 2-D table (padded with 0 to the widest) with each call row's sequence. */
export function stackedPages(b: Backend, layout: MultiSeqLayout): SeqPages {
  const width = Math.max(...layout.tables.map((t) => t.length));
  const table = new Int32Array(layout.tables.length * width);
  layout.tables.forEach((t, j) => table.set(t, j * width));
  const rowSeq = Int32Array.from(layout.order, ([j]) => j);
  return { blockTable: b.upload(table, [layout.tables.length, width]), pageSize: layout.pageSize, rowSeq: b.upload(rowSeq, [rowSeq.length]) };
}

/** Sequence j's own 1-D block table. */
export function onePages(b: Backend, layout: MultiSeqLayout, j: number): SeqPages {
  return { blockTable: b.upload(Int32Array.from(layout.tables[j]!), [layout.tables[j]!.length]), pageSize: layout.pageSize };
}

/** The call rows of sequence j, in call order: their indices into `order`. */
export function callRowsOf(layout: MultiSeqLayout, j: number): number[] {
  return layout.order.flatMap(([s], i) => (s === j ? [i] : []));
}

/** Per-sequence row data (rows of n values, in each sequence's row order) gathered into call order. */
export function inCallOrder<T extends Float32Array | Int32Array | Uint8Array>(layout: MultiSeqLayout, perSeq: readonly T[], n: number): T {
  const out = new (perSeq[0]!.constructor as { new (len: number): T })(layout.order.length * n);
  layout.order.forEach(([j, k], i) => out.set(perSeq[j]!.subarray(k * n, (k + 1) * n), i * n));
  return out;
}

/**
 * Per-sequence outputs placed into the batched output's rows: sequence j's output `parts[j]`
 * ([its rows, w_j], w_j ≤ width) at its call rows, the rest of each row `fill`.
 */
export function placeRows(layout: MultiSeqLayout, parts: readonly Arr[], width: number, fill = 0): Float64Array {
  const out = new Float64Array(layout.order.length * width).fill(fill);
  parts.forEach((part, j) => {
    const rows = callRowsOf(layout, j);
    const w = rows.length === 0 ? 0 : part.length / rows.length;
    rows.forEach((row, k) => {
      for (let c = 0; c < w; c++) out[row * width + c] = part[k * w + c]!;
    });
  });
  return out;
}

/**
 * A case run both ways: `all` (one call with stackedPages) and `perSeq` (one call per sequence,
 * outputs arranged like all's). Checked: all's outputs against the reference within `tol`, and
 * perSeq's equal to all's exactly (±∞ and NaN included).
 */
export function multiSeqCase(o: {
  name: string;
  all(b: Backend): Promise<Arr[]>;
  perSeq(b: Backend): Promise<Arr[]>;
  reference(): Arr[];
  tol: Tol;
}): OpCase {
  let outputs = 0;
  return {
    name: o.name,
    needs: needsMultiSequence,
    async run(b) {
      const all = await o.all(b);
      const per = await o.perSeq(b);
      outputs = all.length;
      return [...all, ...per];
    },
    reference: () => o.reference(),
    tol: o.tol,
    check(got, want, tols) {
      const all = got.slice(0, outputs);
      const per = got.slice(outputs);
      compareAll(`${o.name} (one call)`, all, want, tols);
      compareAll(`${o.name} (per sequence vs one call, exact)`, per, all, all.map(() => TOL.exact));
    },
  };
}
