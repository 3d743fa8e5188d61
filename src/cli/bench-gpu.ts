/** `dsa bench gpu`: the WebGPU kernel lab (src/bench/gpu/lab.ts): JSON lines on stdout, a summary table. */
import { writeFileSync } from 'node:fs';
import { readTextFile } from '../io/text-file.js';
import { linePlot, writePlot } from '../bench/plot.js';
import { coreLinePlot } from '../bench/gpu/plot.js';
import type { Command } from 'commander';
import { GpuDevice } from '../backend/webgpu/device.js';
import { LAB_SECTIONS, runGpuLab } from '../bench/gpu/lab.js';
import { intArg } from './args.js';
import { parseContexts } from './bench.js';
import { io } from './io.js';

interface BenchGpuOptions {
  sections: string;
  ctx: number[];
  batch: string;
  runs: number;
  matmulN: number;
  json?: string;
  plot?: string;
  from?: string;
  peer?: string;
}

/** JSON lines of a file (blank lines skipped), with the line number in any error. */
function readJsonLines(file: string, what: string): Record<string, unknown>[] {
  return readTextFile(file, what)
    .split('\n')
    .map((l, i) => [l.trim(), i + 1] as const)
    .filter(([l]) => l.length > 0)
    .map(([l, n]) => {
      try {
        const v = JSON.parse(l) as unknown;
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
        return v as Record<string, unknown>;
      } catch (e) {
        throw new Error(`${what} ${file}, line ${n}: ${(e as Error).message}`);
      }
    });
}

export function addBenchGpu(bench: Command): void {
  bench
    .command('gpu')
    .description('WebGPU kernel lab: copy bandwidth, matmul TFLOP/s (f32, f16 and int8 tensor cores), the DSA attention core against dense, by timestamp queries')
    .option('--sections <list>', `sections to run, in this order (copy always first): ${LAB_SECTIONS.join(', ')}`, LAB_SECTIONS.join(','))
    .option('--ctx <list>', 'context lengths of the core section', parseContexts, [4096, 32768, 131072])
    .option('--batch <list>', 'batch sizes of the core section, comma-separated', '1,16')
    .option('--runs <n>', 'timed runs per measurement (median reported)', intArg('--runs', 1), 5)
    .option('--matmul-n <n>', 'matmul size n × n × n', intArg('--matmul-n', 128), 8192)
    .option('--json <file>', 'also write the rows as JSON lines to a file')
    .option('--plot <file>', 'draw the attention core, ms per step against context (.svg or .png)')
    .option('--from <file>', 'no GPU: plot the rows of an earlier --json file (with --plot)')
    .option('--peer <file>', "the PyTorch peer's JSON lines (shared/peers/torch_dsa_layer.py) to draw beside ours")
    .action(async (o: BenchGpuOptions) => {
      const peer = o.peer ? readJsonLines(o.peer, '--peer') : [];
      if (o.from) {
        if (!o.plot) throw new Error('--from needs --plot (it only redraws a saved run)');
        writePlot(o.plot, await linePlot(coreLinePlot(readJsonLines(o.from, '--from'), peer)));
        io().out(`wrote ${o.plot}\n`);
        return;
      }
      const sections = o.sections.split(',').map((s) => s.trim()).filter(Boolean);
      const bad = sections.find((s) => !(LAB_SECTIONS as readonly string[]).includes(s));
      if (bad) throw new Error(`--sections: unknown section '${bad}' (known: ${LAB_SECTIONS.join(', ')})`);
      const batch = o.batch.split(',').map((b) => {
        const n = Number(b);
        if (!Number.isInteger(n) || n < 1) throw new Error(`--batch: '${b}' is not a positive integer`);
        return n;
      });
      const rows: Record<string, unknown>[] = [];
      const gpu = await GpuDevice.create();
      try {
        await runGpuLab(gpu, {
          sections,
          ctx: o.ctx,
          batch,
          runs: o.runs,
          matmulN: o.matmulN,
          emit: (row) => {
            rows.push(row);
            io().out(`${JSON.stringify(row)}\n`);
          },
          note: (line) => io().err(`${line}\n`),
        });
      } finally {
        gpu.destroy();
      }
      if (o.json) writeFileSync(o.json, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
      if (o.plot && rows.some((r) => r.section === 'core')) writePlot(o.plot, await linePlot(coreLinePlot(rows, peer)));
      const core = rows.filter((r) => r.section === 'core');
      // Per sequence (`dsa_*`), then every sequence of the batch in one grid per op (`dsa_batched_*`).
      for (const k of ['', '_batched']) {
        if (core.length === 0 || core[0]![`dsa${k}_ms`] === undefined) continue;
        io().out(k ? '\none grid per op over the batch (rowSeq):\n' : '\n');
        io().out(`batch  ctx      DSA ms (indexer / topk / attention / wuv)      dense ms   dense ÷ DSA${k ? '   per-sequence ÷ one grid' : ''}\n`);
        for (const r of core) {
          const parts = ['indexer', 'topk', 'attention', 'wuv'].map((p) => r[`dsa${k}_${p}_ms`]).join(' / ');
          const line = `${String(r.batch).padEnd(6)} ${String(r.ctx).padEnd(8)} ${String(r[`dsa${k}_ms`]).padEnd(9)} (${parts})`.padEnd(64);
          const ratio = k ? `${String(r[`ratio${k}`]).padEnd(13)} ${r.batched_speedup}` : String(r.ratio);
          io().out(`${line} ${String(r[`dense${k}_ms`]).padEnd(10)} ${ratio}\n`);
        }
      }
    });
}
