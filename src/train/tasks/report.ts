/** Task results for people: a table, and accuracy against context length as a plot. */
import { linePlot } from '../../bench/plot.js';
import type { TaskEval } from './evaluate.js';
import type { TaskSample, TaskVocab } from './task.js';

const pct = (v: number): string => (Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '–');

/** One row per evaluation: task, label, context, samples, accuracy, token accuracy, chance, accuracy by depth. */
export function taskTable(rows: ReadonlyArray<{ label?: string; result: TaskEval }>): string {
  const head = ['task', 'model', 'context', 'samples', 'accuracy', 'tokens', 'chance', 'by depth (0–100%)'];
  const body = rows.map(({ label, result: r }) => [
    r.task,
    label ?? '',
    String(r.contextLength),
    String(r.samples),
    pct(r.accuracy),
    pct(r.tokenAccuracy),
    r.chance < 0.001 ? r.chance.toExponential(1) : pct(r.chance),
    r.byDepth.map((b) => pct(b.accuracy)).join(' '),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  return [head, ...body].map((cells) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

/** Accuracy (%) against context length (log₂ axis), one line per model and task; `trainLength` draws a rule. */
export async function accuracyPlot(rows: ReadonlyArray<{ label: string; result: TaskEval }>, opts: { title?: string; trainLength?: number } = {}): Promise<string> {
  const tasks = new Set(rows.map((r) => r.result.task));
  const data = rows.map(({ label, result: r }) => ({
    context: r.contextLength,
    accuracy: 100 * r.accuracy,
    series: tasks.size > 1 ? `${label} · ${r.task}` : label,
  }));
  return linePlot({
    title: opts.title ?? `${[...tasks].join(', ')} accuracy by context length`,
    x: { field: 'context', title: 'context length (tokens)', log2: true },
    y: { field: 'accuracy', title: 'exact-match accuracy (%)' },
    series: 'series',
    data,
    rules: opts.trainLength ? [{ x: opts.trainLength, label: 'training length' }] : [],
  });
}

/**
 * A sample as one readable line: BOS `B`, NEEDLE `N`, SEP `:`, QUERY `?`, keys `k<id>`, values
 * `v<id>`, runs of filler as `…×n`, answers in brackets.
 */
export function describeSample(vocab: TaskVocab, s: TaskSample): string {
  const answer = new Uint8Array(s.tokens.length);
  for (const a of s.answers) answer.fill(1, a.start + 1, a.start + 1 + a.length);
  const parts: string[] = [];
  let filler = 0;
  const flush = (): void => {
    if (filler > 0) parts.push(`…×${filler}`);
    filler = 0;
  };
  s.tokens.forEach((id, i) => {
    if (id >= vocab.filler.lo && id < vocab.filler.hi) {
      filler++;
      return;
    }
    flush();
    const name = id === vocab.bos ? 'B' : id === vocab.needle ? 'N' : id === vocab.sep ? ':' : id === vocab.query ? '?' : id < vocab.values.lo ? `k${id}` : `v${id}`;
    parts.push(answer[i] ? `[${name}]` : name);
  });
  flush();
  return parts.join(' ');
}
