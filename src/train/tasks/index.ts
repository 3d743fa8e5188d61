/** The synthetic tasks: generation, training batches, evaluation and reports. */
export * from './task.js';
export * from './passkey.js';
export * from './recall.js';
export * from './loader.js';
export * from './evaluate.js';
export * from './model-logits.js';
export * from './report.js';
