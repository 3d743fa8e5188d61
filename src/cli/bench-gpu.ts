/** `dsa bench gpu`: the WebGPU kernel lab (src/bench/gpu/lab.ts): JSON lines on stdout, a summary table. */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { GpuDevice } from '../backend/webgpu/device.js';
import { LAB_SECTIONS, runGpuLab } from '../bench/gpu/lab.js';
import { intArg, parseContexts } from './bench.js';
import { io } from './io.js';

interface BenchGpuOptions {
  sections: string;
  ctx: number[];
  batch: string;
  runs: number;
  matmulN: number;
  json?: string;
}

export function addBenchGpu(bench: Command): void {
  bench
    .command('gpu')
    .description('WebGPU kernel lab: copy bandwidth, matmul TFLOP/s (f32, f16 and int8 tensor cores), the DSA attention core against dense, by timestamp queries')
    .option('--sections <list>', `sections to run: ${LAB_SECTIONS.join(', ')}`, LAB_SECTIONS.join(','))
    .option('--ctx <list>', 'context lengths of the core section', parseContexts, [4096, 32768, 131072])
    .option('--batch <list>', 'batch sizes of the core section, comma-separated', '1,16')
    .option('--runs <n>', 'timed runs per measurement (median reported)', intArg('--runs', 1), 5)
    .option('--matmul-n <n>', 'matmul size n × n × n', intArg('--matmul-n', 128), 8192)
    .option('--json <file>', 'also write the rows as JSON lines to a file')
    .action(async (o: BenchGpuOptions) => {
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
      const core = rows.filter((r) => r.section === 'core');
      if (core.length > 0) {
        io().out('\nbatch  ctx      DSA ms (indexer / topk / attention / wuv)      dense ms   dense ÷ DSA\n');
        for (const r of core) {
          const parts = [r.dsa_indexer_ms, r.dsa_topk_ms, r.dsa_attention_ms, r.dsa_wuv_ms].join(' / ');
          io().out(`${String(r.batch).padEnd(6)} ${String(r.ctx).padEnd(8)} ${String(r.dsa_ms).padEnd(9)} (${parts})`.padEnd(64) + ` ${String(r.dense_ms).padEnd(10)} ${r.ratio}\n`);
        }
      }
    });
}
