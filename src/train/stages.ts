/**
 * The three training stages. dense: pre-training from scratch, dense attention, LM loss, the
 * indexer untouched. warmup (paper Eq. 3): main model frozen, dense attention, only the indexer
 * learns from KL(p ‖ softmax(I)) over every key. sparse (Eq. 4): DSA's top-k on; the main model
 * learns from the LM loss through sparse attention, the indexer from the KL over its selection.
 */
import { add, scale } from '../autograd/ops/elementwise.js';
import type { Tape, Var } from '../autograd/var.js';
import type { ForwardOptions } from './forward.js';

export type Stage = 'dense' | 'warmup' | 'sparse';
export const STAGES: readonly Stage[] = ['dense', 'warmup', 'sparse'];

export function stageForward(stage: Stage, topk?: number): ForwardOptions {
  switch (stage) {
    case 'dense':
      return { attention: 'dense', indexerLoss: 'none', trainable: (s) => !s.indexer };
    case 'warmup':
      return { attention: 'dense', indexerLoss: 'dense', trainable: (s) => s.indexer, topk };
    case 'sparse':
      return { attention: 'sparse', indexerLoss: 'sparse', trainable: () => true, topk };
  }
}

/** Mean of the layers' indexer KL losses (null when there are none). */
export function meanIndexerLoss(g: Tape, losses: Var[]): Var | null {
  if (losses.length === 0) return null;
  let sum = losses[0]!;
  for (const l of losses.slice(1)) sum = add(g, sum, l);
  return scale(g, sum, 1 / losses.length);
}

/**
 * What the stage minimizes. dense: LM; warmup: the KL; sparse: LM + KL — their graphs are
 * disjoint (detached indexer input, data target, non-differentiable selection), so the sum sends
 * each gradient only to its own parameters.
 */
export function stageObjective(stage: Stage, g: Tape, lm: Var, kl: Var | null): Var {
  if (stage === 'dense') return lm;
  if (!kl) throw new Error(`stage ${stage} needs the indexer loss`);
  return stage === 'warmup' ? kl : add(g, lm, kl);
}
