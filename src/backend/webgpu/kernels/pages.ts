/**
 * Block tables on WebGPU (SeqPages in backend.ts), shared by the kernels that read or write the
 * paged caches (rows.ts writeRows, the indexer variants, both MLA attention kernels).
 *
 * A call covers one sequence (a 1-D table [nPages], every row maps through it) or several (a 2-D
 * table [seqs, nPages] and rowSeq i32 [rows]: row t maps through table row rowSeq[t]), so one grid
 * takes every sequence of a batched step:
 *   slot(t, pos) = table[rowSeq[t] · tableStride + pos / pageSize] · pageSize + pos % pageSize,
 * with tableStride = nPages for a 2-D table and 0 for a 1-D one (rowSeq is then not read; the
 * launcher binds another buffer in its place). A page past nPages, a negative table entry or a
 * rowSeq value outside 0..seqs−1 gives no slot: the kernel skips that row or entry (a kernel cannot
 * throw; the CPU backend does).
 */
export interface GpuPages {
  /** i32 [nPages], or i32 [seqs, nPages] with rowSeq. */
  table: GPUBuffer;
  /** Table entries per sequence (the length of a 1-D table, maxPages of a 2-D one). */
  nPages: number;
  pageSize: number;
  /** i32 [rows]: the table row of each of the op's rows; null with a 1-D table. */
  rowSeq: GPUBuffer | null;
  /** Rows of a 2-D table (ignored without rowSeq). */
  seqs: number;
}

/** The table of a kernel's object arguments (indexer, writeRows): `tableLength` entries per sequence. */
export function pagesOfArgs(a: { table: GPUBuffer; tableLength: number; pageSize: number; rowSeq?: GPUBuffer | null; seqs?: number }): GpuPages {
  return { table: a.table, nPages: a.tableLength, pageSize: a.pageSize, rowSeq: a.rowSeq ?? null, seqs: a.seqs ?? 1 };
}

/** A one-sequence table. */
export function onePageTable(table: GPUBuffer, nPages: number, pageSize: number): GpuPages {
  return { table, nPages, pageSize, rowSeq: null, seqs: 1 };
}

/** WGSL Params fields for PAGES_WGSL, four u32 in this order (see pageParams). */
export const PAGE_FIELDS = 'pageSize: u32, nPages: u32, tableStride: u32, seqs: u32';

/** The values of PAGE_FIELDS for a table. */
export function pageParams(pg: GpuPages): [number, number, number, number] {
  return [pg.pageSize, pg.nPages, pg.rowSeq ? pg.nPages : 0, pg.rowSeq ? pg.seqs : 0];
}

/** The buffer bound as `rowSeq` (the table itself stands in when there is none: it is not read). */
export function rowSeqBinding(pg: GpuPages): GPUBuffer {
  return pg.rowSeq ?? pg.table;
}

/**
 * WGSL: `slotOf(t, pos) -> u32`, the cache slot of position pos (≥ 0) for row t, or NO_SLOT. Needs
 * bindings `table: array<i32>` and `rowSeq: array<i32>` and the PAGE_FIELDS in Params `p`.
 */
export const PAGES_WGSL = /* wgsl */ `
const NO_SLOT: u32 = 0xffffffffu;
fn slotOf(t: u32, pos: u32) -> u32 {
  let page = pos / p.pageSize;
  if (page >= p.nPages) { return NO_SLOT; }
  var at = page;
  if (p.tableStride > 0u) {
    let seq = rowSeq[t];
    if (seq < 0 || u32(seq) >= p.seqs) { return NO_SLOT; }
    at += u32(seq) * p.tableStride;
  }
  let base = table[at];
  if (base < 0) { return NO_SLOT; }
  return u32(base) * p.pageSize + pos % p.pageSize;
}
`;
