/** `dsa eval`: LM loss (dense and DSA), indexer recall per layer, task accuracy by context length. */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createTrainBackend } from '../autograd/create.js';
import { CpuBackend } from '../backend/cpu.js';
import { decodeCost } from '../train/decode-cost.js';
import { TrainModel } from '../train/model.js';
import { evaluateModel, formatReport } from '../train/report.js';
import { io } from './io.js';
import { dataOptions, dataSpec } from './train.js';
import { intArg } from './args.js';

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
    .option('--seq-len <n>', 'evaluation (training) length', intArg('--seq-len', 2), 256)
    .option('--topk <k>', "keys per query under DSA (default: the config's index_topk)", intArg('--topk', 1))
    .option('--lengths <list>', 'task context lengths as multiples of --seq-len', '1,2,4')
    .option('--samples <n>', 'task samples per length', intArg('--samples', 1), 32)
    .option('--batches <n>', 'held-out batches for loss and recall', intArg('--batches', 1), 4)
    .option('--batch <n>', 'sequences per batch', intArg('--batch', 1), 4)
    .option('--seed <n>', 'training seed (held-out data is drawn apart from it)', intArg('--seed', 0), 1)
    .option('--decode-cost <contexts>', 'also time greedy decode steps in the inference engine at these contexts (e.g. 1024,4096), dense vs DSA')
    .option('--json <file>', 'also write the report as JSON')
    .action(async (o: { model: string; seqLen: number; topk?: number; lengths: string; samples: number; batches: number; batch: number; seed: number; json?: string; decodeCost?: string } & Parameters<typeof dataSpec>[0]) => {
      const model = TrainModel.load(o.model);
      if (o.decodeCost && !o.data && !o.task) {
        const costs = await decodeCost(o.model, new CpuBackend(), multiples(o.decodeCost).map(Math.round));
        for (const c of costs) io().out(`decode at ${c.context}: dense ${c.denseMs.toFixed(2)} ms, DSA ${c.sparseMs.toFixed(2)} ms per step (${c.ratio.toFixed(2)}×)\n`);
        if (o.json) writeFileSync(o.json, `${JSON.stringify({ decodeCost: costs }, null, 2)}\n`);
        return;
      }
      const backend = createTrainBackend();
      const report = await evaluateModel(model, backend, dataSpec(o), {
        seqLen: o.seqLen,
        topk: o.topk ?? model.config.indexTopk,
        batches: o.batches,
        batchSize: o.batch,
        lengths: multiples(o.lengths),
        samples: o.samples,
        seed: o.seed,
      }).finally(() => backend.close());
      io().out(formatReport(report));
      const costs = o.decodeCost ? await decodeCost(o.model, new CpuBackend(), multiples(o.decodeCost).map(Math.round)) : [];
      for (const c of costs) io().out(`decode at ${c.context}: dense ${c.denseMs.toFixed(2)} ms, DSA ${c.sparseMs.toFixed(2)} ms per step (${c.ratio.toFixed(2)}×)\n`);
      if (o.json) writeFileSync(o.json, `${JSON.stringify({ ...report, decodeCost: costs }, null, 2)}\n`);
    });
}
