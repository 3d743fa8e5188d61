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
 * qNope [T, H, d_n], qPe [T, H, d_r] (roped) → per-head outputs [T, H, d_v].
 * `latent` is the cache tensor to attend ([slots, r + d_r]); `indices` the selection or null.
 */
export function sparseMla(
  b: Backend,
  w: AttentionWeights,
  qNope: Tensor,
  qPe: Tensor,
  latent: Tensor,
  indices: Tensor | null,
  ctx: StepContext,
  scale: number,
): Tensor {
  const qLat = b.headMatmul(qNope, w.wUK, false);
  const o = b.mlaAttention(qLat, qPe, latent, ctx.pages, ctx.posT, indices, scale);
  return b.headMatmul(o, w.wUV, true);
}
