#!/usr/bin/env node
/** The `dsa` command line: logits, generate, inspect, compare, random-model, make-tiny. */
import { readJsonFile } from '../io/text-file.js';
import { Command, CommanderError } from 'commander';
import { closeBackends, createBackend, BACKENDS, type BackendName } from '../backend/registry.js';
import { CACHE_HELP, INDEXER_CACHE_HELP, indexerCacheArg, intArg, latentCacheArg, numArg } from './args.js';
import { Model } from '../model/model.js';
import { runLogits } from './logits.js';
import { generate, loadTokenizer, promptFromText } from './generate.js';
import { runInspect } from './inspect.js';
import { runCompare } from './compare.js';
import { writeRandomModel } from '../model/random-model.js';
import { benchTopkCommand } from '../bench/topk.js';
import { benchMatmulCommand, defaultShapes, OUR_FORMATS, parseShapes, quickShapes, type OurFormat } from '../bench/matmul.js';
import { addBenchAttention } from './bench.js';
import { addBenchGpu } from './bench-gpu.js';
import { addCost } from './cost.js';
import { addServe } from './serve.js';
import { addBenchServe } from '../bench/serve.js';
import { addMakeTiny, parseConfigOverrides } from './make-tiny.js';
import { addBenchTrain } from '../bench/train.js';
import { addBenchIndexerInt8 } from '../bench/indexer-int8.js';
import { addTrain } from './train.js';
import { addEval } from './eval.js';
import { addExperiment } from './experiment.js';
import { addPlot, addTask, addTokenize } from './train-data.js';
import { io, withIo, type CliIo } from './io.js';

/** Reads a JSON array of token ids. */
export function readPromptIds(file: string): Int32Array {
  const raw = readJsonFile(file);
  if (!Array.isArray(raw) || raw.length === 0) throw new Error(`${file}: expected a non-empty JSON array of token ids`);
  const bad = raw.findIndex((v) => !Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1);
  if (bad >= 0) throw new Error(`${file}: element ${bad} (${JSON.stringify(raw[bad])}) is not a token id`);
  return Int32Array.from(raw as number[]);
}

function checkVocab(ids: Int32Array, vocab: number, file: string): void {
  const bad = ids.findIndex((v) => v >= vocab);
  if (bad >= 0) throw new Error(`${file}: token id ${ids[bad]} at index ${bad} is outside the vocabulary (0..${vocab - 1})`);
}

async function loadModel(dir: string, backend: BackendName, verbose: boolean): Promise<Model> {
  const started = Date.now();
  const model = Model.load(dir, await createBackend(backend));
  if (verbose) io().err(`loaded ${dir} on ${backend} in ${((Date.now() - started) / 1000).toFixed(2)} s\n`);
  return model;
}

function backendOption(cmd: Command): Command {
  return cmd.option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, 'cpu').option('-v, --verbose', 'log progress and timings to stderr', false);
}

