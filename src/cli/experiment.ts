/** `dsa experiment [--smoke] --json FILE`: dense pre-training → indexer warm-up → sparse training, with the measurements of docs/training.md. */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CpuTrainBackend } from '../autograd/cpu-backend.js';
import { fullPlan, runExperiment, smokePlan } from '../train/experiment.js';
import { io } from './io.js';
import { stepProgressBar, type StepProgress } from './progress.js';

export function addExperiment(program: Command): void {
  program
    .command('experiment')
    .description('the small-scale DSA reproduction: dense pre-training → indexer warm-up (Eq. 3) → sparse training (Eq. 4), then recall, loss and retrieval accuracy')
    .option('--smoke', 'the reduced run (about a minute or two on 2 cores)', false)
    .requiredOption('--json <file>', 'write the results here')
    .option('--out <dir>', 'keep the checkpoints and metrics of each stage under this directory')
    .action(async (o: { smoke: boolean; json: string; out?: string }) => {
      const plan = o.smoke ? smokePlan() : fullPlan();
      let bar: StepProgress | null = null;
      const result = await runExperiment(plan, new CpuTrainBackend(), {
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
      });
      writeFileSync(o.json, `${JSON.stringify(result, null, 2)}\n`);
      const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
      io().out(
        `experiment ${plan.name}: L ${result.seq_len}, top-k ${result.topk} (k/L = 1/${1 / result.k_over_l})\n` +
          `indexer recall: before warm-up ${pct(result.recall_before)}, after ${pct(result.recall_after)}, after sparse training ${pct(result.recall_after_sparse)}\n` +
          `LM loss: dense ${result.loss_dense.toFixed(4)}, DSA ${result.loss_sparse.toFixed(4)} (${((result.loss_sparse / result.loss_dense - 1) * 100).toFixed(2)}%)\n` +
          `retrieval accuracy (dense / DSA): ${result.needle_by_length.map((n) => `${n.context_length}: ${pct(n.dense)} / ${pct(n.sparse)}`).join(', ')}\n` +
          `results → ${o.json}\n`,
      );
    });
}
