/**
 * The lightning indexer (DSA's first step). Per token: q_I = wq_b c_q viewed [H_I, d_I] and
 * k_I = LayerNorm(wk x); RoPE (half-split by default) on the first d_r numbers of each; a normalized
 * Hadamard rotation; FP8 e4m3 quantization with one scale per vector. The keys go to the cache (132
 * bytes per token at full size); the score of key s for query t is
 * I(t, s) = k_scale(s) · Σ_h w_h · q_scale_h · d_I^-0.5 · ReLU(q8_h · k8(s)), w = weights_proj x · H_I^-0.5.
 * With an int8 indexer cache (cache.ts) the keys and queries are re-quantized to int8 first.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { LayerCache } from './cache.js';
import type { ModelConfig } from './config.js';
import type { BatchContext, StepContext } from './step.js';
import type { IndexerWeights } from './weights.js';

/** Activation quantization of the indexer's own projections when their weights are FP8. */
function actQuant(cfg: ModelConfig) {
  return cfg.quant ? cfg.quant.scaleFormat : null;
}

/**
 * RoPE on the first d_r numbers of each vector, the Hadamard rotation, then FP8 with one scale per
 * vector: x [T, n, d] → codes u8 [T·n, d] and scales f32 [T·n, 1].
 */
function rotateAndQuantize(b: Backend, cfg: ModelConfig, x: Tensor, batch: BatchContext): { q: Tensor; s: Tensor } {
  const [t, n, d] = x.shape as [number, number, number];
  const rotated = b.hadamard(b.rope(x, batch.posT, batch.cos, batch.sin, 0, cfg.indexerRopeInterleave));
  return b.quantFp8(b.reshape(rotated, [t * n, d]), d, cfg.indexerScaleFormat);
}

/** The indexer keys of all rows of the step: FP8 codes [T, d_I] and scales [T, 1]. */
export function indexerKeys(b: Backend, cfg: ModelConfig, w: IndexerWeights, x: Tensor, batch: BatchContext): { q: Tensor; s: Tensor } {
  const t = batch.positions.length;
  const d = cfg.indexHeadDim;
  const k = b.layerNorm(b.linear(x, w.wk, actQuant(cfg)), w.kNormWeight, w.kNormBias, 1e-6);
  return rotateAndQuantize(b, cfg, b.reshape(k, [t, 1, d]), batch);
}

/** The indexer queries of all rows: FP8 codes [T, H_I, d_I] and the per-head weights [T, H_I]. */
export function indexerQueries(
  b: Backend,
  cfg: ModelConfig,
  w: IndexerWeights,
  x: Tensor,
  cq: Tensor,
  batch: BatchContext,
): { q8: Tensor; weights: Tensor } {
  const t = batch.positions.length;
  const h = cfg.indexNHeads;
  const d = cfg.indexHeadDim;
  const q = b.reshape(b.linear(cq, w.wqB, actQuant(cfg)), [t, h, d]);
  const { q: q8, s: qScale } = rotateAndQuantize(b, cfg, q, batch);
  // Head weights, multiplied in the reference's order: ((proj · H^-0.5) · q_scale) · d^-0.5, float32.
  const proj = b.scale(b.linear(x, w.weightsProj, null), Math.fround(Math.pow(h, -0.5)));
  const weights = b.scale(b.mul(proj, b.reshape(qScale, [t, h])), Math.fround(Math.pow(d, -0.5)));
  return { q8: b.reshape(q8, [t, h, d]), weights };
}

/**
 * Index scores [T_seg, nKeys] of one sequence's queries (q8 [T_seg, H_I, d_I], weights [T_seg, H_I])
 * against every key in its cache (−∞ for future keys); or of several sequences' rows at once
 * (seg.pages with rowSeq: each row against its own sequence's keys, nKeys the largest count).
 */
export function indexerScores(b: Backend, cache: LayerCache, q8: Tensor, weights: Tensor, seg: StepContext): Tensor {
  const kScales = b.reshape(cache.indexScales, [cache.indexScales.shape[0]!]);
  if (cache.indexFormat === 'int8') {
    // The int8 cache: the queries re-quantized too, each head's scale folded into its weight.
    const [t, h, d] = q8.shape as [number, number, number];
    const qi = b.requantInt8(b.reshape(q8, [t * h, d]), b.reshape(weights, [t * h]));
    return b.indexerScoresInt8(b.reshape(qi.q, [t, h, d]), b.reshape(qi.s, [t, h]), cache.indexKeys, kScales, seg.pages, seg.nKeys, seg.posT);
  }
  return b.indexerScores(q8, weights, cache.indexKeys, kScales, seg.pages, seg.nKeys, seg.posT);
}
