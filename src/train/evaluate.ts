/**
 * Evaluating a trained model: LM loss over held-out batches, logits for the synthetic tasks'
 * scorer (dense attention or DSA), and task accuracy by context length.
 */
import type { TrainBackend } from '../autograd/backend.js';
import type { Batch } from './data/batches.js';
import { forward } from './forward.js';
import type { TrainModel } from './model.js';
import { evaluate, type BatchLogitsFn, type SyntheticTask, type TaskEval } from './tasks/index.js';
import { lossTargets } from './trainer.js';

export type AttentionKind = 'dense' | 'sparse';

function inference(attention: AttentionKind, topk?: number) {
  return { attention, indexerLoss: 'none' as const, trainable: () => false, topk };
}

/** Mean LM loss over batches (weighted by counted targets; masked positions skipped). */
export function lmLoss(model: TrainModel, backend: TrainBackend, batches: Batch[], attention: AttentionKind, topk?: number): number {
  let total = 0;
  let count = 0;
  for (const b of batches) {
    const targets = lossTargets(b);
    const n = targets.reduce((a, t) => a + (t >= 0 ? 1 : 0), 0);
    if (n === 0) continue;
    const fwd = forward(model, backend, b.inputs, targets, b.batchSize, b.seqLen, inference(attention, topk));
    total += fwd.lmLoss.data[0]! * n;
    count += n;
  }
  return count > 0 ? total / count : NaN;
}

/** Logits of a batch of sequences at the given positions (all when none), for the tasks' scorer. */
export function batchLogits(model: TrainModel, backend: TrainBackend, attention: AttentionKind, topk?: number): BatchLogitsFn {
  return (tokens, batch, positions) => {
    const seqLen = tokens.length / batch;
    const fwd = forward(model, backend, tokens, new Int32Array(tokens.length).fill(-1), batch, seqLen, inference(attention, topk));
    const v = model.config.vocabSize;
    if (positions.length === 0) return fwd.logits.data;
    const out = new Float32Array(batch * positions.length * v);
    for (let b = 0; b < batch; b++) {
      positions.forEach((p, j) => out.set(fwd.logits.data.subarray((b * seqLen + p) * v, (b * seqLen + p + 1) * v), (b * positions.length + j) * v));
    }
    return out;
  };
}

/** Task accuracy at each context length. */
export async function taskAccuracy(
  model: TrainModel,
  backend: TrainBackend,
  task: SyntheticTask,
  lengths: number[],
  opts: { samples: number; seed: number; attention: AttentionKind; topk?: number; batchSize?: number },
): Promise<TaskEval[]> {
  const fn = batchLogits(model, backend, opts.attention, opts.topk);
  const out: TaskEval[] = [];
  for (const contextLength of lengths) {
    out.push(await evaluate(task, { batch: fn }, { contextLength, samples: opts.samples, seed: opts.seed, batchSize: opts.batchSize ?? 4 }));
  }
  return out;
}
