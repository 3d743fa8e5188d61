/**
 * The evaluation report of a model (what `dsa eval` prints and `dsa experiment` records): LM loss
 * with dense attention and with DSA, indexer recall per layer at top-k, and — for a synthetic
 * task — accuracy by context length with both attentions.
 */
import type { TrainBackend } from '../autograd/backend.js';
import { lmLoss, taskAccuracy } from './evaluate.js';
import { heldOutBatches, taskOf, type DataSpec } from './loaders.js';
import type { TrainModel } from './model.js';
import { indexerRecall } from './recall.js';

export interface EvalSettings {
  seqLen: number;
  topk: number;
  /** Held-out batches for loss and recall. */
  batches: number;
  batchSize: number;
  /** Task context lengths as multiples of seqLen. */
  lengths: number[];
  samples: number;
  seed: number;
}

export interface AccuracyAt {
  contextLength: number;
  dense: number;
  sparse: number;
  chance: number;
}

export interface EvalReport {
  seqLen: number;
  topk: number;
  lossDense: number;
  lossSparse: number;
  recallPerLayer: number[];
  recall: number;
  /** The best recall any top-k selection could reach (the target's own top-k mass), per layer. */
  recallCeilingPerLayer: number[];
  accuracy: AccuracyAt[];
}

export async function evaluateModel(model: TrainModel, backend: TrainBackend, spec: DataSpec, s: EvalSettings): Promise<EvalReport> {
  const batches = heldOutBatches(spec, model.config.vocabSize, s.batchSize, s.seqLen, s.batches, s.seed);
  const lossDense = lmLoss(model, backend, batches, 'dense');
  const lossSparse = lmLoss(model, backend, batches, 'sparse', s.topk);
  const rec = batches.map((b) => indexerRecall(model, backend, b.inputs, b.batchSize, b.seqLen, s.topk));
  const meanOver = (pick: (r: (typeof rec)[number]) => number[]) => pick(rec[0]!).map((_, l) => rec.reduce((a, r) => a + pick(r)[l]!, 0) / rec.length);
  const recallPerLayer = meanOver((r) => r.perLayer);
  const recallCeilingPerLayer = meanOver((r) => r.oraclePerLayer);
  const accuracy: AccuracyAt[] = [];
  const task = taskOf(spec, model.config.vocabSize);
  if (task) {
    const lengths = s.lengths.map((m) => Math.round(m * s.seqLen));
    const common = { samples: s.samples, seed: s.seed, topk: s.topk, batchSize: s.batchSize };
    const dense = await taskAccuracy(model, backend, task, lengths, { ...common, attention: 'dense' });
    const sparse = await taskAccuracy(model, backend, task, lengths, { ...common, attention: 'sparse' });
    lengths.forEach((contextLength, i) => accuracy.push({ contextLength, dense: dense[i]!.accuracy, sparse: sparse[i]!.accuracy, chance: dense[i]!.chance }));
  }
  return {
    seqLen: s.seqLen,
    topk: s.topk,
    lossDense,
    lossSparse,
    recallPerLayer,
    recall: recallPerLayer.reduce((a, b) => a + b, 0) / recallPerLayer.length,
    recallCeilingPerLayer,
    accuracy,
  };
}

/** The report as aligned text lines. */
export function formatReport(r: EvalReport): string {
  const lines = [
    `LM loss (held out, ${r.seqLen} tokens): dense ${r.lossDense.toFixed(4)}, DSA top-${r.topk} ${r.lossSparse.toFixed(4)} (${((r.lossSparse / r.lossDense - 1) * 100).toFixed(2)}%)`,
    `indexer recall at top-${r.topk} (k/L = 1/${(r.seqLen / r.topk).toFixed(1)}): ${(r.recall * 100).toFixed(2)}% (per layer: ${r.recallPerLayer.map((x) => `${(x * 100).toFixed(2)}%`).join(', ')}; ceiling ${r.recallCeilingPerLayer.map((x) => `${(x * 100).toFixed(2)}%`).join(', ')})`,
  ];
  if (r.accuracy.length > 0) {
    lines.push('task accuracy:   context   dense    DSA   chance');
    for (const a of r.accuracy) {
      lines.push(`                 ${String(a.contextLength).padStart(7)}  ${(a.dense * 100).toFixed(1).padStart(5)}%  ${(a.sparse * 100).toFixed(1).padStart(5)}%  ${(a.chance * 100).toPrecision(2)}%`);
    }
  }
  return `${lines.join('\n')}\n`;
}
