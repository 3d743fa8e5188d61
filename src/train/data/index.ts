/** Training data: token files, tokenizers, token sources and the batch loaders. */
export * from './seed.js';
export * from './token-file.js';
export * from './tokenizer.js';
export * from './source.js';
export * from './batches.js';
export * from './mixed.js';
export * from './dataset.js';
