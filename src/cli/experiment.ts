/** `dsa experiment [--smoke] --json FILE`: dense pre-training → indexer warm-up → sparse training, with the measurements of docs/training.md. */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createTrainBackend } from '../autograd/create.js';
import { fullPlan, runExperiment, smokePlan, type ExperimentPlan } from '../train/experiment.js';
import type { Stage } from '../train/stages.js';
import { io } from './io.js';
import { stepProgressBar, type StepProgress } from './progress.js';
import { dataOptions, dataSpec } from './train.js';
import { intArg } from './args.js';

interface ExperimentCliOptions {
  smoke: boolean;
  json: string;
  out?: string;
  seqLen?: number;
  topk?: number;
  batch?: number;
  denseSteps?: number;
  warmupSteps?: number;
  sparseSteps?: number;
  samples?: number;
  data?: string;
  task?: string;
}

/** The preset with the command line's changes. */
function planFrom(o: ExperimentCliOptions & Parameters<typeof dataSpec>[0]): ExperimentPlan {
  const plan = o.smoke ? smokePlan() : fullPlan();
  if (o.data || o.task) plan.data = dataSpec(o);
  if (o.data) plan.config = { ...plan.config, vocab_size: Math.max(plan.config.vocab_size as number, 259) };
  if (o.seqLen) plan.seqLen = o.seqLen;
  if (o.batch) plan.batch = o.batch;
  if (o.topk) plan.topk = o.topk;
  plan.config = { ...plan.config, index_topk: plan.topk, max_position_embeddings: Math.max(plan.config.max_position_embeddings as number, 8 * plan.seqLen) };
  const steps: Record<Stage, number | undefined> = { dense: o.denseSteps, warmup: o.warmupSteps, sparse: o.sparseSteps };
  for (const stage of ['dense', 'warmup', 'sparse'] as Stage[]) if (steps[stage]) plan.stages[stage].steps = steps[stage]!;
  if (o.samples) plan.eval.samples = o.samples;
  if (plan !== null && (o.data || o.task || o.seqLen || o.topk)) plan.name = `${plan.name} (modified)`;
  return plan;
}

export function addExperiment(program: Command): void {
  dataOptions(program
    .command('experiment')
    .description('the small-scale DSA reproduction: dense pre-training → indexer warm-up (Eq. 3) → sparse training (Eq. 4), then recall, loss and retrieval accuracy')
    .option('--smoke', 'the reduced run (about a minute or two on 2 cores)', false)
    .requiredOption('--json <file>', 'write the results here')
    .option('--out <dir>', 'keep the checkpoints and metrics of each stage under this directory'))
    .option('--seq-len <n>', 'training length L', intArg('--seq-len', 2))
    .option('--topk <k>', 'keys per query under DSA', intArg('--topk', 1))
    .option('--batch <n>', 'sequences per step', intArg('--batch', 1))
    .option('--dense-steps <n>', 'steps of dense pre-training', intArg('--dense-steps', 1))
    .option('--warmup-steps <n>', 'steps of the indexer warm-up', intArg('--warmup-steps', 1))
    .option('--sparse-steps <n>', 'steps of sparse training', intArg('--sparse-steps', 1))
    .option('--samples <n>', 'task samples per context length', intArg('--samples', 1))
    .action(async (o: ExperimentCliOptions) => {
      const plan = planFrom(o);
      let bar: StepProgress | null = null;
      const backend = createTrainBackend();
      const result = await runExperiment(plan, backend, {
        outDir: o.out,
        onStage: (stage, steps) => {
          bar?.stop();
          bar = stepProgressBar(stage, steps, Math.max(1, Math.floor(steps / 5)));
        },
        onStep: (m, tps) => bar?.update(m.step + 1, { loss: m.loss, tokensPerS: tps }),
        onNote: (text) => {
          bar?.stop();
          io().err(text);
        },
      }).finally(() => backend.close());
      writeFileSync(o.json, `${JSON.stringify(result, null, 2)}\n`);
      const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : 'n/a');
      io().out(
        `experiment ${plan.name}: L ${result.seq_len}, top-k ${result.topk} (k/L = 1/${1 / result.k_over_l})\n` +
          `indexer recall: before warm-up ${pct(result.recall_before)}, after ${pct(result.recall_after)}, after sparse training ${pct(result.recall_after_sparse)}\n` +
          `LM loss: dense ${result.loss_dense.toFixed(4)}, DSA ${result.loss_sparse.toFixed(4)} (${((result.loss_sparse / result.loss_dense - 1) * 100).toFixed(2)}%)\n` +
          `retrieval accuracy (dense / DSA): ${result.needle_by_length.map((n) => `${n.context_length}: ${pct(n.dense)} / ${pct(n.sparse)}`).join(', ')}\n` +
          `results → ${o.json}\n`,
      );
    });
}
