/** Progress bars on stderr (stdout stays clean for results); silent when stderr is not a terminal unless verbose. */
import cliProgress from 'cli-progress';
import { io } from './io.js';

export interface Progress {
  update(done: number): void;
  stop(): void;
}

export function progressBar(label: string, total: number, verbose = false): Progress {
  const tty = process.stderr.isTTY === true;
  if (total <= 0 || (!tty && !verbose)) return { update: () => {}, stop: () => {} };
  if (!tty) {
    // Plain lines for logs: start and end only.
    const started = Date.now();
    io().err(`${label}: ${total} tokens\n`);
    return {
      update: () => {},
      stop: () => io().err(`${label}: done in ${((Date.now() - started) / 1000).toFixed(2)} s\n`),
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label.padEnd(8)} [{bar}] {value}/{total} tokens | {speed} tok/s | ETA {eta_formatted}`,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  bar.start(total, 0, { speed: '0' });
  return {
    update: (done) => bar.update(done, { speed: (done / Math.max((Date.now() - started) / 1000, 1e-3)).toFixed(1) }),
    stop: () => bar.stop(),
  };
}

/**
 * The line `--verbose` prints about DSA's dense path: while a position's context holds at most
 * index_topk keys its selection would be every key, so attention runs dense and the indexer's
 * scores are not computed (sparse equals dense there).
 */
export function densePathNote(indexTopk: number, total: number, dense = false): string {
  if (dense) return 'attention: dense (--dense), every earlier position';
  if (total <= indexTopk) return `attention: dense path for all ${total} positions (context ≤ index_topk ${indexTopk}: sparse equals dense)`;
  return `attention: dense path for positions 0..${indexTopk - 1} (context ≤ index_topk), DSA top-${indexTopk} selection from position ${indexTopk} on`;
}

export interface StepProgress {
  /** `done` steps finished; `fields` are shown after the bar (e.g. loss). */
  update(done: number, fields: { loss: number; tokensPerS: number }): void;
  stop(): void;
}

/**
 * A progress bar over training steps on stderr: loss, tokens/s, ETA. Without a terminal (or when
 * not verbose) it prints one plain line every `every` steps instead.
 */
export function stepProgressBar(label: string, total: number, every = 10): StepProgress {
  const line = (done: number, f: { loss: number; tokensPerS: number }, eta: number) =>
    `${label} step ${done}/${total} | loss ${f.loss.toFixed(4)} | ${f.tokensPerS.toFixed(0)} tok/s | ETA ${Math.max(0, eta).toFixed(0)} s\n`;
  const started = Date.now();
  let first = -1;
  // Seconds per step since the first update (which may come after a resume).
  const etaOf = (done: number) => {
    if (first < 0) first = done - 1;
    const per = (Date.now() - started) / 1000 / Math.max(done - first, 1);
    return per * (total - done);
  };
  if (process.stderr.isTTY !== true) {
    return {
      update: (done, f) => {
        const eta = etaOf(done);
        if (done % every === 0 || done === total) io().err(line(done, f, eta));
      },
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label.padEnd(8)} [{bar}] {value}/{total} steps | loss {loss} | {speed} tok/s | ETA {eta_formatted}`,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let startedBar = false;
  return {
    update: (done, f) => {
      const payload = { loss: f.loss.toFixed(4), speed: f.tokensPerS.toFixed(0) };
      if (!startedBar) {
        bar.start(total, done, payload);
        startedBar = true;
      } else bar.update(done, payload);
    },
    stop: () => {
      if (startedBar) bar.stop();
    },
  };
}
