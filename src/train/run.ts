/**
 * Running a trainer to its last step: one JSONL metrics record per step, a checkpoint every
 * `saveEvery` steps and at the end (so a killed run resumes from the last one), and a hook for the
 * progress display.
 */
import type { MetricsLogger } from './metrics.js';
import { saveTrainer } from './checkpoint.js';
import type { StepMetrics, Trainer } from './trainer.js';

export interface RunHooks {
  outDir?: string;
  /** Save a checkpoint every this many steps (0: only at the end). */
  saveEvery?: number;
  logger?: MetricsLogger;
  onStep?: (m: StepMetrics, tokensPerS: number) => void;
}

export function runTrainer(trainer: Trainer, hooks: RunHooks = {}): StepMetrics[] {
  const out: StepMetrics[] = [];
  const started = performance.now();
  let tokens = 0;
  while (!trainer.done) {
    const m = trainer.trainStep();
    out.push(m);
    tokens += m.tokens;
    const elapsed = (performance.now() - started) / 1000;
    const tokensPerS = tokens / Math.max(elapsed, 1e-9);
    hooks.logger?.log({
      step: trainer.step,
      stage: m.stage,
      loss: m.loss,
      lm_loss: m.lmLoss,
      ...(m.indexerKl !== null ? { indexer_kl: m.indexerKl } : {}),
      lr: m.lr,
      grad_norm: m.gradNorm,
      tokens_per_s: m.tokens / m.seconds,
      elapsed_s: elapsed,
    });
    hooks.onStep?.(m, tokensPerS);
    const every = hooks.saveEvery ?? 0;
    if (hooks.outDir && (trainer.done || (every > 0 && trainer.step % every === 0))) saveTrainer(trainer, hooks.outDir);
  }
  return out;
}
