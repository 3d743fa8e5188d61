/**
 * `dsa bench serve`: throughput of `dsa serve` over HTTP. Starts the server in-process on a model
 * (by default a random tiny one written to a temporary directory), then at each concurrency sends
 * the same set of greedy token-id completions (fixed prompt and output lengths, EOS ignored) from
 * that many clients at once, and prints requests/s, generated tokens/s and latencies with the setup.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { io } from '../cli/io.js';
import { intArg } from '../cli/args.js';
import { CpuBackend } from '../backend/cpu.js';
import { writeRandomModel } from '../model/random-model.js';
import { parseMetrics } from '../serve/metrics.js';
import { startServer } from '../serve/server.js';
import { machineInfo } from './harness.js';

export interface ServeBenchOptions {
  model?: string;
  concurrency: number[];
  requests: number;
  promptLen: number;
  maxTokens: number;
  maxBatch: number;
  batchInvariant: boolean;
  /** The model's cache writes, indexer, top-k and attention once per sequence instead of once per step. */
  perSequence?: boolean;
  json?: string;
}

export interface ServeBenchRow {
  concurrency: number;
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  outputTokensPerSecond: number;
  totalTokensPerSecond: number;
  meanTtftMs: number;
  meanItlMs: number;
}

function ids(n: number, seed: number, vocab: number): number[] {
  let x = seed >>> 0;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x >>> 9) % vocab;
  });
}

export async function runServeBench(o: ServeBenchOptions): Promise<ServeBenchRow[]> {
  const out = io();
  const work = o.model ? null : mkdtempSync(join(tmpdir(), 'dsa-bench-serve-'));
  const dir = o.model ?? join(work!, 'tiny');
  if (!o.model) writeRandomModel(dir, { seed: 1 });
  const backend = new CpuBackend({ batchInvariant: o.batchInvariant, multiSequence: !o.perSequence });
  const server = await startServer({ model: dir, port: 0, maxBatch: o.maxBatch, maxContext: o.promptLen + o.maxTokens + 1, backend });
  try {
    const ctx = await server.ready;
    const cfg = ctx.engine.model.config;
    const m = await machineInfo();
    out.out(`dsa bench serve: ${m.cpu}, ${m.cores} cores, Node ${m.node}, load average ${loadavg()[0]!.toFixed(2)}\n`);
    out.out(
      `model ${o.model ?? 'random tiny (writeRandomModel defaults)'}: ${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, vocab ${cfg.vocabSize}; ` +
        `cpu backend, batch-invariant kernels ${o.batchInvariant ? 'on' : 'off'}, ${o.perSequence ? 'DSA ops per sequence (--per-sequence)' : 'DSA ops in one call per step'}, ` +
        `max batch ${o.maxBatch}, bf16 cache, prefix caching on (prompts differ)\n`,
    );
    out.out(`${o.requests} greedy completions per run: ${o.promptLen} prompt tokens (token ids), ${o.maxTokens} generated (ignore_eos), non-streaming, over HTTP\n\n`);
    out.out('concurrency  requests/s  output tok/s  total tok/s  mean TTFT ms  mean ITL ms  wall s\n');
    // Warm-up (JIT, worker threads, page pool): one request per client of the largest level, not timed.
    const warm = Math.max(...o.concurrency);
    await Promise.all(
      Array.from({ length: warm }, async (_, i) => {
        const body = { model: ctx.modelName, prompt: ids(o.promptLen, 7 + i, cfg.vocabSize), max_tokens: o.maxTokens, temperature: 0, ignore_eos: true };
        const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        if (!res.ok) throw new Error(`warm-up request failed: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
      }),
    );
    const rows: ServeBenchRow[] = [];
    let run = 0;
    for (const c of o.concurrency) {
      run++;
      const bodies = Array.from({ length: o.requests }, (_, i) => ({
        model: ctx.modelName,
        prompt: ids(o.promptLen, run * 100003 + i, cfg.vocabSize),
        max_tokens: o.maxTokens,
        temperature: 0,
        ignore_eos: true,
      }));
      const before = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
      const started = performance.now();
      let next = 0;
      let generated = 0;
      const client = async () => {
        while (next < bodies.length) {
          const body = bodies[next++]!;
          const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
          if (!res.ok) throw new Error(`request failed: ${res.status} ${await res.text()}`);
          const json = (await res.json()) as { usage: { completion_tokens: number } };
          generated += json.usage.completion_tokens;
        }
      };
      await Promise.all(Array.from({ length: c }, client));
      const seconds = (performance.now() - started) / 1000;
      const after = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
      const delta = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
      const row: ServeBenchRow = {
        concurrency: c,
        requests: o.requests,
        seconds,
        requestsPerSecond: o.requests / seconds,
        outputTokensPerSecond: generated / seconds,
        totalTokensPerSecond: (generated + o.requests * o.promptLen) / seconds,
        meanTtftMs: (1000 * delta('dsa:time_to_first_token_seconds_sum')) / Math.max(1, delta('dsa:time_to_first_token_seconds_count')),
        meanItlMs: (1000 * delta('dsa:inter_token_latency_seconds_sum')) / Math.max(1, delta('dsa:inter_token_latency_seconds_count')),
      };
      rows.push(row);
      out.out(
        `${String(c).padStart(11)}  ${row.requestsPerSecond.toFixed(2).padStart(10)}  ${row.outputTokensPerSecond.toFixed(1).padStart(12)}  ${row.totalTokensPerSecond.toFixed(1).padStart(11)}  ` +
          `${row.meanTtftMs.toFixed(1).padStart(12)}  ${row.meanItlMs.toFixed(2).padStart(11)}  ${seconds.toFixed(2).padStart(6)}\n`,
      );
    }
    if (o.json) writeFileSync(o.json, JSON.stringify({ setup: { ...o, model: o.model ?? 'random tiny', machine: m }, rows }, null, 2));
    return rows;
  } finally {
    await server.close();
    backend.close();
    if (work) rmSync(work, { recursive: true, force: true });
  }
}

export function addBenchServe(bench: Command): void {
  bench
    .command('serve')
    .description('dsa serve throughput over HTTP: requests/s and tokens/s at several concurrencies (default: a random tiny model)')
    .option('--model <dir>', 'model directory (default: a random tiny model in a temporary directory)')
    .option('--concurrency <list>', 'clients at once, comma-separated', (v: string) => {
      const list = v.split(',').map((s) => Number(s.trim()));
      if (list.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError('--concurrency must be positive integers, e.g. 1,16');
      return list;
    }, [1, 16])
    .option('--requests <n>', 'requests per concurrency level', intArg('--requests', 1), 32)
    .option('--prompt-len <n>', 'prompt tokens per request', intArg('--prompt-len', 1), 64)
    .option('--max-tokens <n>', 'generated tokens per request', intArg('--max-tokens', 1), 32)
    .option('--max-batch <n>', "the server's --max-batch", intArg('--max-batch', 1), 16)
    .option('--no-batch-invariant', 'faster single-sequence kernels (numbers depend on batching)')
    .option('--per-sequence', "the model's cache writes, indexer, top-k and attention once per sequence instead of once per step (for comparison)", false)
    .option('--json <file>', 'also write the setup and rows as JSON')
    .action(async (o: ServeBenchOptions) => {
      await runServeBench(o);
    });
}
