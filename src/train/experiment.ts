/**
 * The small-scale DSA reproduction (paper §2.1 in miniature): pre-train a small MLA model densely
 * on a long-context retrieval task, warm the lightning indexer up against the frozen model's
 * attention (Eq. 3), then train everything sparsely with top-k attention (Eq. 4). Measures indexer
 * recall before and after the warm-up, LM loss dense vs DSA, and retrieval accuracy at 1×, 2× and
 * 4× the training length with dense attention and with DSA.
 */
import { join } from 'node:path';
import type { TrainBackend } from '../autograd/backend.js';
import { saveTrainer } from './checkpoint.js';
import { trainLoader, type DataSpec } from './loaders.js';
import { MetricsLogger } from './metrics.js';
import { smallConfigJson, TrainModel } from './model.js';
import { evaluateModel, type EvalReport, type EvalSettings } from './report.js';
import { runTrainer } from './run.js';
import type { Stage } from './stages.js';
import { defaultTrainOptions, Trainer, type StepMetrics } from './trainer.js';

export interface StagePlan {
  steps: number;
  lr: number;
  warmupSteps: number;
}

export interface ExperimentPlan {
  name: string;
  config: Record<string, unknown>;
  data: DataSpec;
  seqLen: number;
  batch: number;
  topk: number;
  seed: number;
  stages: Record<Stage, StagePlan>;
  eval: Omit<EvalSettings, 'seqLen' | 'topk' | 'seed'>;
}

/** CI's reduced run: a few minutes on 2 cores at most. */
export function smokePlan(): ExperimentPlan {
  return {
    name: 'smoke',
    config: smallConfigJson({ vocab_size: 64, hidden_size: 48, intermediate_size: 96, index_topk: 8 }),
    data: { task: 'recall', taskOptions: { pairs: 4, queries: 4 } },
    seqLen: 64,
    batch: 4,
    topk: 8,
    seed: 1,
    stages: {
      dense: { steps: 60, lr: 3e-3, warmupSteps: 5 },
      warmup: { steps: 30, lr: 1e-2, warmupSteps: 3 },
      sparse: { steps: 20, lr: 1e-3, warmupSteps: 2 },
    },
    eval: { batches: 2, batchSize: 4, lengths: [1, 2, 4], samples: 16 },
  };
}

/** The reproduction of docs/training.md: k/L = 1/16 at the training length. */
export function fullPlan(): ExperimentPlan {
  return {
    name: 'full',
    config: smallConfigJson({ vocab_size: 64, index_topk: 8 }),
    data: { task: 'passkey', taskOptions: { keyLength: 1, valueLength: 2 } },
    seqLen: 128,
    batch: 8,
    topk: 8,
    seed: 1,
    stages: {
      dense: { steps: 600, lr: 3e-3, warmupSteps: 30 },
      warmup: { steps: 150, lr: 1e-2, warmupSteps: 10 },
      sparse: { steps: 150, lr: 1e-3, warmupSteps: 10 },
    },
    eval: { batches: 4, batchSize: 8, lengths: [1, 2, 4], samples: 64 },
  };
}

export interface ExperimentResult {
  plan: string;
  seq_len: number;
  topk: number;
  k_over_l: number;
  recall_before: number;
  recall_after: number;
  recall_after_sparse: number;
  recall_before_per_layer: number[];
  recall_after_per_layer: number[];
  /** The target's own top-k mass after the warm-up: what a perfect indexer would reach. */
  recall_ceiling_per_layer: number[];
  /** The dense control: pre-training plus as many dense steps as the sparse stage had, dense attention. */
  loss_dense: number;
  /** After the dense stage alone. */
  loss_dense_pretrained: number;
  /** The dense model run with DSA right after the warm-up, before sparse training. */
  loss_sparse_before_training: number;
  loss_sparse: number;
  needle_acc_dense: number;
  needle_acc_sparse: number;
  /** Accuracy of the dense control, of the pre-trained model, and of the DSA model, by context length. */
  needle_by_length: Array<{ context_length: number; dense: number; dense_pretrained: number; sparse: number; chance: number }>;
  tokens_per_s: Record<Stage, number>;
  seconds: Record<Stage | 'eval', number>;
  final_loss: Record<Stage, number>;
}

export interface ExperimentHooks {
  /** Checkpoints and metrics go under OUT/{dense,warmup,sparse}. */
  outDir?: string;
  onStage?: (stage: Stage, steps: number) => void;
  onStep?: (m: StepMetrics, tokensPerS: number) => void;
  onNote?: (text: string) => void;
}

