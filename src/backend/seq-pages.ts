/**
 * Checks of a SeqPages argument shared by the backends: its shapes (host metadata, checked by
 * every backend) and, where the backend has the index data on the host, that every row of a
 * several-sequence call names a row of the block table and stays within the table's width.
 */
import { expectShape, ShapeError, type SeqPages } from './backend.js';

/**
 * Throws a ShapeError naming the op unless `pages` fits an op over `rows` rows: a 1-D i32 table
 * without rowSeq, or a 2-D i32 table [seqs, maxPages] with an i32 rowSeq [rows].
 */
export function checkSeqPagesShape(op: string, pages: SeqPages, rows: number): void {
  const table = pages.blockTable;
  if (table.dtype !== 'i32') throw new ShapeError(op, `the block table must be i32, got ${table.dtype}`);
  if (!(Number.isInteger(pages.pageSize) && pages.pageSize > 0)) throw new ShapeError(op, `pageSize must be a positive integer, got ${pages.pageSize}`);
  const shape = `[${table.shape.join(', ')}]`;
  if (pages.rowSeq) {
    if (table.shape.length !== 2) throw new ShapeError(op, `with rowSeq the block table must be 2-D [seqs, maxPages], got ${shape}`);
    if (pages.rowSeq.dtype !== 'i32') throw new ShapeError(op, `rowSeq must be i32, got ${pages.rowSeq.dtype}`);
    expectShape(op, 'rowSeq', pages.rowSeq, [rows]);
  } else if (table.shape.length !== 1) {
    throw new ShapeError(op, `a block table of shape ${shape} needs rowSeq (the table row of each of the op's rows); one sequence's table is 1-D`);
  }
}

/**
 * Throws a RangeError naming the op unless every rowSeq[t] is a row of a [seqs, width] table and
 * the last position row t reaches, lastPos(t), lies on one of the table's `width` pages.
 */
export function checkRowSeq(op: string, rowSeq: Int32Array, seqs: number, width: number, pageSize: number, lastPos: (t: number) => number): void {
  for (let t = 0; t < rowSeq.length; t++) {
    const j = rowSeq[t]!;
    if (!(j >= 0 && j < seqs)) throw new RangeError(`${op}: rowSeq[${t}] = ${j} is outside the block table's ${seqs} rows`);
    const p = lastPos(t);
    const page = Math.floor(p / pageSize);
    if (page >= width) {
      throw new RangeError(`${op}: row ${t} (sequence ${j}) reaches position ${p}, on page ${page}, past the block table's ${width} pages per sequence`);
    }
  }
}
