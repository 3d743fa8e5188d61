/**
 * The training loop of one stage: a batch from the source → forward → the stage's objective →
 * backward → global-norm clipping → AdamW at the scheduled learning rate. Deterministic: the same
 * model, options and source state give the same losses, bit for bit, and so does a run resumed from
 * a checkpoint (src/train/checkpoint.ts).
 */
import type { TrainBackend } from '../autograd/backend.js';
import { AdamW, ADAMW_DEFAULTS } from './adamw.js';
import type { Batch, BatchSource } from './data/batches.js';
import { clipGradNorm } from './clip.js';
import { forward } from './forward.js';
import type { TrainModel } from './model.js';
import { learningRate } from './schedule.js';
import { meanIndexerLoss, stageForward, stageObjective, type Stage } from './stages.js';

export interface TrainOptions {
  stage: Stage;
  steps: number;
  lr: number;
  warmupSteps: number;
  minLrRatio: number;
  weightDecay: number;
  clip: number;
  batch: number;
  seqLen: number;
  /** Keys per query under DSA (sparse stage); default the config's index_topk. */
  topk?: number;
}

export function defaultTrainOptions(stage: Stage, over: Partial<TrainOptions> = {}): TrainOptions {
  return {
    stage,
    steps: 100,
    lr: stage === 'warmup' ? 1e-3 : stage === 'sparse' ? 3e-4 : 1e-3,
    warmupSteps: 10,
    minLrRatio: 0.1,
    weightDecay: 0.1,
    clip: 1,
    batch: 8,
    seqLen: 256,
    ...over,
  };
}

export interface StepMetrics {
  step: number;
  stage: Stage;
  /** The objective the stage minimized. */
  loss: number;
  lmLoss: number;
  /** Mean indexer KL over layers (null in the dense stage). */
  indexerKl: number | null;
  lr: number;
  gradNorm: number;
  tokens: number;
  seconds: number;
}

/** The batch's targets with positions outside its loss mask set to −1 (no loss there). */
export function lossTargets(b: Batch): Int32Array {
  if (!b.mask) return b.targets;
  const out = Int32Array.from(b.targets);
  for (let i = 0; i < out.length; i++) if (b.mask[i] === 0) out[i] = -1;
  return out;
}

export class Trainer {
  readonly optimizer: AdamW;
  /** Steps done (the next step's index). */
  step = 0;

  constructor(
    readonly model: TrainModel,
    readonly backend: TrainBackend,
    readonly data: BatchSource,
    readonly opts: TrainOptions,
  ) {
    this.optimizer = new AdamW({ ...ADAMW_DEFAULTS, weightDecay: opts.weightDecay });
    if (data.batchSize !== opts.batch || data.seqLen !== opts.seqLen) {
      throw new RangeError(`the batch loader gives ${data.batchSize}×${data.seqLen} batches, the options ask for ${opts.batch}×${opts.seqLen}`);
    }
  }

  get done(): boolean {
    return this.step >= this.opts.steps;
  }

  /** One optimizer step. */
  trainStep(): StepMetrics {
    const started = performance.now();
    const { stage } = this.opts;
    const b = this.data.next();
    const fwd = forward(this.model, this.backend, b.inputs, lossTargets(b), b.batchSize, b.seqLen, stageForward(stage, this.opts.topk));
    const kl = meanIndexerLoss(fwd.tape, fwd.indexerLosses);
    const objective = stageObjective(stage, fwd.tape, fwd.lmLoss, kl);
    fwd.tape.backward(objective);
    const grads = new Map<string, Float32Array>();
    const trainable = stageForward(stage).trainable;
    for (const spec of this.model.specs) {
      if (!trainable(spec)) continue;
      grads.set(spec.name, fwd.vars.get(spec.name)!.grad ?? new Float32Array(this.model.get(spec.name).length));
    }
    const gradNorm = clipGradNorm(grads.values(), this.opts.clip);
    const lr = learningRate({ peak: this.opts.lr, warmup: this.opts.warmupSteps, total: this.opts.steps, minRatio: this.opts.minLrRatio }, this.step);
    const kinds = new Map(this.model.specs.map((s) => [s.name, s.kind]));
    this.optimizer.step(this.model.params, grads, lr, (name) => kinds.get(name) === 'matrix');
    const metrics: StepMetrics = {
      step: this.step,
      stage,
      loss: objective.data[0]!,
      lmLoss: fwd.lmLoss.data[0]!,
      indexerKl: kl ? kl.data[0]! : null,
      lr,
      gradNorm,
      tokens: b.batchSize * b.seqLen,
      seconds: (performance.now() - started) / 1000,
    };
    this.step++;
    return metrics;
  }
}
