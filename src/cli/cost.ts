/** `dsa cost`: the paper's cost figure (Figure 3) for any model, hardware and price. */
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { writePlot } from '../bench/plot.js';
import { specFromConfig, v31Spec, v32Spec, type CostModelSpec } from '../cost/model.js';
import { DEFAULT_PRICE, GPUS, gpuProfile, HARDWARE, measuredProfile, readBenchFile, type GpuName, type Profile } from '../cost/profiles.js';
import { costJson, costPlot, costTable, type CostSetup } from '../cost/report.js';
import { io } from './io.js';
import { intArg } from './args.js';

export interface CostOptions {
  model?: string;
  hardware?: string;
  bench: string[];
  price: number;
  batch?: number;
  prefillDenseBelow?: number;
  json?: string;
  plot?: string;
}

function positiveNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

/** `v3.1`, `v3.2`, or a config.json path (or a model directory holding one). */
export function resolveModel(arg: string): CostModelSpec {
  if (arg === 'v3.1') return v31Spec();
  if (arg === 'v3.2') return v32Spec();
  const file = arg;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') return resolveModel(`${arg.replace(/\/+$/, '')}/config.json`);
    if (code === 'ENOENT') throw new Error(`${file}: file not found (--model takes v3.1, v3.2 or a config.json path)`);
    throw new Error(`${file}: cannot read (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: expected a JSON object (a config.json)`);
  return specFromConfig(raw as Record<string, unknown>, arg, file);
}

function resolveProfile(o: CostOptions): Profile {
  const hw = o.hardware ?? (o.bench.length > 0 ? 'measured' : 'h800');
  if (!(HARDWARE as readonly string[]).includes(hw)) throw new Error(`--hardware: unknown '${hw}' (known: ${HARDWARE.join(', ')})`);
  if (hw === 'measured') {
    if (o.bench.length === 0) throw new Error('--hardware measured needs --bench FILE (the output of `dsa bench attention --json`)');
    if (o.bench.length > 2) throw new Error('--bench: at most two files (one decode, one prefill)');
    return measuredProfile(o.bench, o.bench.map(readBenchFile));
  }
  if (o.bench.length > 0) throw new Error(`--bench is only read by --hardware measured (not ${hw})`);
  return gpuProfile(hw as GpuName);
}

/** Runs `dsa cost`; returns the printed report. */
export async function runCost(o: CostOptions): Promise<string> {
  const models = o.model === undefined ? [v31Spec(), v32Spec()] : [resolveModel(o.model)];
  const profile = resolveProfile(o);
  if (o.batch !== undefined) profile.deployment.batch = o.batch;
  if (o.prefillDenseBelow !== undefined) profile.deployment.prefillDenseBelow = o.prefillDenseBelow;
  const setup: CostSetup = { models, profile, price: o.price };
  let text = costTable(setup);
  if (o.json) {
    writeFileSync(o.json, `${JSON.stringify(costJson(setup), null, 2)}\n`);
    text += `wrote ${o.json}\n`;
  }
  if (o.plot) {
    writePlot(o.plot, await costPlot(setup));
    text += `wrote ${o.plot}\n`;
  }
  return text;
}

/** Adds `cost` to the program. */
export function addCost(program: Command): void {
  program
    .command('cost')
    .description("$ per million tokens against token position, prefill and decode: the paper's cost figure for any model, hardware and price")
    .option('--model <name>', 'v3.1 (V3.1-Terminus, dense MLA), v3.2 (V3.2-Exp, DSA), or a config.json path (DSA if it has index_topk); default: v3.1 and v3.2 side by side')
    .option('--hardware <name>', `${GPUS.join(', ')} (roofline over public peaks), or measured (rates from --bench) (default: h800, or measured with --bench)`)
    .option('--bench <file>', 'a `dsa bench attention --json` output for --hardware measured (give twice for a decode and a prefill file)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--price <usd>', 'price per GPU-hour in USD', positiveNumber('--price'), DEFAULT_PRICE)
    .option('--batch <n>', 'sequences per GPU per decode step (default: 128 on GPUs; for measured, the bench\'s batch)', intArg('--batch', 1))
    .option('--prefill-dense-below <n>', 'DSA prefill runs the masked dense mode below this position (default: wherever it is cheaper)', intArg('--prefill-dense-below', 0))
    .option('--json <file>', '$ per million tokens every 1K positions from 0 to 131072, per phase and model')
    .option('--plot <file>', 'the two-panel cost figure (.svg, or .png)')
    .action(async (o: CostOptions) => {
      io().out(await runCost(o));
    });
}
