/**
 * The attention block of a DeepSeek-V3.2 layer: MLA projections, the cache write, the lightning
 * indexer and top-k, then sparse MLA over the selected entries and the output projection.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { LayerCache } from './cache.js';
import type { ModelConfig } from './config.js';
import { indexerKeys, indexerQueries, indexerScores } from './indexer.js';
import { absorbQueries, liftOutputs, sparseMla } from './sparse-mla.js';
import type { BatchContext, Segment } from './step.js';
import { selectKeys } from './topk.js';
import type { AttentionWeights } from './weights.js';

/**
 * The attention block over a step's rows (one or several sequences): projections run once over all
 * rows; cache writes, the indexer's scores, top-k and attention per sequence.
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
  const single = batch.segments.length === 1;
  const rowsOf = (v: Tensor, seg: Segment) => (single ? v : b.sliceRows(v, seg.start, seg.positions.length));

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
  // The indexer's keys are cached for every token, even when no scores are needed yet.
  const keys = indexerKeys(b, cfg, w.indexer, x, batch);
  let queries: { q8: Tensor; weights: Tensor } | null = null;

  const outputs = batch.segments.map((seg) => {
    b.writeRows(cache.latent, seg.pages, seg.posT, rowsOf(packed, seg), 0);
    if (cache.latentPrefill && packedPrefill) b.writeRows(cache.latentPrefill, seg.pages, seg.posT, rowsOf(packedPrefill, seg), 0);
    b.writeRows(cache.indexKeys, seg.pages, seg.posT, rowsOf(keys.q, seg), 0);
    b.writeRows(cache.indexScales, seg.pages, seg.posT, rowsOf(keys.s, seg), 0);
    // Lightning indexer → top-k selection; the queries are projected once for all rows, when needed.
    const indices = selectKeys(b, cfg, layer, seg, () => {
      queries ??= indexerQueries(b, cfg, w.indexer, x, cq, batch);
      return indexerScores(b, cache, rowsOf(queries.q8, seg), rowsOf(queries.weights, seg), seg);
    });
    const latent = seg.opts.mode === 'prefill' && cache.latentPrefill ? cache.latentPrefill : cache.latent;
    return sparseMla(b, rowsOf(qLat, seg), rowsOf(qPe, seg), latent, indices, seg, scale);
  });
  const o = single ? outputs[0]! : b.concatRows(outputs);
  return b.linear(b.reshape(liftOutputs(b, w, o), [t, h * dv]), w.o, aq);
}
