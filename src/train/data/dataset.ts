/**
 * Training data from what a command line names: a token or text file, or a synthetic task, or a
 * mixture of both; with its validation batches. What `dsa train` calls.
 */
import { createTask, samplesBatch, TaskBatchLoader, type TaskOptions } from '../tasks/loader.js';
import { evalSample } from '../tasks/evaluate.js';
import { MixedBatchLoader } from './mixed.js';
import { splitRange, TokenBatchLoader, validationBatches, type Batch, type BatchSource } from './batches.js';
import { openTokenSource, type TokenSource } from './source.js';
import type { TokenDType } from './token-file.js';

export interface TrainingDataOptions {
  /** A token file, safetensors, JSON ids, JSONL or text file (see openTokenSource). */
  data?: string;
  /** tokenizer.json for text data (default: byte-level). */
  tokenizer?: string;
  /** Dtype of a headerless token file. */
  dtype?: TokenDType;
  /** A synthetic task ('passkey', 'recall'), alone or mixed with `data`. */
  task?: string;
  taskOptions?: TaskOptions;
  /** Share of batches from the task when both `data` and `task` are given (default 0.5). */
  taskWeight?: number;
  /** Held-out share of the token stream (default 0.05). */
  valFraction?: number;
  /** Validation batches at most (default 8). */
  valBatches?: number;
  seqLen: number;
  batchSize: number;
  seed: number;
  /** The model's vocabulary: ids must be below it. */
  vocabSize: number;
}

export interface TrainingData {
  train: BatchSource;
  /** Fixed validation batches: valTokens then valTask. */
  val: Batch[];
  /** Consecutive windows of the held-out tokens (no mask). */
  valTokens: Batch[];
  /** The task's evaluation samples (answer mask). */
  valTask: Batch[];
  /** One line describing the data, for logs. */
  describe: string;
  source: TokenSource | null;
  close(): void;
}

/** `count` batches of the task's evaluation samples (apart from its training samples). */
function taskValBatches(loader: TaskBatchLoader, count: number, seed: number): Batch[] {
  const { batchSize: B, seqLen: T, task } = loader;
  return Array.from({ length: count }, (_, i) => samplesBatch(Array.from({ length: B }, (_, b) => evalSample(task, T, seed, i * B + b)), T));
}

export function openTrainingData(o: TrainingDataOptions): TrainingData {
  if (o.data === undefined && o.task === undefined) throw new Error('no training data: give a data file or a task');
  const shape = { seqLen: o.seqLen, batchSize: o.batchSize, seed: o.seed };
  const valBatches = o.valBatches ?? 8;
  const parts: Array<{ source: BatchSource; weight: number }> = [];
  const valTokens: Batch[] = [];
  const valTask: Batch[] = [];
  const what: string[] = [];
  let source: TokenSource | null = null;
  if (o.data !== undefined) {
    source = openTokenSource(o.data, { tokenizer: o.tokenizer, dtype: o.dtype });
    if (source.vocabSize !== null && source.vocabSize > o.vocabSize) {
      source.close();
      throw new Error(`${o.data}: its vocabulary (${source.vocabSize} ids) is larger than the model's (${o.vocabSize})`);
    }
    const split = splitRange(source.length, o.valFraction ?? 0.05);
    parts.push({ source: new TokenBatchLoader(source, { ...shape, range: split.train }), weight: 1 - (o.task ? (o.taskWeight ?? 0.5) : 0) });
    if (split.val.end > split.val.begin) valTokens.push(...validationBatches(source, split.val, { seqLen: o.seqLen, batchSize: o.batchSize, maxBatches: valBatches }));
    what.push(`${o.data}: ${source.length} tokens (${split.train.end} train, ${split.val.end - split.val.begin} validation)`);
  }
  if (o.task !== undefined) {
    const loader = new TaskBatchLoader(createTask(o.task, o.vocabSize, o.taskOptions), shape);
    parts.push({ source: loader, weight: o.data !== undefined ? (o.taskWeight ?? 0.5) : 1 });
    valTask.push(...taskValBatches(loader, Math.max(1, Math.ceil(valBatches / parts.length)), o.seed));
    what.push(`task ${loader.data}`);
  }
  const weights = parts.map((p) => p.weight);
  if (weights.some((w) => !(w > 0))) throw new RangeError(`the task weight must be in (0, 1), got ${o.taskWeight}`);
  const train = parts.length === 1 ? parts[0]!.source : new MixedBatchLoader(parts, o.seed);
  return { train, val: [...valTokens, ...valTask], valTokens, valTask, describe: what.join(' + '), source, close: () => source?.close() };
}
