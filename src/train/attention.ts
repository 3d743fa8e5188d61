/**
 * MLA in training (MHA form, the same function as inference's absorbed MQA form): c_q =
 * RMSNorm(q_a x), q = q_b c_q viewed [T, H, d_n + d_r] with RoPE (interleaved) on its last d_r;
 * [c_kv | k_r] = kv_a x, c_kv RMSNorm'ed, k_r roped and shared by all heads; per head
 * [k_nope | v] = kv_b c_kv; attention over each query's key set (all earlier positions, or DSA's
 * selection); o_proj over the concatenated heads.
 */
import type { AttentionDims } from '../autograd/backend.js';
import type { KeySets } from '../autograd/keysets.js';
import { attention } from '../autograd/ops/attention.js';
import { linear } from '../autograd/ops/linear.js';
import { rmsNorm } from '../autograd/ops/norm.js';
import { rope } from '../autograd/ops/rope.js';
import { reshape, sliceCols } from '../autograd/ops/shape.js';
import type { Var } from '../autograd/var.js';
import type { ModelConfig } from '../model/config.js';
import { softmaxScale } from '../model/rope.js';
import type { LayerContext } from './context.js';

export function attentionDims(cfg: ModelConfig): AttentionDims {
  return { heads: cfg.numHeads, dn: cfg.qkNopeHeadDim, dr: cfg.qkRopeHeadDim, dv: cfg.vHeadDim, scale: softmaxScale(cfg) };
}

/** The projections that do not depend on which keys are attended: queries, latent keys/values and c_q (the indexer's input). */
export interface MlaProjections {
  cq: Var;
  q: Var;
  kv: Var;
  kPe: Var;
}

export function mlaProjections(ctx: LayerContext, x: Var): MlaProjections {
  const { g, cfg, p } = ctx;
  const t = ctx.positions.length;
  const { numHeads: h, qkNopeHeadDim: dn, qkRopeHeadDim: dr, kvLoraRank: r } = cfg;
  const cq = rmsNorm(g, linear(g, x, p('q_a_proj.weight')), p('q_a_layernorm.weight'), cfg.rmsNormEps);
  const q = rope(g, reshape(g, linear(g, cq, p('q_b_proj.weight')), [t, h, dn + dr]), dn, ctx.positions, ctx.rope, true);
  const kva = linear(g, x, p('kv_a_proj_with_mqa.weight'));
  const ckv = rmsNorm(g, sliceCols(g, kva, 0, r), p('kv_a_layernorm.weight'), cfg.rmsNormEps);
  const kPe = reshape(g, rope(g, reshape(g, sliceCols(g, kva, r, dr), [t, 1, dr]), 0, ctx.positions, ctx.rope, true), [t, dr]);
  const kv = linear(g, ckv, p('kv_b_proj.weight'));
  return { cq, q, kv, kPe };
}

/** Attention over `keys` and the output projection: [T, d], plus the attention probabilities ([nnz, H]). */
export function mlaAttend(ctx: LayerContext, proj: MlaProjections, keys: KeySets): { out: Var; probs: Float32Array } {
  const { out, probs } = attention(ctx.g, proj.q, proj.kv, proj.kPe, keys, attentionDims(ctx.cfg));
  return { out: linear(ctx.g, out, ctx.p('o_proj.weight')), probs };
}
