/**
 * `dsa train`: one training stage (dense pre-training, the indexer's dense warm-up, sparse DSA
 * training) from a new model (--config) or a checkpoint (--model), on a token/text file or a
 * synthetic task; a progress bar on stderr, JSONL metrics, checkpoints that resume (--resume).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { TrainBackend } from '../autograd/backend.js';
import { createTrainBackend } from '../autograd/create.js';
import { loadJsonFile } from '../io/checkpoint.js';
import { isTrainerCheckpoint, loadTrainer } from '../train/checkpoint.js';
import { describeData, trainLoader, type DataSpec } from '../train/loaders.js';
import { MetricsLogger } from '../train/metrics.js';
import { smallConfigJson, TrainModel } from '../train/model.js';
import { runTrainer } from '../train/run.js';
import { STAGES, type Stage } from '../train/stages.js';
import { defaultTrainOptions, Trainer, type TrainOptions } from '../train/trainer.js';
import { io } from './io.js';
import { intArg, numArg } from './args.js';
import { stepProgressBar } from './progress.js';

function stageOpt(value: string): Stage {
  if (!(STAGES as readonly string[]).includes(value)) throw new InvalidArgumentError(`--stage must be one of ${STAGES.join(', ')}`);
  return value as Stage;
}

/** --data / --tokenizer / --task / --pairs / --key-length / --value-length. */
export function dataOptions(cmd: Command): Command {
  return cmd
    .option('--data <file>', 'training tokens: llm.c .bin, safetensors, JSON ids, or text (.txt/.jsonl) through --tokenizer')
    .option('--tokenizer <file>', 'tokenizer.json for text data (default: byte-level)')
    .option('--task <name>', 'synthetic data generated on the fly: passkey or recall (multi-key associative recall); with --data, mixed in')
    .option('--task-weight <x>', 'share of task batches when mixed with --data (default 0.5)', numArg('--task-weight', 0))
    .option('--pairs <n>', 'recall: key→value records per sequence', intArg('--pairs', 1))
    .option('--queries <n>', 'recall: questions per sequence', intArg('--queries', 1))
    .option('--key-length <n>', 'ids per key', intArg('--key-length', 1))
    .option('--value-length <n>', 'ids per value (the answer)', intArg('--value-length', 1));
}

export function dataSpec(o: { data?: string; tokenizer?: string; task?: string; taskWeight?: number; pairs?: number; queries?: number; keyLength?: number; valueLength?: number }): DataSpec {
  const taskOptions = Object.fromEntries(
    Object.entries({ pairs: o.pairs, queries: o.queries, keyLength: o.keyLength, valueLength: o.valueLength }).filter(([, v]) => v !== undefined),
  );
  return { data: o.data, tokenizer: o.tokenizer, task: o.task, taskOptions, taskWeight: o.taskWeight };
}

interface TrainCliOptions {
  stage: Stage;
  model?: string;
  config?: string;
  out: string;
  steps: number;
  lr?: number;
  batch: number;
  seqLen: number;
  topk?: number;
  warmupSteps: number;
  weightDecay: number;
  clip: number;
  seed: number;
  saveEvery: number;
  resume: boolean;
  metrics?: string;
  data?: string;
  tokenizer?: string;
  task?: string;
  pairs?: number;
  queries?: number;
  keyLength?: number;
  valueLength?: number;
}

export async function runTrainCommand(o: TrainCliOptions): Promise<void> {
  const backend = createTrainBackend();
  try {
    await trainWith(backend, o);
  } finally {
    backend.close();
  }
}