export async function runExperiment(plan: ExperimentPlan, backend: TrainBackend, hooks: ExperimentHooks = {}): Promise<ExperimentResult> {
  let model = TrainModel.init(plan.config, plan.seed);
  const evalSettings: EvalSettings = { ...plan.eval, seqLen: plan.seqLen, topk: plan.topk, seed: plan.seed };
  const seconds = { dense: 0, warmup: 0, sparse: 0, eval: 0 };
  const tokensPerS = { dense: 0, warmup: 0, sparse: 0 };
  const finalLoss = { dense: NaN, warmup: NaN, sparse: NaN };

  const train = (stage: Stage, s: StagePlan = plan.stages[stage], subdir: string = stage) => {
    const loader = trainLoader(plan.data, model.config.vocabSize, plan.batch, plan.seqLen, plan.seed);
    const opts = defaultTrainOptions(stage, { steps: s.steps, lr: s.lr, warmupSteps: s.warmupSteps, batch: plan.batch, seqLen: plan.seqLen, topk: plan.topk });
    const trainer = new Trainer(model, backend, loader, opts);
    hooks.onStage?.(stage, s.steps);
    const dir = hooks.outDir ? join(hooks.outDir, subdir) : undefined;
    const logger = dir ? (saveTrainer(trainer, dir), MetricsLogger.open(join(dir, 'metrics.jsonl'))) : undefined;
    const started = performance.now();
    try {
      const steps = runTrainer(trainer, { outDir: dir, saveEvery: 0, logger, onStep: hooks.onStep });
      if (subdir !== stage) return;
      seconds[stage] = (performance.now() - started) / 1000;
      tokensPerS[stage] = steps.reduce((a, m) => a + m.tokens, 0) / seconds[stage];
      finalLoss[stage] = steps.slice(-10).reduce((a, m) => a + m.loss, 0) / Math.min(10, steps.length);
    } finally {
      logger?.close();
    }
  };
  const evaluate = async (what: string): Promise<EvalReport> => {
    const started = performance.now();
    const r = await evaluateModel(model, backend, plan.data, evalSettings);
    seconds.eval += (performance.now() - started) / 1000;
    hooks.onNote?.(`${what}: loss dense ${r.lossDense.toFixed(4)}, DSA ${r.lossSparse.toFixed(4)}, recall ${(r.recall * 100).toFixed(1)}% (ceiling ${(r.recallCeilingPerLayer.reduce((a, b) => a + b, 0) / r.recallCeilingPerLayer.length * 100).toFixed(1)}%)\n`);
    return r;
  };

  train('dense');
  const afterDense = await evaluate('after dense pre-training');
  const pretrained = new Map([...model.params].map(([name, p]) => [name, Float32Array.from(p)]));
  train('warmup');
  const afterWarmup = await evaluate('after indexer warm-up');
  train('sparse');
  const afterSparse = await evaluate('after sparse training');
  // The control: the pre-trained model trained on densely for as many steps as the sparse stage,
  // so dense and DSA are compared after the same training.
  const dsa = model;
  model = new TrainModel(plan.config);
  for (const [name, p] of pretrained) model.params.set(name, p);
  train('dense', plan.stages.sparse, 'dense-control');
  const control = await evaluate('dense control (pre-training + as many dense steps as the sparse stage)');
  model = dsa;

  return {
    plan: plan.name,
    seq_len: plan.seqLen,
    topk: plan.topk,
    k_over_l: plan.topk / plan.seqLen,
    recall_before: afterDense.recall,
    recall_after: afterWarmup.recall,
    recall_after_sparse: afterSparse.recall,
    recall_before_per_layer: afterDense.recallPerLayer,
    recall_after_per_layer: afterWarmup.recallPerLayer,
    recall_ceiling_per_layer: afterWarmup.recallCeilingPerLayer,
    loss_dense: control.lossDense,
    loss_dense_pretrained: afterDense.lossDense,
    loss_sparse_before_training: afterWarmup.lossSparse,
    loss_sparse: afterSparse.lossSparse,
    needle_acc_dense: control.accuracy[0]?.dense ?? NaN,
    needle_acc_sparse: afterSparse.accuracy[0]?.sparse ?? NaN,
    needle_by_length: control.accuracy.map((a, i) => ({
      context_length: a.contextLength,
      dense: a.dense,
      dense_pretrained: afterDense.accuracy[i]!.dense,
      sparse: afterSparse.accuracy[i]!.sparse,
      chance: a.chance,
    })),
    tokens_per_s: tokensPerS,
    seconds,
    final_loss: finalLoss,
  };
}
