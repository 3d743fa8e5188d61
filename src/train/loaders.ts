/**
 * The batch loaders a run trains and evaluates on, from a data spec: a token file / text (via the
 * data layer's openTokenSource: llm.c .bin, safetensors, JSON ids, text through tokenizer.json or
 * byte-level) split into train and held-out ranges, or a synthetic task generated on the fly.
 */
import { openTokenSource, splitRange, TokenBatchLoader, validationBatches, type Batch, type BatchSource } from './data/index.js';
import { createTask, TaskBatchLoader, type SyntheticTask, type TaskOptions } from './tasks/index.js';

export interface DataSpec {
  /** A token or text file. */
  data?: string;
  tokenizer?: string;
  /** A synthetic task: 'passkey' or 'recall'. */
  task?: string;
  taskOptions?: TaskOptions;
}

/** Held-out share of a token file. */
export const VAL_FRACTION = 0.05;
/** Seeds of held-out task batches are offset from training seeds by this much. */
const VAL_SEED_OFFSET = 0x7fff;

export function describeData(spec: DataSpec): string {
  return spec.task ? `task ${spec.task}${spec.taskOptions ? ` ${JSON.stringify(spec.taskOptions)}` : ''}` : `file ${spec.data}`;
}

function checkSpec(spec: DataSpec): void {
  if (!spec.task === !spec.data) throw new Error('give exactly one of --data FILE or --task passkey|recall');
}

export function taskOf(spec: DataSpec, vocabSize: number): SyntheticTask {
  return createTask(spec.task!, vocabSize, spec.taskOptions ?? {});
}

export function trainLoader(spec: DataSpec, vocabSize: number, batchSize: number, seqLen: number, seed: number): BatchSource {
  checkSpec(spec);
  if (spec.task) return new TaskBatchLoader(taskOf(spec, vocabSize), { seed, batchSize, seqLen });
  const source = openTokenSource(spec.data!, { tokenizer: spec.tokenizer });
  if (source.vocabSize !== null && source.vocabSize > vocabSize) {
    throw new Error(`${spec.data}: its vocabulary (${source.vocabSize}) is larger than the model's (${vocabSize})`);
  }
  return new TokenBatchLoader(source, { seed, batchSize, seqLen, range: splitRange(source.length, VAL_FRACTION).train });
}

/** Held-out batches: the file's validation tail, or task batches from a seed training never uses. */
export function heldOutBatches(spec: DataSpec, vocabSize: number, batchSize: number, seqLen: number, count: number, seed: number): Batch[] {
  checkSpec(spec);
  if (spec.task) {
    const loader = new TaskBatchLoader(taskOf(spec, vocabSize), { seed: (seed + VAL_SEED_OFFSET) >>> 0, batchSize, seqLen });
    return Array.from({ length: count }, (_, i) => loader.batchAt(i));
  }
  const source = openTokenSource(spec.data!, { tokenizer: spec.tokenizer });
  return validationBatches(source, splitRange(source.length, VAL_FRACTION).val, { seqLen, batchSize, maxBatches: count });
}
