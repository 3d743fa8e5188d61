/**
 * The metrics log of a training run: JSON lines, one object per logged step, e.g.
 *   {"step":120,"stage":"dense","loss":3.52,"lr":0.0006,"grad_norm":0.81,"tokens_per_s":5120,"elapsed_s":61.2}
 * Field names are snake_case; `step` is required, everything else is free (validation losses,
 * KL, recall, …). A non-finite number is written as a string ("NaN", "Infinity": JSON has no such
 * numbers, and a diverged loss should stay visible), and read back as that string. Each line is written with one write call; a run killed mid-write leaves at most
 * a partial last line, which readMetrics skips and MetricsLogger.open cuts off before appending.
 */
import * as fs from 'node:fs';
import { readTextFile } from '../io/text-file.js';

export interface MetricRecord {
  step: number;
  stage?: string;
  loss?: number;
  lr?: number;
  grad_norm?: number;
  tokens_per_s?: number;
  elapsed_s?: number;
  [field: string]: unknown;
}

export interface ReadMetrics {
  records: MetricRecord[];
  /** True when the file ended in a partial line (a killed run) that was skipped. */
  partialLastLine: boolean;
}

/** Parses a metrics log; a bad line is an error naming it, except an unterminated last line, which is skipped. */
export function parseMetrics(text: string, file = 'metrics'): ReadMetrics {
  const lines = text.split('\n');
  const last = lines.pop()!; // '' when the text ends in a newline
  const records: MetricRecord[] = [];
  const parse = (line: string, n: number): MetricRecord => {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${n}: not valid JSON (${(e as Error).message})`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${file}:${n}: expected a JSON object`);
    const step = (v as { step?: unknown }).step;
    if (typeof step !== 'number' || !Number.isFinite(step)) throw new Error(`${file}:${n}: no numeric "step"`);
    return v as MetricRecord;
  };
  lines.forEach((line, i) => {
    if (line.trim() !== '') records.push(parse(line, i + 1));
  });
  let partialLastLine = false;
  if (last.trim() !== '') {
    try {
      records.push(parse(last, lines.length + 1));
    } catch {
      partialLastLine = true;
    }
  }
  return { records, partialLastLine };
}

export function readMetrics(file: string): ReadMetrics {
  return parseMetrics(readTextFile(file, 'a metrics .jsonl file'), file);
}

/** NaN and ±Infinity become null in JSON; keep them readable as strings instead ("NaN" loss is worth seeing). */
function replacer(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}

export class MetricsLogger {
  private fd: number | null;

  private constructor(readonly path: string) {
    try {
      this.fd = fs.openSync(path, 'a');
    } catch (e) {
      throw new Error(`${path}: cannot open the metrics log (${(e as Error).message})`);
    }
  }

  /**
   * Opens the log for writing. A fresh run (resumeStep undefined) starts an empty log; a run
   * resumed from a checkpoint at `resumeStep` keeps the records with step ≤ resumeStep and drops
   * those logged after the checkpoint by the run that was killed (and any partial line).
   */
  static open(path: string, opts: { resumeStep?: number } = {}): MetricsLogger {
    if (opts.resumeStep === undefined) {
      fs.writeFileSync(path, '');
    } else if (fs.existsSync(path)) {
      const { records } = readMetrics(path);
      const kept = records.filter((r) => r.step <= opts.resumeStep!);
      const tmp = `${path}.tmp`;
      fs.writeFileSync(tmp, kept.map((r) => `${JSON.stringify(r, replacer)}\n`).join(''));
      fs.renameSync(tmp, path);
    }
    return new MetricsLogger(path);
  }

  log(record: MetricRecord): void {
    if (this.fd === null) throw new Error(`${this.path}: the metrics log is closed`);
    if (typeof record.step !== 'number' || !Number.isFinite(record.step)) throw new Error(`metrics record without a numeric step: ${JSON.stringify(record)}`);
    fs.writeSync(this.fd, `${JSON.stringify(record, replacer)}\n`);
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
