/**
 * DSA's second step: choose which cached entries each query attends to. The top
 * min(index_topk, t + 1) indexer scores are kept (exact selection). While every query still has at
 * most index_topk keys, the selection is "all of them" and sparse attention equals dense, so the
 * scores are not computed at all. Forced selections (replayed from a reference) replace the model's
 * own, which are still reported to the observer.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ModelConfig } from './config.js';
import type { StepContext } from './step.js';

/** Every row selects all its keys when its position + 1 ≤ index_topk. */
export function selectsEverything(cfg: ModelConfig, positions: Int32Array): boolean {
  let max = -1;
  for (const p of positions) max = Math.max(max, p);
  return max + 1 <= cfg.indexTopk;
}

/**
 * The entries each query attends: i32 [T, width] (−1 padded), or null for dense causal attention.
 * `scores` is called only when the model's own top-k is needed.
 */
export function selectKeys(b: Backend, cfg: ModelConfig, layer: number, ctx: StepContext, scores: () => Tensor): Tensor | null {
  const { opts, positions } = ctx;
  const everything = selectsEverything(cfg, positions);
  const observe = opts.observe;
  const needOwn = !everything && (!opts.dense || observe?.topk !== undefined || observe?.indexScores !== undefined);
  let own: Tensor | null = null;
  if (needOwn) {
    const s = scores();
    observe?.indexScores?.(layer, positions, s);
    own = b.topk(s, cfg.indexTopk, ctx.posT);
  }
  observe?.topk?.(layer, positions, own);
  const forced = opts.force?.topk?.(layer, positions);
  if (forced) {
    const rows = positions.length;
    if (rows === 0 || forced.length % rows !== 0) {
      throw new RangeError(`forced top-k for layer ${layer} has ${forced.length} values for ${rows} rows`);
    }
    return b.upload(forced, [rows, forced.length / rows]);
  }
  return opts.dense ? null : own;
}
