/**
 * The training backend the CLI uses: the WebAssembly matmuls (worker pool over every core) unless
 * DSA_KERNELS=js asks for the plain TypeScript kernels; DSA_THREADS caps the threads.
 */
import { availableParallelism } from 'node:os';
import type { TrainBackend } from './backend.js';
import { CpuTrainBackend } from './cpu-backend.js';
import { WasmTrainBackend } from './wasm-backend.js';

export interface ClosableTrainBackend extends TrainBackend {
  close(): void;
}

export function createTrainBackend(): ClosableTrainBackend {
  const kernels = process.env.DSA_KERNELS ?? 'wasm';
  if (kernels !== 'wasm' && kernels !== 'js') throw new Error(`DSA_KERNELS must be 'wasm' or 'js', got '${kernels}'`);
  if (kernels === 'js') return Object.assign(new CpuTrainBackend(), { close: () => {} });
  const threads = process.env.DSA_THREADS !== undefined ? Number(process.env.DSA_THREADS) : availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`DSA_THREADS must be a positive integer, got '${process.env.DSA_THREADS}'`);
  return new WasmTrainBackend(threads);
}
