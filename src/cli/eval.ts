/** `dsa eval`: LM loss (dense and DSA), indexer recall per layer, task accuracy by context length. */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CpuTrainBackend } from '../autograd/cpu-backend.js';
import { TrainModel } from '../train/model.js';
import { evaluateModel, formatReport } from '../train/report.js';
import { io } from './io.js';
import { dataOptions, dataSpec, intOpt } from './train.js';

function multiples(value: string): number[] {
  const out = value.split(',').map((s) => Number(s.trim()));
  if (out.length === 0 || out.some((x) => !(x > 0))) throw new Error(`--lengths: expected positive numbers like 1,2,4, got '${value}'`);
  return out;
}

export function addEval(program: Command): void {
  dataOptions(
    program
      .command('eval')
      .description('evaluate a trained model: LM loss dense vs DSA, indexer recall per layer, task accuracy by context length')
      .requiredOption('--model <dir>', 'model directory'),
  )
    .option('--seq-len <n>', 'evaluation (training) length', intOpt('--seq-len', 2), 256)
    .option('--topk <k>', "keys per query under DSA (default: the config's index_topk)", intOpt('--topk', 1))
    .option('--lengths <list>', 'task context lengths as multiples of --seq-len', '1,2,4')
    .option('--samples <n>', 'task samples per length', intOpt('--samples', 1), 32)
    .option('--batches <n>', 'held-out batches for loss and recall', intOpt('--batches', 1), 4)
    .option('--batch <n>', 'sequences per batch', intOpt('--batch', 1), 4)
    .option('--seed <n>', 'training seed (held-out data is drawn apart from it)', intOpt('--seed', 0), 1)
    .option('--json <file>', 'also write the report as JSON')
    .action(async (o: { model: string; seqLen: number; topk?: number; lengths: string; samples: number; batches: number; batch: number; seed: number; json?: string } & Parameters<typeof dataSpec>[0]) => {
      const model = TrainModel.load(o.model);
      const report = await evaluateModel(model, new CpuTrainBackend(), dataSpec(o), {
        seqLen: o.seqLen,
        topk: o.topk ?? model.config.indexTopk,
        batches: o.batches,
        batchSize: o.batch,
        lengths: multiples(o.lengths),
        samples: o.samples,
        seed: o.seed,
      });
      io().out(formatReport(report));
      if (o.json) writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
    });
}