export function buildProgram(): Command {
  const program = new Command('dsa')
    .description('DeepSeek Sparse Attention (DeepSeek-V3.2) in TypeScript')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io().out(s), writeErr: (s) => io().err(s) });

  backendOption(
    program
      .command('logits')
      .description('prefill a prompt, run N greedy decode steps, and write logits, top-k selections and expert routes as safetensors')
      .requiredOption('--model <dir>', 'model directory (config.json + safetensors)')
      .requiredOption('--prompt-ids <file>', 'JSON array of token ids')
      .option('--decode <n>', 'greedy decode steps after the prefill', intArg('--decode', 0), 0)
      .requiredOption('--out <file>', 'output .safetensors')
      .option('--force <ref>', 'replay the top-k selections, expert routes and decode tokens recorded in this safetensors file')
      .option('--dense', 'dense attention (no top-k selection): the baseline DSA is compared with', false)
      .option('--chunk <n>', 'prefill query rows per chunk', intArg('--chunk', 1))
      .option('--cache <format>', CACHE_HELP, latentCacheArg, 'f32')
      .option('--indexer-cache <format>', INDEXER_CACHE_HELP, indexerCacheArg, 'fp8'),
  ).action(async (o) => {
    const model = await loadModel(o.model, o.backend, o.verbose);
    const prompt = readPromptIds(o.promptIds);
    checkVocab(prompt, model.config.vocabSize, o.promptIds);
    await runLogits({ model, prompt, decode: o.decode, out: o.out, force: o.force, dense: o.dense, chunk: o.chunk, cache: o.cache, indexerCache: o.indexerCache, verbose: o.verbose });
    if (o.verbose) io().err(`wrote ${o.out}\n`);
  });

  backendOption(
    program
      .command('generate')
      .description('generate after a prompt (token ids, or text through the model\'s tokenizer) and print the new text or token ids')
      .requiredOption('--model <dir>', 'model directory')
      .option('--prompt-ids <file>', 'JSON array of token ids (the output is token ids on one line)')
      .option('--prompt <text>', "prompt text, tokenized with the model's tokenizer (the output is text, streamed)")
      .option('--chat', 'with --prompt: send it as a user message through the chat template', false)
      .option('--system <text>', 'with --chat: a system message first')
      .option('--ids', 'print the new token ids instead of text', false)
      .requiredOption('--max-new-tokens <n>', 'tokens to generate', intArg('--max-new-tokens', 1))
      .option('--temperature <t>', 'sampling temperature (0 = greedy)', numArg('--temperature', 0), 0)
      .option('--top-p <p>', 'nucleus sampling: keep the most likely tokens up to this probability mass', numArg('--top-p', 0), 1)
      .option('--top-k <k>', 'keep the k most likely tokens (0 = all)', intArg('--top-k', 0), 0)
      .option('--min-p <p>', 'keep tokens at least this fraction as likely as the most likely one', numArg('--min-p', 0), 0)
      .option('--repetition-penalty <r>', 'penalize tokens already in the prompt or output (> 1 discourages)', numArg('--repetition-penalty', 0), 1)
      .option('--seed <s>', 'random seed for sampling', intArg('--seed', 0), 0)
      .option('--stop <text>', 'stop before this text (repeatable; not printed)', (v: string, prev: string[]) => [...prev, v], [] as string[])
      .option('--eos', 'stop early at the end-of-sequence token (the tokenizer\'s, else config eos_token_id)', false)
      .option('--chunk <n>', 'prefill query rows per chunk', intArg('--chunk', 1))
      .option('--cache <format>', CACHE_HELP, latentCacheArg, 'bf16')
      .option('--indexer-cache <format>', INDEXER_CACHE_HELP, indexerCacheArg, 'fp8'),
  ).action(async (o) => {
    if ((o.prompt === undefined) === (o.promptIds === undefined)) throw new Error('give exactly one of --prompt TEXT and --prompt-ids FILE');
    if (o.chat && o.prompt === undefined) throw new Error('--chat needs --prompt TEXT');
    if (o.system !== undefined && !o.chat) throw new Error('--system goes with --chat');
    const tokenizer = loadTokenizer(o.model, o.prompt !== undefined || o.stop.length > 0);
    const model = await loadModel(o.model, o.backend, o.verbose);
    const prompt = o.promptIds !== undefined ? readPromptIds(o.promptIds) : Int32Array.from(promptFromText(tokenizer!, o.prompt, o.chat, o.system));
    checkVocab(prompt, model.config.vocabSize, o.promptIds ?? '--prompt');
    const printText = tokenizer !== null && o.prompt !== undefined && !o.ids;
    const result = await generate({
      model,
      prompt,
      maxNewTokens: o.maxNewTokens,
      sampling: { temperature: o.temperature, top_p: o.topP, top_k: o.topK, min_p: o.minP, repetition_penalty: o.repetitionPenalty, seed: o.seed, stop: o.stop },
      stopAtEos: o.eos,
      tokenizer,
      onText: printText ? (t) => io().out(t) : undefined,
      chunk: o.chunk,
      cache: o.cache,
      indexerCache: o.indexerCache,
      verbose: o.verbose,
    });
    io().out(printText ? '\n' : `${result.ids.join(' ')}\n`);
    if (o.verbose) io().err(`finish reason: ${result.finishReason}, ${result.ids.length} tokens\n`);
  });

  program
    .command('inspect')
    .description('config summary, parameter count, tensor dtypes and the memory a model needs')
    .argument('<dir>', 'model directory')
    .option('--json', 'print JSON instead of text', false)
    .action((dir: string, o: { json: boolean }) => {
      io().out(runInspect(dir, o.json));
    });

  program
    .command('compare')
    .description('compare a `dsa logits` output with a reference (e.g. a fixture\'s expected.safetensors): logits, selections, routes, tokens')
    .argument('<run>', 'safetensors written by `dsa logits`')
    .argument('<ref>', 'reference safetensors in the same layout')
    .option('--json', 'print JSON instead of text', false)
    .action((run: string, ref: string, o: { json: boolean }) => {
      io().out(runCompare(run, ref, o.json));
    });

  program
    .command('random-model')
    .description('write a small DeepSeek-V3.2 checkpoint with seeded random weights (config.json + model.safetensors)')
    .requiredOption('--out <dir>', 'output directory')
    .option('--seed <n>', 'random seed', intArg('--seed', 0), 1)
    .option('--fp8', 'FP8 e4m3 block-quantized projections (as the real checkpoints)', false)
    .option('--config <json>', 'config.json keys to override, as a JSON object (e.g. \'{"index_topk": 64}\')')
    .action((o: { out: string; seed: number; fp8: boolean; config?: string }) => {
      writeRandomModel(o.out, { seed: o.seed, fp8: o.fp8, config: parseConfigOverrides(o.config) });
      io().out(`${o.out}\n`);
    });
  addMakeTiny(program, intArg('--seed', 0));

  const bench = program.command('bench').description('benchmarks: print their setup and numbers');
  addBenchAttention(bench);
  addBenchGpu(bench);
  addBenchServe(bench);
  addBenchTrain(bench);
  addBenchIndexerInt8(bench);
  bench
    .command('topk')
    .description('CPU top-k selection per row: quickselect (reference) against radix selection')
    .option('--keys <n>', 'keys per row (S)', intArg('--keys', 1), 131072)
    .option('--k <n>', 'keys selected per row', intArg('--k', 1), 2048)
    .option('--rows <n>', 'rows per timed call', intArg('--rows', 1), 4)
    .option('--runs <n>', 'timed runs', intArg('--runs', 1), 9)
    .option('--seed <n>', 'random seed', intArg('--seed', 0), 1)
    .option('--json <file>', 'also write all numbers as JSON')
    .action(async (o: { keys: number; k: number; rows: number; runs: number; seed: number; json?: string }) => {
      await benchTopkCommand({ nKeys: o.keys, k: o.k, rows: o.rows, runs: o.runs, seed: o.seed, json: o.json });
    });
  bench
    .command('matmul')
    .description("our linear (f32, bf16, fp8, fp8 + activation quantization) against onnxruntime-node's CPU MatMul, GFLOP/s, plus memory bandwidth")
    .option('--shapes <list>', "'M,K,N;M,K,N...' (default: M 1, 64, 256 × q_a, q_b, o_proj, expert)")
    .option('--quick', 'a small set of shapes', false)
    .option('--formats <list>', `our weight formats, comma-separated: ${OUR_FORMATS.join(', ')}`, OUR_FORMATS.join(','))
    .option('--ort-threads <n>', 'ORT intra-op threads (default: every core)', intArg('--ort-threads', 1))
    .option('--no-ort', 'skip onnxruntime-node')
    .option('--runs <n>', 'timed runs per measurement (a first run longer than --budget-ms is the only one)', intArg('--runs', 1), 10)
    .option('--budget-ms <n>', 'time budget per measurement', intArg('--budget-ms', 1), 2000)
    .option('--bandwidth-mib <n>', 'buffer size of the bandwidth measurement (0 = skip)', intArg('--bandwidth-mib', 0), 256)
    .option('--rotate-mib <n>', 'for M ≤ 16, rotate weight copies adding up to this size so they are not cached (0 = off)', intArg('--rotate-mib', 0), 128)
    .option('--json <file>', 'also write all numbers as JSON')
    .action(
      async (o: {
        shapes?: string;
        quick: boolean;
        formats: string;
        ortThreads?: number;
        ort: boolean;
        runs: number;
        budgetMs: number;
        bandwidthMib: number;
        rotateMib: number;
        json?: string;
      }) => {
        const formats = o.formats
          .split(',')
          .map((f) => f.trim())
          .filter((f) => f.length > 0);
        const bad = formats.find((f) => !(OUR_FORMATS as readonly string[]).includes(f));
        if (bad !== undefined) throw new Error(`--formats: unknown format '${bad}' (known: ${OUR_FORMATS.join(', ')})`);
        await benchMatmulCommand({
          shapes: o.shapes ? parseShapes(o.shapes) : o.quick ? quickShapes() : defaultShapes(),
          formats: formats as OurFormat[],
          ortThreads: o.ortThreads,
          noOrt: !o.ort,
          runs: o.runs,
          budgetMs: o.budgetMs,
          bandwidthMiB: o.bandwidthMib,
          rotateMiB: o.rotateMib,
          json: o.json,
        });
      },
    );

  addCost(program);
  addServe(program);
  addTrain(program);
  addEval(program);
  addExperiment(program);
  addTokenize(program);
  addPlot(program);
  addTask(program);

  return program;
}

/**
 * Runs the CLI; returns the exit code. Errors are printed as one clear line, never a stack trace.
 * `sink` receives the output instead of stdout/stderr (tests).
 */
export async function main(argv: string[], sink?: CliIo): Promise<number> {
  return sink ? withIo(sink, () => run(argv)) : run(argv);
}

async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    const err = e as Error;
    io().err(`dsa: ${err.message}\n`);
    if (process.env.DSA_DEBUG) io().err(`${err.stack}\n`);
    return 1;
  } finally {
    // Release GPU devices: Dawn would otherwise keep the process alive.
    closeBackends();
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (invokedDirectly) process.exitCode = await main(process.argv.slice(2));
