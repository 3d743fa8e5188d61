/**
 * Line plots for benchmark reports: a vega-lite spec compiled to vega and rendered headless to SVG
 * (renderer 'none', no browser or canvas), and written as SVG, or as PNG through resvg.
 */
import { writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface AxisSpec {
  /** The data field plotted on this axis. */
  field: string;
  title: string;
  /** Logarithmic scale of base 2, ticks at powers of two labelled 1K, 2K, … (x only). */
  log2?: boolean;
  /** Whether the y scale must include zero (default true; x never does). */
  zero?: boolean;
  /** Logarithmic scale of base 10 (y only). */
  log10?: boolean;
}

/** A vertical line at x, labelled. */
export interface Rule {
  x: number;
  label: string;
}

export interface LinePlot {
  title: string;
  x: AxisSpec;
  y: AxisSpec;
  /** The field whose values name the lines (one line per distinct value). */
  series: string;
  data: readonly Record<string, unknown>[];
  rules?: readonly Rule[];
  /** Where the legend sits: inside the plot (default top-left), or to its right. */
  legend?: 'top-left' | 'top-right' | 'bottom-left' | 'bottom-right' | 'right';
  /** Mark each data point (default true; off for long curves). */
  points?: boolean;
  width?: number;
  height?: number;
}

/** Powers of two covering [lo, hi]. */
function powersOfTwo(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let p = 2 ** Math.floor(Math.log2(lo)); p <= hi * 1.0001; p *= 2) out.push(p);
  return out;
}

/** The vega-lite spec of a line plot (exported for tests and for callers that render it elsewhere). */
export function linePlotSpec(p: LinePlot): TopLevelSpec {
  const xs = p.data.map((d) => Number(d[p.x.field])).filter((v) => Number.isFinite(v) && v > 0);
  const xScale = p.x.log2 && xs.length > 0 ? { type: 'log' as const, base: 2 } : { zero: false };
  const xAxis = p.x.log2 && xs.length > 0
    ? {
        title: p.x.title,
        values: powersOfTwo(Math.min(...xs), Math.max(...xs)),
        labelExpr: "datum.value >= 1048576 ? datum.value / 1048576 + 'M' : datum.value >= 1024 ? datum.value / 1024 + 'K' : datum.value + ''",
        grid: true,
      }
    : { title: p.x.title, grid: true };
  const x = { field: p.x.field, type: 'quantitative' as const, scale: xScale, axis: xAxis };
  const yScale = p.y.log10 ? { scale: { type: 'log' as const, base: 10 } } : p.y.zero === false ? { scale: { zero: false } } : {};
  const y = { field: p.y.field, type: 'quantitative' as const, axis: { title: p.y.title, grid: true }, ...yScale };
  const lines = {
    data: { values: p.data as Record<string, unknown>[] },
    mark: { type: 'line' as const, point: p.points ?? true },
    encoding: { x, y, color: { field: p.series, type: 'nominal' as const, title: null, legend: { orient: p.legend ?? ('top-left' as const), labelLimit: 0 } } },
  };
  const layers: object[] = [lines];
  if (p.rules && p.rules.length > 0) {
    const rules = p.rules.map((r) => ({ [p.x.field]: r.x, label: r.label }));
    layers.push({
      data: { values: rules },
      mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' },
      encoding: { x: { field: p.x.field, type: 'quantitative' } },
    });
    layers.push({
      data: { values: rules },
      mark: { type: 'text', align: 'left', baseline: 'top', dx: 4, dy: 4, y: 0, color: 'gray' },
      encoding: { x: { field: p.x.field, type: 'quantitative' }, text: { field: 'label' } },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: p.title,
    width: p.width ?? 640,
    height: p.height ?? 360,
    background: 'white',
    layer: layers,
  } as TopLevelSpec;
}

/** Renders the plot to an SVG string. */
export async function linePlot(p: LinePlot): Promise<string> {
  return renderSvg(linePlotSpec(p));
}

/** Renders any vega-lite spec to an SVG string (headless). */
export async function renderSvg(lite: TopLevelSpec): Promise<string> {
  const spec = compile(lite).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes an SVG string to `path`: as is, or rasterized to PNG (2× scale) when the path ends in .png. */
export function writePlot(path: string, svg: string): void {
  if (path.toLowerCase().endsWith('.png')) {
    const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, background: 'white', font: { loadSystemFonts: true } }).render().asPng();
    writeFileSync(path, png);
  } else {
    writeFileSync(path, svg);
  }
}
