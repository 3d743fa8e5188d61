/** Learning rate: linear warm-up to the peak over `warmup` steps, then cosine decay to peak · minRatio at `total`. */
export interface LrSchedule {
  peak: number;
  warmup: number;
  total: number;
  minRatio: number;
}

export function learningRate(s: LrSchedule, step: number): number {
  if (s.warmup > 0 && step < s.warmup) return (s.peak * (step + 1)) / s.warmup;
  const span = Math.max(s.total - s.warmup, 1);
  const progress = Math.min(Math.max((step - s.warmup) / span, 0), 1);
  const min = s.peak * s.minRatio;
  return min + 0.5 * (s.peak - min) * (1 + Math.cos(Math.PI * progress));
}
