/**
 * Page maps of the CPU backend's cache ops, for one sequence (a 1-D block table) or several in one
 * call (a 2-D table with rowSeq: row t of the op reads and writes through table row rowSeq[t]).
 */
import type { SeqPages } from '../backend.js';
import { checkRowSeq, checkSeqPagesShape } from '../seq-pages.js';
import type { PageMap, RowPageMap } from './kernels/indexer.js';
import { i32 } from './tensor.js';

export interface RowPages {
  /** One page map per table row (a single one for a 1-D table). */
  maps: PageMap[];
  /** The table row of each of the op's rows; null when they all belong to the one sequence. */
  rowSeq: Int32Array | null;
}

/**
 * Checks `pages` for an op over `rows` rows and resolves its maps. With rowSeq, every entry must
 * name a table row and lastPos(t), the last position row t reads or writes, a page within the
 * table's width (a RangeError naming the op otherwise).
 */
export function rowPages(op: string, pages: SeqPages, rows: number, lastPos: (t: number) => number): RowPages {
  checkSeqPagesShape(op, pages, rows);
  const table = i32(pages.blockTable, op);
  const pageSize = pages.pageSize;
  if (!pages.rowSeq) return { maps: [{ table, pageSize }], rowSeq: null };
  const [seqs, width] = pages.blockTable.shape as [number, number];
  const rowSeq = i32(pages.rowSeq, op);
  checkRowSeq(op, rowSeq, seqs, width, pageSize, lastPos);
  const maps = Array.from({ length: seqs }, (_, j) => ({ table: table.subarray(j * width, (j + 1) * width), pageSize }));
  return { maps, rowSeq };
}

/** Row t → its sequence's page map, as the kernels take it. */
export function rowPageMap(rp: RowPages): RowPageMap {
  const { maps, rowSeq } = rp;
  return rowSeq ? (t) => maps[rowSeq[t]!]! : maps[0]!;
}

/** The op's rows grouped by sequence, in order of first appearance (rows ascending within a group). */
export function seqGroups(rp: RowPages, rows: number): Array<{ map: PageMap; rows: Int32Array }> {
  if (!rp.rowSeq) return [{ map: rp.maps[0]!, rows: Int32Array.from({ length: rows }, (_, t) => t) }];
  const byRow = new Map<number, number[]>();
  for (let t = 0; t < rows; t++) {
    const j = rp.rowSeq[t]!;
    let list = byRow.get(j);
    if (!list) byRow.set(j, (list = []));
    list.push(t);
  }
  return [...byRow].map(([j, list]) => ({ map: rp.maps[j]!, rows: Int32Array.from(list) }));
}

/** Rows `rows` of x [R, n] (row-major) → [rows.length, n]. */
export function pickRows<T extends Uint8Array | Float32Array | Int32Array>(x: T, n: number, rows: Int32Array): T {
  const out = new (x.constructor as { new (len: number): T })(rows.length * n);
  rows.forEach((r, i) => out.set(x.subarray(r * n, (r + 1) * n), i * n));
  return out;
}
