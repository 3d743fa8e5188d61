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
export { Sampler, Rng, TokenSampler, sampleCategorical, argmax, seededUniform } from './generate/sampler.js';
export { samplingParamsSchema, parseSamplingParams, SamplingParamsError, stopStrings, isGreedy, type SamplingParams, type SamplingParamsInput } from './generate/params.js';
export * from './generate/logits-processors.js';
export { StopStrings, StoppingCriteria, stoppingOptions, type FinishReason, type StoppingOptions } from './generate/stopping.js';
export { TokenStreamer, type StreamStep, type StreamerOptions } from './generate/streamer.js';
export { TextTokenizer, TokenizerError, type ChatMessage, type ChatTemplateOptions } from './text/tokenizer.js';
export { IncrementalDetokenizer, type Decoder, type DetokenizerOptions } from './text/detokenizer.js';
export { DEEPSEEK_CHAT_TEMPLATE } from './text/chat-template.js';
export { writeTinyModel } from './cli/make-tiny.js';
export * from './numerics/index.js';
export { Engine, type EngineOptions, type EngineStats } from './engine/engine.js';
export { EngineRequest, RequestError, QueueFullError, type GenerationRequest, type FinishReason as EngineFinishReason } from './engine/request.js';
export { PrefixCache } from './engine/prefix-cache.js';
export { startServer, type ServeOptions, type RunningServer } from './serve/server.js';
export { createApp } from './serve/app.js';
export {
  openTokenSource, MemoryTokens, FileTokens, TokenFileWriter, writeTokenFile, readTokenFileHeader, loadTokenizer, ByteTokenizer, HfTokenizer,
  TokenBatchLoader, MixedBatchLoader, splitRange, validationBatches, checkBatchVocab,
  type TokenSource, type TextTokenizer as TrainTokenizer, type Batch, type BatchSource, type LoaderState,
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
