/** Backends by name. The CPU backend is the embedded default; GPU backends load lazily. */
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu.js';

export const BACKENDS = ['cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export function createBackend(name: string): Backend {
  if (name === 'cpu') return new CpuBackend();
  throw new Error(`unknown backend '${name}' (available: ${BACKENDS.join(', ')})`);
}
