/**
 * `dsa bench train`: training throughput of each stage (dense, warmup, sparse) on the TypeScript
 * and the WASM kernels, for the small model of the reproduction. Prints its setup, then tokens/s
 * (median step time over the timed steps, after one untimed step).
 */
import type { Command } from 'commander';
import { CpuTrainBackend } from '../autograd/cpu-backend.js';
import { WasmTrainBackend } from '../autograd/wasm-backend.js';
import { io } from '../cli/io.js';
import { intArg } from '../cli/args.js';
import { trainLoader } from '../train/loaders.js';
import { smallConfigJson, TrainModel } from '../train/model.js';
import { STAGES } from '../train/stages.js';
import { defaultTrainOptions, Trainer } from '../train/trainer.js';
import { availableParallelism, cpus } from 'node:os';

export function addBenchTrain(bench: Command): void {
  bench
    .command('train')
    .description('training tokens/s per stage (dense, warmup, sparse) on the TypeScript and the WASM kernels (the reproduction\'s small model)')
    .option('--seq-len <n>', 'tokens per sequence', intArg('--seq-len', 2), 128)
    .option('--batch <n>', 'sequences per step', intArg('--batch', 1), 8)
    .option('--topk <k>', 'keys per query in the sparse stage', intArg('--topk', 1), 8)
    .option('--steps <n>', 'timed steps per measurement', intArg('--steps', 1), 5)
    .action((o: { seqLen: number; batch: number; topk: number; steps: number }) => {
      const config = smallConfigJson({ vocab_size: 64, index_topk: o.topk });
      const model0 = TrainModel.init(config, 1);
      io().out(
        `setup: ${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} threads; model d 64, 2 layers, ${(model0.parameterCount / 1e6).toFixed(3)}M parameters; ` +
          `passkey batches ${o.batch} × ${o.seqLen}, top-k ${o.topk}; median of ${o.steps} steps after 1 untimed\n`,
      );
      io().out('kernels  stage    ms/step   tokens/s\n');
      const wasm = new WasmTrainBackend();
      try {
        for (const [name, backend] of [['ts', new CpuTrainBackend()], ['wasm', wasm]] as const) {
          for (const stage of STAGES) {
            const model = TrainModel.init(config, 1);
            const loader = trainLoader({ task: 'passkey', taskOptions: { keyLength: 1, valueLength: 2 } }, 64, o.batch, o.seqLen, 1);
            const t = new Trainer(model, backend, loader, defaultTrainOptions(stage, { steps: o.steps + 1, batch: o.batch, seqLen: o.seqLen, topk: o.topk }));
            t.trainStep();
            const times: number[] = [];
            while (!t.done) times.push(t.trainStep().seconds);
            times.sort((a, b) => a - b);
            const med = times[Math.floor(times.length / 2)]!;
            io().out(`${name.padEnd(8)} ${stage.padEnd(8)} ${(med * 1000).toFixed(1).padStart(8)}  ${((o.batch * o.seqLen) / med).toFixed(0).padStart(9)}\n`);
          }
        }
      } finally {
        wasm.close();
      }
    });
}
