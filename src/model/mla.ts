/**
 * The attention block of a DeepSeek-V3.2 layer: MLA projections, the cache write, the lightning
 * indexer and top-k, then sparse MLA over the selected entries and the output projection.
 */
import type { Backend, SeqPages, Tensor } from '../backend/backend.js';
import type { LayerCache } from './cache.js';
import type { ModelConfig } from './config.js';
import { indexerKeys, indexerQueries, indexerScores } from './indexer.js';
import { multiSeqPlan, pickRows, type MultiSeqPlan } from './multi-seq.js';
import { absorbQueries, liftOutputs, sparseMla } from './sparse-mla.js';
import type { BatchContext, Segment } from './step.js';
import { selectKeys } from './topk.js';
import type { AttentionWeights } from './weights.js';

/**
 * The attention block over a step's rows (one or several sequences): projections run once over all
 * rows; cache writes, the indexer's scores, top-k and attention once over all rows too where the
 * backend takes several sequences in one call (multi-seq.ts), else per sequence.
 */
export function attention(
  b: Backend,
  cfg: ModelConfig,
  layer: number,
  w: AttentionWeights,
  cache: LayerCache,
  x: Tensor,
  batch: BatchContext,
  scale: number,
): Tensor {
  const t = batch.positions.length;
  const { numHeads: h, qkNopeHeadDim: dn, qkRopeHeadDim: dr, kvLoraRank: r, vHeadDim: dv } = cfg;
  const aq = cfg.quant ? cfg.quant.scaleFormat : null;

  // Queries: c_q = RMSNorm(q_a x); q = q_b c_q viewed [T, H, d_n + d_r], nope first, rope last.
  const cq = b.rmsNorm(b.linear(x, w.qA, aq), w.qANorm, cfg.rmsNormEps);
  const q = b.reshape(b.linear(cq, w.qB, aq), [t, h, dn + dr]);
  const qLat = absorbQueries(b, w, b.sliceLast(q, 0, dn));
  const qPe = b.rope(b.sliceLast(q, dn, dr), batch.posT, batch.cos, batch.sin, 0, true);

  // The latent entry [c_kv | k_rope] of each new token, packed in the cache's format.
  const kv = b.linear(x, w.kvA, aq);
  const ckv = b.rmsNorm(b.sliceLast(kv, 0, r), w.kvANorm, cfg.rmsNormEps);
  const kPe = b.reshape(b.rope(b.reshape(b.sliceLast(kv, r, dr), [t, 1, dr]), batch.posT, batch.cos, batch.sin, 0, true), [t, dr]);
  const packed = b.packLatent(ckv, kPe, cache.format);
  // What the reference's prefill feeds its FP8 kv_b_proj: c_kv act-quantized in 128-blocks.
  let packedPrefill: Tensor | null = null;
  if (cache.latentPrefill) {
    const { q: c8, s: cs } = b.quantFp8(ckv, 128, aq ?? 'none');
    packedPrefill = b.packLatent(b.dequantFp8(c8, cs, 128), kPe, cache.format);
  }
  // The indexer's keys are cached for every token, even when no scores are needed yet; its queries
  // are projected once for all rows, when some row needs scores.
  const rows: StepRows = { packed, packedPrefill, keys: indexerKeys(b, cfg, w.indexer, x, batch), qLat, qPe, queries: null };
  const query = () => (rows.queries ??= indexerQueries(b, cfg, w.indexer, x, cq, batch));
  const plan = multiSeqPlan(b, cfg, batch, cache.latentPrefill !== null);
  const o = plan ? oneCall(b, cfg, layer, cache, plan, batch, rows, query, scale) : perSegment(b, cfg, layer, cache, batch, rows, query, scale);
  return b.linear(b.reshape(liftOutputs(b, w, o), [t, h * dv]), w.o, aq);
}

/** What the step's rows bring to the cache writes and attention. */
interface StepRows {
  packed: Tensor;
  packedPrefill: Tensor | null;
  keys: { q: Tensor; s: Tensor };
  qLat: Tensor;
  qPe: Tensor;
  queries: { q8: Tensor; weights: Tensor } | null;
}

type Queries = () => { q8: Tensor; weights: Tensor };

/** Cache writes, indexer, top-k and attention once per sequence (segment): [T, H, r]. */
function perSegment(b: Backend, cfg: ModelConfig, layer: number, cache: LayerCache, batch: BatchContext, x: StepRows, query: Queries, scale: number): Tensor {
  const single = batch.segments.length === 1;
  const rowsOf = (v: Tensor, seg: Segment) => (single ? v : b.sliceRows(v, seg.start, seg.positions.length));
  const outputs = batch.segments.map((seg) => {
    writeCache(b, cache, seg.pages, seg.posT, (v) => rowsOf(v, seg), x);
    const indices = selectKeys(b, cfg, layer, seg, () => {
      const qs = query();
      return indexerScores(b, cache, rowsOf(qs.q8, seg), rowsOf(qs.weights, seg), seg);
    });
    const latent = seg.opts.mode === 'prefill' && cache.latentPrefill ? cache.latentPrefill : cache.latent;
    return sparseMla(b, rowsOf(x.qLat, seg), rowsOf(x.qPe, seg), latent, indices, seg, scale);
  });
  return single ? outputs[0]! : b.concatRows(outputs);
}

/** The same over every sequence at once: one call per op (per group of rows that compute alike). */
function oneCall(b: Backend, cfg: ModelConfig, layer: number, cache: LayerCache, plan: MultiSeqPlan, batch: BatchContext, x: StepRows, query: Queries, scale: number): Tensor {
  writeCache(b, cache, plan.pages, batch.posT, (v) => v, x);
  const outputs = plan.groups.map((g) => {
    const pick = (v: Tensor) => (g.rowsT ? pickRows(b, v, g.rowsT) : v);
    const indices = selectKeys(b, cfg, layer, g.ctx, () => {
      const qs = query();
      return indexerScores(b, cache, pick(qs.q8), pick(qs.weights), g.ctx);
    });
    const latent = g.prefillLatent && cache.latentPrefill ? cache.latentPrefill : cache.latent;
    return sparseMla(b, pick(x.qLat), pick(x.qPe), latent, indices, g.ctx, scale);
  });
  return plan.unpermute ? pickRows(b, b.concatRows(outputs), plan.unpermute) : outputs[0]!;
}

/** The latent (and its prefill copy) and the indexer keys of the rows `rowsOf` picks, at their slots. */
function writeCache(b: Backend, cache: LayerCache, pages: SeqPages, posT: Tensor, rowsOf: (v: Tensor) => Tensor, x: StepRows): void {
  b.writeRows(cache.latent, pages, posT, rowsOf(x.packed), 0);
  if (cache.latentPrefill && x.packedPrefill) b.writeRows(cache.latentPrefill, pages, posT, rowsOf(x.packedPrefill), 0);
  const keys = cache.indexFormat === 'int8' ? b.requantInt8(x.keys.q, x.keys.s) : x.keys;
  b.writeRows(cache.indexKeys, pages, posT, rowsOf(keys.q), 0);
  b.writeRows(cache.indexScales, pages, posT, rowsOf(keys.s), 0);
}
