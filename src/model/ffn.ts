/**
 * The feed-forward half of a layer: a dense SwiGLU MLP in the first `first_k_dense_replace` layers,
 * a mixture of experts after that (sigmoid gate with the correction bias choosing among groups, the
 * routed experts weighted by their unbiased scores, plus the shared experts).
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ModelConfig } from './config.js';
import type { BatchContext } from './step.js';
import type { Mlp, MoeWeights } from './weights.js';

export function mlp(b: Backend, cfg: ModelConfig, w: Mlp, x: Tensor): Tensor {
  const aq = cfg.quant ? cfg.quant.scaleFormat : null;
  return b.linear(b.swiglu(b.linear(x, w.gate, aq), b.linear(x, w.up, aq)), w.down, aq);
}

export function moe(b: Backend, cfg: ModelConfig, moeIndex: number, w: MoeWeights, x: Tensor, ctx: BatchContext): Tensor {
  const aq = cfg.quant ? cfg.quant.scaleFormat : null;
  // The gate runs in float32 (never FP8-quantized), as the reference does.
  const logits = b.linear(x, w.gate, null);
  const forcedHost = ctx.opts.force?.experts?.(moeIndex, ctx.positions) ?? null;
  const forced = forcedHost ? b.upload(forcedHost, [ctx.positions.length, cfg.numExpertsPerTok]) : null;
  const route = b.moeRoute(
    logits,
    w.bias,
    {
      topk: cfg.numExpertsPerTok,
      nGroup: cfg.nGroup,
      topkGroup: cfg.topkGroup,
      scoring: cfg.scoringFunc,
      normalize: cfg.normTopkProb,
      scale: cfg.routedScalingFactor,
    },
    forced,
  );
  ctx.opts.observe?.experts?.(moeIndex, ctx.positions, route.chosen);
  const routed = b.moeExperts(x, route.experts, route.weights, w.experts.gate, w.experts.up, w.experts.down, aq);
  return w.shared ? b.add(routed, mlp(b, cfg, w.shared, x)) : routed;
}
