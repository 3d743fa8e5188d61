/** The synthetic tasks by name, and their training batches. */
import { itemRng } from '../data/seed.js';
import { SeededLoader, type Batch, type LoaderOptions } from '../data/batches.js';
import { PasskeyTask, type PasskeyOptions } from './passkey.js';
import { RecallTask, type RecallOptions } from './recall.js';
import { taskVocab, type SyntheticTask, type TaskSample } from './task.js';

export const TASK_NAMES = ['passkey', 'recall'] as const;
export type TaskName = (typeof TASK_NAMES)[number];

export type TaskOptions = PasskeyOptions & RecallOptions;

/** A task by name over a vocabulary of `vocabSize` ids (the model's). */
export function createTask(name: string, vocabSize: number, opts: TaskOptions = {}): SyntheticTask {
  const vocab = taskVocab(vocabSize);
  if (name === 'passkey') return new PasskeyTask(vocab, opts);
  if (name === 'recall') return new RecallTask(vocab, opts);
  throw new Error(`unknown task '${name}' (known: ${TASK_NAMES.join(', ')})`);
}

/** Training batches of a task: row r of batch i is the sample drawn from (seed, i·B + r); the loss mask selects the answers. */
export class TaskBatchLoader extends SeededLoader {
  constructor(
    readonly task: SyntheticTask,
    opts: LoaderOptions,
  ) {
    super('task', opts);
    if (opts.seqLen < task.minContextLength) throw new RangeError(`${task.name}: seq_len ${opts.seqLen} is shorter than the task needs (${task.minContextLength})`);
  }

  get data(): string {
    const t = this.task as SyntheticTask & Record<string, unknown>;
    const params = ['keyLength', 'valueLength', 'pairs', 'queries'].filter((k) => typeof t[k] === 'number').map((k) => `${k}=${t[k]}`);
    return `${this.task.name}(V=${this.task.vocab.vocabSize}${params.map((p) => `,${p}`).join('')})`;
  }

  batchAt(index: number): Batch {
    const { batchSize: B, seqLen: T } = this;
    return samplesBatch(Array.from({ length: B }, (_, b) => this.task.sample(T, itemRng(this.seed, index * B + b))), T);
  }
}

/** Samples of one context length T as a batch: inputs, targets and the answer mask. */
export function samplesBatch(samples: readonly TaskSample[], T: number): Batch {
  const B = samples.length;
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const mask = new Uint8Array(B * T);
  samples.forEach((s, b) => {
    inputs.set(s.tokens.subarray(0, T), b * T);
    targets.set(s.tokens.subarray(1), b * T);
    mask.set(s.mask, b * T);
  });
  return { batchSize: B, seqLen: T, inputs, targets, mask };
}
