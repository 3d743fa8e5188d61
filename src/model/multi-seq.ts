/**
 * One backend call per DSA op over every sequence of a step (continuous batching). The sequences'
 * block tables are stacked into one 2-D table (padded to the widest) and each row names its
 * sequence (SeqPages.rowSeq), so the cache writes, the indexer's scores, top-k and attention run
 * once over all rows instead of once per sequence: on a GPU one grid instead of one per sequence.
 *
 * Rows that must compute differently stay apart, in groups of one call each: those attending the
 * prefill copy of the latent (FP8 kv_b_proj prompt chunks) and those that need the model's own
 * top-k against those that select every key (dense). Every row then computes exactly what the
 * per-sequence path computes. Hooks (forcing, observing) keep the per-sequence path: they speak
 * of one sequence's positions at a time.
 */
import type { Backend, SeqPages, Tensor } from '../backend/backend.js';
import type { ModelConfig } from './config.js';
import type { BatchContext, StepContext } from './step.js';
import { selectsEverything } from './topk.js';

/** Rows of a step that share one call of the indexer, top-k and attention. */
export interface RowGroup {
  /** The step's rows in this group, ascending. */
  rows: Int32Array;
  /** The same on the device, to gather them; null when the group is every row of the step. */
  rowsT: Tensor | null;
  /** The group as one step: its positions, the stacked table with its rows' rowSeq, its largest key count. */
  ctx: StepContext;
  /** Attend the prefill copy of the latent (prompt chunks with an FP8 kv_b_proj). */
  prefillLatent: boolean;
}

export interface MultiSeqPlan {
  /** The stacked block table with every row's sequence: for the cache writes. */
  pages: SeqPages;
  groups: RowGroup[];
  /** Where each row of the groups' outputs, stacked in group order, goes back to (null: one group of every row). */
  unpermute: Tensor | null;
}

/**
 * The plan of `batch` (built on its first layer, uploaded once per step), or null when its
 * sequences run one call each: a single sequence, a backend without multiSequence, a forcing or
 * observing hook, or a segment whose host block table is unknown.
 */
export function multiSeqPlan(b: Backend, cfg: ModelConfig, batch: BatchContext, hasPrefillLatent: boolean): MultiSeqPlan | null {
  if (batch.multi !== undefined) return batch.multi;
  return (batch.multi = buildPlan(b, cfg, batch, hasPrefillLatent));
}

function buildPlan(b: Backend, cfg: ModelConfig, batch: BatchContext, hasPrefillLatent: boolean): MultiSeqPlan | null {
  const { segments, opts } = batch;
  if (segments.length < 2 || !b.multiSequence || opts.force || opts.observe) return null;
  if (segments.some((s) => !s.pageIds)) return null;
  const width = Math.max(...segments.map((s) => s.pageIds!.length));
  // Entries past a sequence's pages are never read; 0 keeps them a valid page on any device.
  const table = new Int32Array(segments.length * width);
  segments.forEach((s, j) => table.set(s.pageIds!, j * width));
  const blockTable = b.upload(table, [segments.length, width]);
  const pageSize = segments[0]!.pages.pageSize;
  const t = batch.positions.length;
  const rowSeq = new Int32Array(t);
  segments.forEach((s, j) => rowSeq.fill(j, s.start, s.start + s.positions.length));
  const pages: SeqPages = { blockTable, pageSize, rowSeq: b.upload(rowSeq, [t]) };

  // Group the segments by what their rows compute: the latent they attend and (unless every row is
  // dense anyway) whether they need the model's own top-k.
  const keyOf = (j: number) => {
    const s = segments[j]!;
    const prefill = hasPrefillLatent && s.opts.mode === 'prefill';
    const selects = !opts.dense && !selectsEverything(cfg, s.positions);
    return `${prefill ? 'p' : 'd'}${selects ? 's' : 'e'}`;
  };
  const byKey = new Map<string, number[]>();
  segments.forEach((_, j) => {
    const key = keyOf(j);
    const list = byKey.get(key);
    if (list) list.push(j);
    else byKey.set(key, [j]);
  });
  const single = byKey.size === 1;
  const groups: RowGroup[] = [...byKey].map(([key, segs]) => {
    const rows = new Int32Array(segs.reduce((n, j) => n + segments[j]!.positions.length, 0));
    let at = 0;
    for (const j of segs) {
      const s = segments[j]!;
      for (let i = 0; i < s.positions.length; i++) rows[at++] = s.start + i;
    }
    const positions = Int32Array.from(rows, (r) => batch.positions[r]!);
    const posT = single ? batch.posT : b.upload(positions, [positions.length]);
    const seqOf = single ? pages.rowSeq! : b.upload(Int32Array.from(rows, (r) => rowSeq[r]!), [rows.length]);
    const nKeys = Math.max(...segs.map((j) => segments[j]!.nKeys));
    const ctx: StepContext = { positions, posT, pages: { blockTable, pageSize, rowSeq: seqOf }, nKeys, cos: batch.cos, sin: batch.sin, opts };
    return { rows, rowsT: single ? null : b.upload(rows, [rows.length]), ctx, prefillLatent: key.startsWith('p') };
  });
  let unpermute: Tensor | null = null;
  if (!single) {
    const back = new Int32Array(t);
    let at = 0;
    for (const g of groups) for (const r of g.rows) back[r] = at++;
    unpermute = b.upload(back, [t]);
  }
  return { pages, groups, unpermute };
}

/** Rows `rows` (i32 [M]) of x [T, ...] → [M, ...]. */
export function pickRows(b: Backend, x: Tensor, rows: Tensor): Tensor {
  const [t, ...rest] = x.shape as [number, ...number[]];
  const n = rest.reduce((a, d) => a * d, 1);
  return b.reshape(b.gatherRows(b.reshape(x, [t, n]), rows), [rows.shape[0]!, ...rest]);
}
