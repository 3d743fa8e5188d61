/**
 * The kernel lab's attention-core rows (and the PyTorch peer's, when given) as one figure: ms per
 * decode step against context, DSA and dense, one line per engine and batch size (ours also with
 * the batch in one grid per op, where the run measured it).
 */
import type { LinePlot } from '../plot.js';

/** Rows of `dsa bench gpu --json` (section 'core') and of shared/peers/torch_dsa_layer.py (ctx, batch, dense_ms, dsa_ms). */
export function coreLinePlot(lab: readonly Record<string, unknown>[], peer: readonly Record<string, unknown>[] = [], title = 'DSA attention core per decode step'): LinePlot {
  const data: Record<string, unknown>[] = [];
  for (const r of lab) {
    if (r.section !== 'core') continue;
    data.push({ ctx: r.ctx, ms: r.dsa_ms, line: `ours DSA, batch ${r.batch}` });
    data.push({ ctx: r.ctx, ms: r.dense_ms, line: `ours dense, batch ${r.batch}` });
    // The batch in one grid per op (rowSeq), where measured; at batch 1 it is the line above.
    if (typeof r.dsa_batched_ms === 'number' && Number(r.batch) > 1) {
      data.push({ ctx: r.ctx, ms: r.dsa_batched_ms, line: `ours DSA one grid, batch ${r.batch}` });
      data.push({ ctx: r.ctx, ms: r.dense_batched_ms, line: `ours dense one grid, batch ${r.batch}` });
    }
  }
  for (const r of peer) {
    if (typeof r.ctx !== 'number' || typeof r.batch !== 'number') continue;
    data.push({ ctx: r.ctx, ms: r.dsa_ms, line: `PyTorch DSA, batch ${r.batch}` });
    data.push({ ctx: r.ctx, ms: r.dense_ms, line: `PyTorch dense, batch ${r.batch}` });
  }
  if (data.length === 0) throw new Error('no attention-core rows to plot (expected rows with section "core" from dsa bench gpu --json)');
  return {
    title,
    x: { field: 'ctx', title: 'context (tokens)', log2: true },
    y: { field: 'ms', title: 'ms per step (GPU time)', log10: true },
    series: 'line',
    data,
    legend: 'right',
  };
}
