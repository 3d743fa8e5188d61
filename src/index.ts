/** dsa: DeepSeek Sparse Attention (DeepSeek-V3.2) in TypeScript — the library entry point. */
export type { Backend, Tensor, Weight, HostWeight, DType, SeqPages, RouteOptions, LatentFormat } from './backend/backend.js';
export { LATENT_FORMATS, latentRowWidth, latentRowBytes } from './backend/backend.js';
export { CpuBackend } from './backend/cpu.js';
export { WebGpuBackend } from './backend/webgpu.js';
export { createBackend, BACKENDS } from './backend/registry.js';
export { Model, DEFAULT_CHUNK, type PrefillOptions, type LogitRows } from './model/model.js';
export { KVCache, Sequence, PAGE_SIZE, CacheFullError } from './model/cache.js';
export { loadConfig, parseConfig, ConfigError, type ModelConfig } from './model/config.js';
export type { Forcing, Observer, StepOptions } from './model/step.js';
export { ChoiceRecorder } from './model/record.js';
export { Replay } from './model/replay.js';
export { compareFiles, diffLogits, compareSets } from './model/compare.js';
export { writeRandomModel, tinyConfigJson } from './model/random-model.js';
export { Checkpoint } from './io/checkpoint.js';
export { SafetensorsFile, SafetensorsError } from './io/safetensors.js';
export { writeSafetensors } from './io/safetensors-writer.js';
export { Sampler, Rng } from './generate/sampler.js';
export * from './numerics/index.js';
export {
  openTokenSource, MemoryTokens, FileTokens, TokenFileWriter, writeTokenFile, readTokenFileHeader, loadTokenizer, ByteTokenizer, HfTokenizer,
  TokenBatchLoader, MixedBatchLoader, splitRange, validationBatches, checkBatchVocab,
  type TokenSource, type TextTokenizer, type Batch, type BatchSource, type LoaderState,
} from './train/data/index.js';
export {
  createTask, PasskeyTask, RecallTask, TaskBatchLoader, evaluate as evaluateTask, modelLogitsFn, taskTable, accuracyPlot,
  type SyntheticTask, type TaskSample, type TaskEval, type LogitsFn, type BatchLogitsFn,
} from './train/tasks/index.js';
export { MetricsLogger, readMetrics, type MetricRecord } from './train/metrics.js';
export { plotMetrics, metricsPlotSpec } from './train/plot-metrics.js';
export { Tape, Var, CpuTrainBackend, type TrainBackend } from './autograd/index.js';
export { TrainModel, smallConfigJson } from './train/model.js';
export { Trainer, defaultTrainOptions, type TrainOptions, type StepMetrics } from './train/trainer.js';
export { saveTrainer, loadTrainer } from './train/checkpoint.js';
export { forward as trainForward } from './train/forward.js';
export { indexerRecall } from './train/recall.js';
export { evaluateModel } from './train/report.js';
export { runExperiment, smokePlan, fullPlan } from './train/experiment.js';
export type { Stage } from './train/stages.js';
