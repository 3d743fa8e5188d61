/** `dsa plot` (loss curves from metrics logs), `dsa tokenize` (text to a token file) and `dsa task` (synthetic task samples). */
import { dirname, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { writePlot } from '../bench/plot.js';
import { readMetrics } from '../train/metrics.js';
import { metricsCurves, plotMetrics, runLabel, type MetricsPlotOptions, type MetricsRun } from '../train/plot-metrics.js';
import { loadTokenizer } from '../train/data/tokenizer.js';
import { tokenizeFiles } from '../train/data/tokenize.js';
import { checkSeed } from '../train/data/seed.js';
import { createTask, describeSample, evalSample, TASK_NAMES } from '../train/tasks/index.js';
import { io } from './io.js';
import { intArg } from './args.js';

const collect = (v: string, acc: string[]): string[] => [...acc, v];

function smoothArg(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError('--smooth must be a number in [0, 1)');
  return n;
}

export interface PlotCommandOptions {
  metrics: string[];
  label: string[];
  y: string;
  x: string;
  smooth: number;
  title?: string;
  maxPoints: number;
  /** Default: FIELDS.svg beside the first metrics file (e.g. run/loss-kl.svg). */
  out?: string;
}

const fmt = (v: number): string => (Math.abs(v) >= 1000 ? String(Math.round(v * 100) / 100) : String(Number(v.toPrecision(4))));

/** Runs `dsa plot`; returns the summary it prints. */
export async function runPlot(o: PlotCommandOptions): Promise<string> {
  if (o.metrics.length === 0) throw new Error('--metrics: give at least one metrics .jsonl file');
  if (o.label.length > 0 && o.label.length !== o.metrics.length) throw new Error(`--label: ${o.label.length} labels for ${o.metrics.length} metrics files (give one per file, in order)`);
  const y = o.y.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (y.length === 0) throw new Error('--y: give at least one field');
  const out = o.out ?? join(dirname(o.metrics[0]!), `${y.join('-').replace(/[^\w.-]+/g, '_')}.svg`);
  if (!/\.(svg|png)$/i.test(out)) throw new Error(`--out: ${out} must end in .svg or .png`);
  const runs: MetricsRun[] = o.metrics.map((file, i) => {
    const { records, partialLastLine } = readMetrics(file);
    if (partialLastLine) io().err(`${file}: skipped a partial last line (a run killed while writing)\n`);
    if (records.length === 0) throw new Error(`${file}: no records`);
    return { label: o.label[i] ?? runLabel(file), records };
  });
  const labels = runs.map((r) => r.label);
  runs.forEach((r, i) => {
    if (labels.indexOf(r.label) !== i) r.label = o.metrics[i]!;
  });
  const opts: MetricsPlotOptions = { y, x: o.x, smooth: o.smooth, title: o.title, maxPoints: o.maxPoints };
  writePlot(out, await plotMetrics(runs, opts));
  const lines = metricsCurves(runs, { ...opts, smooth: 0, maxPoints: Infinity }).map((c) => {
    const p = c.points;
    const min = p.reduce((a, b) => (b.value < a.value ? b : a));
    return `${c.series} ${c.metric}: ${fmt(p[0]!.value)} → ${fmt(p.at(-1)!.value)} over ${o.x} ${fmt(p[0]!.x)}..${fmt(p.at(-1)!.x)} (${p.length} points, min ${fmt(min.value)} at ${fmt(min.x)})`;
  });
  return `${lines.join('\n')}\nwrote ${out}\n`;
}

export function addPlot(program: Command): void {
  program
    .command('plot')
    .description('loss curves from training metrics logs (JSONL): one line per run and stage, one panel per field, as SVG or PNG')
    .option('--metrics <file>', 'a metrics .jsonl written by `dsa train` (repeat for several runs)', collect, [] as string[])
    .option('--label <name>', "a run's name in the legend, one per --metrics in order (default: the run's folder or file name)", collect, [] as string[])
    .option('--y <fields>', 'comma-separated fields to plot, one panel each (e.g. loss,kl)', 'loss')
    .option('--x <field>', 'the x axis field', 'step')
    .option('--smooth <w>', 'exponential moving average weight in [0, 1) (0 = raw; the raw curve is drawn faintly behind)', smoothArg, 0)
    .option('--title <text>', 'chart title')
    .option('--max-points <n>', 'points kept per line (evenly thinned beyond)', intArg('--max-points', 2), 1000)
    .option('--out <file>', 'output .svg or .png (default: FIELDS.svg beside the first metrics file, e.g. run/loss.svg)')
    .action(async (o: PlotCommandOptions) => {
      io().out(await runPlot(o));
    });
}

export function addTokenize(program: Command): void {
  program
    .command('tokenize')
    .description('text files to a token file (llm.c format: 1024-byte header, uint16/uint32 ids) for `dsa train`; each document ends in EOS')
    .argument('<inputs...>', 'text files (one document each) or .jsonl files (one {"text": ...} document a line)')
    .requiredOption('--out <file>', 'output token file (.bin)')
    .option('--tokenizer <path>', 'tokenizer.json (or a folder holding one); default: byte-level (ids 0..255 bytes, 256 BOS, 257 EOS, 258 PAD)')
    .option('-v, --verbose', 'a line per input file on stderr', false)
    .action(async (inputs: string[], o: { out: string; tokenizer?: string; verbose: boolean }) => {
      const tok = loadTokenizer(o.tokenizer);
      const started = Date.now();
      const r = await tokenizeFiles(inputs, o.out, tok, (file, docs, tokens) => {
        if (o.verbose) io().err(`${file}: done, ${docs} document(s) and ${tokens} tokens so far\n`);
      });
      const s = (Date.now() - started) / 1000;
      const dtype = r.vocabSize <= 65536 ? 'uint16' : 'uint32';
      io().out(`${r.documents} document(s), ${r.tokens} tokens from ${r.textBytes} bytes of text (${(r.textBytes / Math.max(r.tokens, 1)).toFixed(2)} bytes/token; tokenizer ${tok.name}, vocabulary ${r.vocabSize}, ${dtype} ids) in ${s.toFixed(2)} s\nwrote ${o.out}\n`);
    });
}

export function addTask(program: Command): void {
  program
    .command('task')
    .description('show samples of a synthetic task (what training reads and evaluation scores), one a line, or as JSON')
    .argument('<name>', `task: ${TASK_NAMES.join(', ')}`)
    .requiredOption('--vocab <n>', "the model's vocabulary size", intArg('--vocab', 1))
    .requiredOption('--context <n>', 'context length (tokens the model reads)', intArg('--context', 1))
    .option('--samples <n>', 'how many', intArg('--samples', 1), 1)
    .option('--seed <n>', 'evaluation seed (sample i is the i-th evaluation sample of this seed)', (v: string) => Number(v), 1)
    .option('--pairs <n>', 'recall: key→value records', intArg('--pairs', 1))
    .option('--queries <n>', 'recall: questions', intArg('--queries', 1))
    .option('--key-length <n>', 'ids per key', intArg('--key-length', 1))
    .option('--value-length <n>', 'ids per value (the answer)', intArg('--value-length', 1))
    .option('--json', 'JSON lines {tokens, mask, answers}', false)
    .action((name: string, o: { vocab: number; context: number; samples: number; seed: number; pairs?: number; queries?: number; keyLength?: number; valueLength?: number; json: boolean }) => {
      const task = createTask(name, o.vocab, { pairs: o.pairs, queries: o.queries, keyLength: o.keyLength, valueLength: o.valueLength });
      for (let i = 0; i < o.samples; i++) {
        const s = evalSample(task, o.context, checkSeed(o.seed, '--seed'), i);
        io().out(o.json ? `${JSON.stringify({ tokens: Array.from(s.tokens), mask: Array.from(s.mask), answers: s.answers })}\n` : `${describeSample(task.vocab, s)}\n`);
      }
    });
}
