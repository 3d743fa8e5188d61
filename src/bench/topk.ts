/**
 * `dsa bench topk`: milliseconds per row of the CPU top-k selectors, quickselect (topk.ts, the
 * reference) against radix selection (topk-radix.ts), on rows of random indexer-like scores.
 */
import { writeFileSync } from 'node:fs';
import { topkRows } from '../backend/cpu/kernels/topk.js';
import { topkRowsRadix } from '../backend/cpu/kernels/topk-radix.js';
import { machineInfo, timeIt, type Timing } from './harness.js';
import { seededUniform } from '../generate/sampler.js';
import { io } from '../cli/io.js';

export interface TopkBenchOptions {
  /** Keys per row (S). */
  nKeys: number;
  k: number;
  /** Rows per timed call. */
  rows: number;
  runs: number;
  seed: number;
}

export interface TopkBenchCase {
  distribution: string;
  nKeys: number;
  k: number;
  rows: number;
  quickselect: Timing & { msPerRow: number };
  radix: Timing & { msPerRow: number };
  speedup: number;
  identical: boolean;
}

const rng = seededUniform;

const DISTRIBUTIONS: Record<string, (r: () => number) => number> = {
  /** Sums of ReLU'd products look roughly like a shifted normal: Irwin–Hall approximation. */
  normal: (r) => r() + r() + r() + r() - 2,
  /** Scores on a coarse grid (e.g. low-precision accumulators): large tie groups at the threshold. */
  ties: (r) => Math.floor(r() * 64) / 8,
};

export async function runTopkBench(o: TopkBenchOptions): Promise<TopkBenchCase[]> {
  const cases: TopkBenchCase[] = [];
  for (const [name, gen] of Object.entries(DISTRIBUTIONS)) {
    const r = rng(o.seed);
    const scores = new Float32Array(o.rows * o.nKeys);
    for (let i = 0; i < scores.length; i++) scores[i] = gen(r);
    const positions = new Int32Array(o.rows).fill(o.nKeys - 1);
    const a = topkRows(scores, o.rows, o.nKeys, o.k, positions);
    const b = topkRowsRadix(scores, o.rows, o.nKeys, o.k, positions);
    const identical = a.length === b.length && a.every((v, i) => v === b[i]);
    const opts = { warmup: 2, runs: o.runs };
    const q = await timeIt(() => topkRows(scores, o.rows, o.nKeys, o.k, positions), opts);
    const x = await timeIt(() => topkRowsRadix(scores, o.rows, o.nKeys, o.k, positions), opts);
    cases.push({
      distribution: name,
      nKeys: o.nKeys,
      k: o.k,
      rows: o.rows,
      quickselect: { ...q, msPerRow: q.medianMs / o.rows },
      radix: { ...x, msPerRow: x.medianMs / o.rows },
      speedup: q.medianMs / x.medianMs,
      identical,
    });
  }
  return cases;
}

/** Runs the benchmark and prints its setup and a table; writes JSON when asked. */
export async function benchTopkCommand(o: TopkBenchOptions & { json?: string }): Promise<void> {
  const machine = await machineInfo();
  const w = (s: string) => io().out(`${s}\n`);
  w(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, node ${machine.node}, ${machine.platform}`);
  w(`top-k: S ${o.nKeys}, k ${o.k}, ${o.rows} rows per call, median of ${o.runs} runs, single thread, plain TypeScript`);
  const cases = await runTopkBench(o);
  w('');
  w('scores    quickselect ms/row   radix ms/row   speedup   identical');
  for (const c of cases) {
    w(
      `${c.distribution.padEnd(9)} ${c.quickselect.msPerRow.toFixed(3).padStart(18)} ${c.radix.msPerRow.toFixed(3).padStart(14)} ` +
        `${c.speedup.toFixed(2).padStart(8)}× ${String(c.identical).padStart(11)}`,
    );
  }
  if (o.json) writeFileSync(o.json, `${JSON.stringify({ machine, options: o, cases }, null, 2)}\n`);
}
