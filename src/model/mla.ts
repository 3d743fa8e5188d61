/**
 * The attention block of a DeepSeek-V3.2 layer: MLA projections, the cache write, the lightning
 * indexer and top-k, then sparse MLA over the selected entries and the output projection.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { LayerCache } from './cache.js';
import type { ModelConfig } from './config.js';
import { indexerScores, writeIndexerKeys } from './indexer.js';
import { sparseMla } from './sparse-mla.js';
import type { StepContext } from './step.js';
import { selectKeys } from './topk.js';
import type { AttentionWeights } from './weights.js';

export function attention(
  b: Backend,
  cfg: ModelConfig,
  layer: number,
  w: AttentionWeights,
  cache: LayerCache,
  x: Tensor,
  ctx: StepContext,
  scale: number,
): Tensor {
  const t = ctx.positions.length;
  const { numHeads: h, qkNopeHeadDim: dn, qkRopeHeadDim: dr, kvLoraRank: r, vHeadDim: dv } = cfg;
  const aq = cfg.quant ? cfg.quant.scaleFormat : null;

  // Queries: c_q = RMSNorm(q_a x); q = q_b c_q viewed [T, H, d_n + d_r], nope first, rope last.
  const cq = b.rmsNorm(b.linear(x, w.qA, aq), w.qANorm, cfg.rmsNormEps);
  const q = b.reshape(b.linear(cq, w.qB, aq), [t, h, dn + dr]);
  const qNope = b.sliceLast(q, 0, dn);
  const qPe = b.rope(b.sliceLast(q, dn, dr), ctx.posT, ctx.cos, ctx.sin, 0, true);

  // The latent entry [c_kv | k_rope] of each new token goes to the cache, packed in its format.
  const kv = b.linear(x, w.kvA, aq);
  const ckv = b.rmsNorm(b.sliceLast(kv, 0, r), w.kvANorm, cfg.rmsNormEps);
  const kPe = b.reshape(b.rope(b.reshape(b.sliceLast(kv, r, dr), [t, 1, dr]), ctx.posT, ctx.cos, ctx.sin, 0, true), [t, dr]);
  b.writeRows(cache.latent, ctx.pages, ctx.posT, b.packLatent(ckv, kPe, cache.format), 0);
  if (cache.latentPrefill) {
    // What the reference's prefill feeds its FP8 kv_b_proj: c_kv act-quantized in 128-blocks.
    const { q: c8, s: cs } = b.quantFp8(ckv, 128, aq ?? 'none');
    b.writeRows(cache.latentPrefill, ctx.pages, ctx.posT, b.packLatent(b.dequantFp8(c8, cs, 128), kPe, cache.format), 0);
  }

  // Lightning indexer → top-k selection (keys are cached even when no scores are needed).
  writeIndexerKeys(b, cfg, w.indexer, cache, x, ctx);
  const indices = selectKeys(b, cfg, layer, ctx, () => indexerScores(b, cfg, w.indexer, cache, x, cq, ctx));

  const latent = ctx.opts.mode === 'prefill' && cache.latentPrefill ? cache.latentPrefill : cache.latent;
  const o = sparseMla(b, w, qNope, qPe, latent, indices, ctx, scale);
  return b.linear(b.reshape(o, [t, h * dv]), w.o, aq);
}
