/**
 * The batches a run trains and evaluates on, from what the command line names: a token/text file,
 * a synthetic task, or both mixed — through the data layer's openTrainingData.
 */
import { openTrainingData, type Batch, type BatchSource, type TrainingDataOptions } from './data/index.js';
import { createTask, type SyntheticTask } from './tasks/index.js';

export type DataSpec = Omit<TrainingDataOptions, 'seqLen' | 'batchSize' | 'seed' | 'vocabSize' | 'valBatches'>;

export function describeData(spec: DataSpec): string {
  const task = spec.task ? `task ${spec.task}${spec.taskOptions && Object.keys(spec.taskOptions).length > 0 ? ` ${JSON.stringify(spec.taskOptions)}` : ''}` : '';
  return [spec.data ? `file ${spec.data}` : '', task].filter((s) => s !== '').join(' + ');
}

/** The task of the spec (to score), or null when it has none. */
export function taskOf(spec: DataSpec, vocabSize: number): SyntheticTask | null {
  return spec.task ? createTask(spec.task, vocabSize, spec.taskOptions ?? {}) : null;
}

export function trainLoader(spec: DataSpec, vocabSize: number, batchSize: number, seqLen: number, seed: number): BatchSource {
  return openTrainingData({ ...spec, vocabSize, batchSize, seqLen, seed, valBatches: 1 }).train;
}

/** Held-out batches: the file's validation windows and the task's evaluation samples (at most `count`). */
export function heldOutBatches(spec: DataSpec, vocabSize: number, batchSize: number, seqLen: number, count: number, seed: number): Batch[] {
  const d = openTrainingData({ ...spec, vocabSize, batchSize, seqLen, seed, valBatches: count });
  d.close();
  return d.val.slice(0, count);
}