async function trainWith(backend: TrainBackend, o: TrainCliOptions): Promise<void> {
  const spec = dataSpec(o);
  const resuming = o.resume && isTrainerCheckpoint(o.out);
  let trainer: Trainer;
  if (resuming) {
    const state = loadJsonFile(join(o.out, 'trainer_state.json'), 'the trainer state') as { options: TrainOptions };
    if (state.options?.stage !== o.stage) throw new Error(`${o.out}: holds a '${String(state.options?.stage)}' run, not '${o.stage}' (resume it with --stage ${String(state.options?.stage)}, or train into another --out)`);
    const model = loadJsonFile(join(o.out, 'config.json'), 'the model config') as { vocab_size: number };
    const loader = trainLoader(spec, model.vocab_size, state.options.batch, state.options.seqLen, o.seed);
    trainer = loadTrainer(o.out, backend, loader, { steps: o.steps });
    io().err(`resuming ${o.out} at step ${trainer.step}/${o.steps} (${trainer.opts.stage})\n`);
  } else {
    if (o.model && o.config) throw new Error('give --model DIR (continue a checkpoint) or --config FILE (a new model), not both');
    if (o.resume) io().err(`${o.out}: no trainer state to resume; starting fresh\n`);
    const model = o.model
      ? TrainModel.load(o.model)
      : TrainModel.init(o.config ? (loadJsonFile(o.config, 'a model config') as Record<string, unknown>) : smallConfigJson(), o.seed);
    if (!o.model && o.stage !== 'dense') io().err(`note: stage ${o.stage} on a freshly initialized model (usually it follows a dense pre-training)\n`);
    const opts = defaultTrainOptions(o.stage, {
      steps: o.steps,
      batch: o.batch,
      seqLen: o.seqLen,
      warmupSteps: o.warmupSteps,
      weightDecay: o.weightDecay,
      clip: o.clip,
      ...(o.lr !== undefined ? { lr: o.lr } : {}),
      ...(o.topk !== undefined ? { topk: o.topk } : {}),
    });
    trainer = new Trainer(model, backend, trainLoader(spec, model.config.vocabSize, o.batch, o.seqLen, o.seed), opts);
  }
  const { stage, batch, seqLen } = trainer.opts;
  const topk = trainer.opts.topk ?? trainer.model.config.indexTopk;
  io().err(
    `dsa train: stage ${stage}, ${(trainer.model.parameterCount / 1e6).toFixed(3)}M parameters, ${describeData(spec)}, ` +
      `batch ${batch} × ${seqLen}, lr ${trainer.opts.lr}${stage === 'sparse' ? `, top-k ${topk} (k/L = 1/${(seqLen / topk).toFixed(1)})` : ''}, ${o.steps} steps → ${o.out}\n`,
  );
  mkdirSync(o.out, { recursive: true });
  const logger = MetricsLogger.open(o.metrics ?? join(o.out, 'metrics.jsonl'), resuming ? { resumeStep: trainer.step } : {});
  const bar = stepProgressBar(stage, trainer.opts.steps);
  try {
    const steps = runTrainer(trainer, { outDir: o.out, saveEvery: o.saveEvery, logger, onStep: (m, tps) => bar.update(m.step + 1, { loss: m.loss, tokensPerS: tps }) });
    bar.stop();
    const last = steps.at(-1);
    if (last) {
      io().out(
        `${stage}: step ${trainer.step}, loss ${last.loss.toFixed(4)}, LM ${last.lmLoss.toFixed(4)}` +
          `${last.indexerKl !== null ? `, indexer KL ${last.indexerKl.toFixed(4)}` : ''} → ${o.out}\n`,
      );
    } else io().out(`${stage}: nothing to do (already at step ${trainer.step} of ${trainer.opts.steps})\n`);
  } finally {
    bar.stop();
    logger.close();
  }
}

export function addTrain(program: Command): void {
  dataOptions(
    program
      .command('train')
      .description('train one stage: dense (pre-training), warmup (the indexer\'s dense warm-up, Eq. 3), sparse (DSA training, Eq. 4)')
      .requiredOption('--stage <stage>', `${STAGES.join(' | ')}`, stageOpt)
      .option('--model <dir>', 'start from this checkpoint (config.json + safetensors)')
      .option('--config <file>', 'config.json of a new model (default: a small DeepSeek-V3.2, d 64, 2 layers)')
      .requiredOption('--out <dir>', 'checkpoint directory (model + optimizer + trainer state + metrics.jsonl)'),
  )
    .option('--steps <n>', 'optimizer steps (the total, when resuming)', intArg('--steps', 1), 200)
    .option('--lr <x>', 'peak learning rate (default: 1e-3 dense and warmup, 3e-4 sparse)', numArg('--lr', 0))
    .option('--batch <n>', 'sequences per step', intArg('--batch', 1), 8)
    .option('--seq-len <n>', 'tokens per sequence', intArg('--seq-len', 2), 256)
    .option('--topk <k>', "keys per query under DSA (default: the config's index_topk)", intArg('--topk', 1))
    .option('--warmup-steps <n>', 'linear learning-rate warm-up steps', intArg('--warmup-steps', 0), 10)
    .option('--weight-decay <x>', 'AdamW decoupled weight decay (matrices only)', numArg('--weight-decay', 0), 0.1)
    .option('--clip <x>', 'global gradient-norm clip (0 = off)', numArg('--clip', 0), 1)
    .option('--seed <n>', 'initialization and data seed', intArg('--seed', 0), 1)
    .option('--save-every <n>', 'checkpoint every n steps (0 = only at the end)', intArg('--save-every', 0), 50)
    .option('--resume', "continue from --out's checkpoint (model, optimizer, step, data position)", false)
    .option('--metrics <file>', 'JSONL metrics log (default OUT/metrics.jsonl)')
    .action(async (o: TrainCliOptions) => {
      if (o.model && !existsSync(o.model)) throw new Error(`${o.model}: model directory not found`);
      await runTrainCommand(o);
    });
}
