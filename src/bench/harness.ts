/**
 * Benchmark timing: warm-up runs, then the median (and spread) of several timed runs. Results are
 * reported with the setup that produced them, never asserted in unit tests.
 */

export interface Timing {
  /** Median milliseconds per run. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number;
}

export interface TimeOptions {
  warmup?: number;
  runs?: number;
  /** Stop adding runs (after at least 3) once this much time is spent. */
  budgetMs?: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Times fn (which may be async): `warmup` untimed calls, then up to `runs` timed ones. */
export async function timeIt(fn: () => unknown, opts: TimeOptions = {}): Promise<Timing> {
  const warmup = opts.warmup ?? 1;
  const runs = opts.runs ?? 5;
  const budget = opts.budgetMs ?? Infinity;
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  const started = performance.now();
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
    if (times.length >= 3 && performance.now() - started > budget) break;
  }
  return { medianMs: median(times), minMs: Math.min(...times), maxMs: Math.max(...times), runs: times.length };
}

/** A short description of this machine for benchmark reports. */
export async function machineInfo(): Promise<{ cpu: string; cores: number; memoryGiB: number; node: string; platform: string }> {
  const os = await import('node:os');
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
  };
}
