/**
 * Backends by name. The CPU backend is the embedded default; WebGPU is loaded lazily (its module
 * and Dawn only when asked for). 'auto' takes WebGPU when an adapter is there, else the CPU.
 */
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu.js';

export const BACKENDS = ['cpu', 'webgpu', 'auto'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** Backends opened through the registry that hold a GPU device (closed by closeBackends). */
const opened: { destroy(): void }[] = [];

export async function createBackend(name: string): Promise<Backend> {
  if (name === 'cpu') return new CpuBackend();
  if (name === 'webgpu' || name === 'auto') {
    try {
      const { WebGpuBackend } = await import('./webgpu.js');
      const b = await WebGpuBackend.create();
      opened.push(b);
      return b;
    } catch (e) {
      if (name === 'auto') return new CpuBackend();
      throw e;
    }
  }
  throw new Error(`unknown backend '${name}' (available: ${BACKENDS.join(', ')})`);
}

/** Releases the GPU devices opened here (Dawn keeps a process alive while one is open). */
export function closeBackends(): void {
  for (const b of opened.splice(0)) b.destroy();
}
