/**
 * The lightning indexer in training (float32): q_I = wq_b c_q viewed [T, H_I, d_I] and
 * k_I = LayerNorm(wk x), RoPE (half-split unless the config says interleaved) on the first d_r
 * numbers of each, head weights w = weights_proj x · H_I^-0.5 · d_I^-0.5. Its inputs x and c_q are
 * detached from the main model's graph: the indexer learns from its KL loss alone, and nothing it
 * computes sends a gradient into the main model. (Inference rotates q and k by a Hadamard matrix —
 * orthogonal, so q·k is unchanged — and quantizes them to FP8; training skips both.)
 */
import { layerNorm } from '../autograd/ops/norm.js';
import { linear } from '../autograd/ops/linear.js';
import { rope } from '../autograd/ops/rope.js';
import { scale } from '../autograd/ops/elementwise.js';
import { reshape } from '../autograd/ops/shape.js';
import { detach, type Var } from '../autograd/var.js';
import type { LayerContext } from './context.js';

export interface IndexerInputs {
  q: Var;
  k: Var;
  w: Var;
}

export function indexerInputs(ctx: LayerContext, x: Var, cq: Var): IndexerInputs {
  const { g, cfg, p } = ctx;
  const t = ctx.positions.length;
  const hI = cfg.indexNHeads;
  const dI = cfg.indexHeadDim;
  const xi = detach(x);
  const cqi = detach(cq);
  const interleave = cfg.indexerRopeInterleave;
  const q = rope(g, reshape(g, linear(g, cqi, p('indexer.wq_b.weight')), [t, hI, dI]), 0, ctx.positions, ctx.rope, interleave);
  const kn = layerNorm(g, linear(g, xi, p('indexer.wk.weight')), p('indexer.k_norm.weight'), p('indexer.k_norm.bias'), 1e-6);
  const k = reshape(g, rope(g, reshape(g, kn, [t, 1, dI]), 0, ctx.positions, ctx.rope, interleave), [t, dI]);
  const w = scale(g, linear(g, xi, p('indexer.weights_proj.weight')), Math.pow(hI, -0.5) * Math.pow(dI, -0.5));
  return { q, k, w };
}
