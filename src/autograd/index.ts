/** Reverse-mode autodiff for training: Vars on a Tape, ops with their backward, and the raw kernels behind them. */
export { Tape, Var, param, constant, detach } from './var.js';
export type { TrainBackend, AttentionDims, IndexerDims } from './backend.js';
export { CpuTrainBackend } from './cpu-backend.js';
export { causalKeys, topkKeys, gatherByKeys, type KeySets } from './keysets.js';
export { linear } from './ops/linear.js';
export { add, mul, scale, relu, swiglu } from './ops/elementwise.js';
export { reshape, sliceCols } from './ops/shape.js';
export { embedding } from './ops/embedding.js';
export { rmsNorm, layerNorm } from './ops/norm.js';
export { rope, type RopeTables } from './ops/rope.js';
export { attention } from './ops/attention.js';
export { indexerScore } from './ops/indexer-score.js';
export { logSoftmaxRows } from './ops/softmax.js';
export { crossEntropy, klDivergence } from './ops/loss.js';
