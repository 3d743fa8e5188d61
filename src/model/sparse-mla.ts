/**
 * DSA's third step: MLA in MQA mode over the selected cache entries. The query is absorbed into
 * the latent space (q̃_h = W_UK_hᵀ q_nope_h), every selected entry [c_kv | k_rope] is shared by all
 * heads, the softmax runs over the selected entries alone, and the result is lifted back with W_UV.
 * Cost per query: O(k) entries instead of O(t). With no selection it is dense causal MLA.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { StepContext } from './step.js';
import type { AttentionWeights } from './weights.js';

/**
 * One sequence's rows: qLat [T, H, r] (queries absorbed with W_UK), qPe [T, H, d_r] (roped) →
 * [T, H, r] attended over `latent` ([slots, r + d_r] in the cache's format) at `indices` (the
 * selection, −1 padded), or over every earlier position when indices is null.
 */
export function sparseMla(b: Backend, qLat: Tensor, qPe: Tensor, latent: Tensor, indices: Tensor | null, seg: StepContext, scale: number): Tensor {
  return b.mlaAttention(qLat, qPe, latent, seg.pages, seg.posT, indices, scale);
}

/** Absorbs queries into the latent space: q̃_h = W_UK_hᵀ q_nope_h, [T, H, d_n] → [T, H, r]. */
export function absorbQueries(b: Backend, w: AttentionWeights, qNope: Tensor): Tensor {
  return b.headMatmul(qNope, w.wUK, false);
}

/** Lifts attention outputs back from the latent space: W_UV_h o_h, [T, H, r] → [T, H, d_v]. */
export function liftOutputs(b: Backend, w: AttentionWeights, o: Tensor): Tensor {
  return b.headMatmul(o, w.wUV, true);
}
