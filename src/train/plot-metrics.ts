/**
 * Loss curves from metrics logs: one panel per plotted field (loss, kl, …), one line per run and
 * stage, optionally smoothed (TensorBoard's debiased exponential moving average, the raw curve
 * drawn faintly behind). Rendered through src/bench/plot.ts to SVG or PNG.
 */
import { basename, dirname, extname } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { linePlotSpec, renderSvg } from '../bench/plot.js';
import type { MetricRecord } from './metrics.js';

export interface MetricsRun {
  label: string;
  records: readonly MetricRecord[];
}

export interface MetricsPlotOptions {
  /** Fields to plot, one panel each (default ['loss']). */
  y?: readonly string[];
  /** The x field (default 'step'). */
  x?: string;
  /** EMA weight in [0, 1): 0 = raw curves (default), 0.9 = heavy smoothing. */
  smooth?: number;
  title?: string;
  /** Points kept per line (evenly thinned beyond; default 1000). */
  maxPoints?: number;
  width?: number;
  height?: number;
}

/** One point of a line (a type, not an interface: vega data rows are plain records). */
export type CurvePoint = {
  x: number;
  value: number;
  /** The value before smoothing. */
  raw: number;
  series: string;
  metric: string;
};

export interface Curve {
  series: string;
  metric: string;
  points: CurvePoint[];
}

/** A run's label from its file: the folder for …/metrics.jsonl, else the file name without extension. */
export function runLabel(file: string): string {
  const base = basename(file, extname(file));
  return base === 'metrics' ? basename(dirname(file)) || base : base;
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
}

/** The debiased exponential moving average of `values` with weight w (w = 0 leaves them as they are). */
export function smoothEma(values: readonly number[], w: number): number[] {
  if (!(w >= 0 && w < 1)) throw new RangeError(`smoothing must be in [0, 1), got ${w}`);
  let acc = 0;
  let norm = 0;
  return values.map((v) => {
    acc = w * acc + (1 - w) * v;
    norm = w * norm + (1 - w);
    return acc / norm;
  });
}

/** The lines to draw: per run, stage and field, the records with a finite x and value, in x order. */
export function metricsCurves(runs: readonly MetricsRun[], opts: MetricsPlotOptions = {}): Curve[] {
  const xField = opts.x ?? 'step';
  const maxPoints = opts.maxPoints ?? 1000;
  const curves: Curve[] = [];
  for (const metric of opts.y ?? ['loss']) {
    for (const run of runs) {
      const stages = [...new Set(run.records.map((r) => (typeof r.stage === 'string' ? r.stage : '')))];
      for (const stage of stages) {
        const rows = run.records
          .filter((r) => (typeof r.stage === 'string' ? r.stage : '') === stage)
          .map((r) => ({ x: num(r[xField]), v: num(r[metric]) }))
          .filter((r) => Number.isFinite(r.x) && Number.isFinite(r.v))
          .sort((a, b) => a.x - b.x);
        if (rows.length === 0) continue;
        const parts = [runs.length > 1 ? run.label : '', stages.length > 1 ? stage : ''].filter((s) => s !== '');
        const series = parts.length > 0 ? parts.join(' · ') : run.label;
        const smooth = smoothEma(rows.map((r) => r.v), opts.smooth ?? 0);
        const stride = Math.max(1, Math.ceil(rows.length / maxPoints));
        const points: CurvePoint[] = [];
        rows.forEach((r, i) => {
          if (i % stride === 0 || i === rows.length - 1) points.push({ x: r.x, value: smooth[i]!, raw: r.v, series, metric });
        });
        curves.push({ series, metric, points });
      }
    }
  }
  return curves;
}

/** The vega-lite spec: one panel per field (stacked), lines colored by series. */
export function metricsPlotSpec(runs: readonly MetricsRun[], opts: MetricsPlotOptions = {}): TopLevelSpec {
  const metrics = opts.y ?? ['loss'];
  const xField = opts.x ?? 'step';
  const curves = metricsCurves(runs, opts);
  const smoothed = (opts.smooth ?? 0) > 0;
  const panels = metrics.map((metric) => {
    const data = curves.filter((c) => c.metric === metric).flatMap((c) => c.points);
    if (data.length === 0) throw new Error(`no record has a numeric '${metric}' to plot (fields: ${fieldsOf(runs).join(', ')})`);
    const spec = linePlotSpec({
      title: metrics.length > 1 || !opts.title ? metric : opts.title,
      x: { field: 'x', title: xField },
      y: { field: 'value', title: smoothed ? `${metric} (smoothed ${opts.smooth})` : metric, zero: false },
      series: 'series',
      data,
      points: data.length <= 60,
      legend: 'top-right',
      width: opts.width ?? 640,
      height: opts.height ?? (metrics.length > 1 ? 220 : 360),
    }) as unknown as { layer: Array<Record<string, unknown>>; title: string; width: number; height: number };
    const layer = [...spec.layer];
    if (smoothed) {
      const lines = layer[0] as { encoding: Record<string, unknown> };
      layer.unshift({ data: { values: data }, mark: { type: 'line', opacity: 0.25 }, encoding: { ...lines.encoding, y: { field: 'raw', type: 'quantitative', scale: { zero: false } } } });
    }
    return { title: spec.title, width: spec.width, height: spec.height, layer };
  });
  const top = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', background: 'white' };
  if (panels.length === 1) return { ...top, ...panels[0]! } as unknown as TopLevelSpec;
  return { ...top, ...(opts.title ? { title: opts.title } : {}), vconcat: panels } as unknown as TopLevelSpec;
}

function fieldsOf(runs: readonly MetricsRun[]): string[] {
  const fields = new Set<string>();
  for (const r of runs) for (const rec of r.records.slice(0, 50)) for (const [k, v] of Object.entries(rec)) if (typeof v === 'number') fields.add(k);
  return fields.size > 0 ? [...fields] : ['none'];
}

/** The plot as an SVG string. */
export async function plotMetrics(runs: readonly MetricsRun[], opts: MetricsPlotOptions = {}): Promise<string> {
  return renderSvg(metricsPlotSpec(runs, opts));
}
