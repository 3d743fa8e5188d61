/**
 * What `dsa cost` prints and writes: $ per million tokens against token position for prefill and
 * decode — a table, a JSON object, and a two-panel plot like the paper's cost figure (Figure 3).
 */
import { compile, type TopLevelSpec } from 'vega-lite';
import * as vega from 'vega';
import { linePlotSpec } from '../bench/plot.js';
import { acceptedPerStep, breakdown, dollarsPerMillion, secondsPerToken, type CostModelSpec, type Phase } from './model.js';
import type { Profile } from './profiles.js';

export const PHASES: readonly Phase[] = ['prefill', 'decode'];

/** The table's positions: 0, 4K, 8K, 16K, 32K, 64K, 96K, 128K. */
export const TABLE_POSITIONS = [0, 4, 8, 16, 32, 64, 96, 128].map((k) => k * 1024);

/** The JSON's positions: every 1K from 0 to 128K (131072) inclusive. */
export const JSON_POSITIONS = Array.from({ length: 129 }, (_, i) => i * 1024);

/** The paper's Figure 3 at position 128K (H800, $2 per GPU-hour), read off the figure. */
export const PAPER_128K: Record<Phase, Record<'v3.1' | 'v3.2', number>> = {
  prefill: { 'v3.1': 0.66, 'v3.2': 0.19 },
  decode: { 'v3.1': 2.15, 'v3.2': 0.25 },
};

export interface CostSetup {
  models: CostModelSpec[];
  profile: Profile;
  price: number;
}

/** $ per million tokens (generated tokens in decode) of one model at one position. */
export function costAt(s: CostSetup, m: CostModelSpec, phase: Phase, t: number): number {
  return dollarsPerMillion(secondsPerToken(m, s.profile, s.profile.deployment, phase, t), s.price);
}

export interface CostJson {
  unit: string;
  hardware: string;
  price_per_gpu_hour: number;
  positions: number[];
  prefill: Record<string, number[]>;
  decode: Record<string, number[]>;
}

/** `{"positions": [...], "prefill": {"<model>": [...]}, "decode": {...}}` plus the setup. */
export function costJson(s: CostSetup, positions: readonly number[] = JSON_POSITIONS): CostJson {
  const curves = (phase: Phase) => Object.fromEntries(s.models.map((m) => [m.name, positions.map((t) => costAt(s, m, phase, t))]));
  return {
    unit: '$ per million tokens (prefill: prompt tokens; decode: generated tokens)',
    hardware: s.profile.name,
    price_per_gpu_hour: s.price,
    positions: [...positions],
    prefill: curves('prefill'),
    decode: curves('decode'),
  };
}

/**
 * Where DSA becomes cheaper: the smallest position (on a 64-token grid up to 128K) from which the
 * DSA model costs less than the dense one at every larger grid position; null if it never does.
 */
export function crossover(s: CostSetup, dense: CostModelSpec, dsa: CostModelSpec, phase: Phase): number | null {
  let from: number | null = null;
  for (let t = 131072; t >= 0; t -= 64) {
    if (costAt(s, dsa, phase, t) < costAt(s, dense, phase, t)) from = t;
    else break;
  }
  return from;
}

const usd = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3));
const kTok = (t: number): string => (t >= 1024 && t % 1024 === 0 ? `${t / 1024}K` : `${t}`);

function deploymentLine(s: CostSetup): string {
  const d = s.profile.deployment;
  const topk = s.models.find((m) => m.dsa)?.cfg.indexTopk;
  const mtp = d.mtpTokens > 1 ? `MTP ${d.mtpTokens} query tokens per step (${d.mtpAcceptance} accepted: ${acceptedPerStep(d)} tokens per step)` : 'no MTP';
  const mode =
    topk === undefined
      ? ''
      : d.prefillDenseBelow === null
        ? '; DSA prefill runs the masked dense mode wherever it is cheaper than the sparse one'
        : `; DSA prefill runs the masked dense mode below position ${d.prefillDenseBelow}`;
  return (
    `${d.batch} sequence${d.batch === 1 ? '' : 's'} per GPU per decode step, ${mtp}, routed experts over ${d.expertParallel} GPU${d.expertParallel === 1 ? '' : 's'}, ` +
    `${d.prefillTokens} prompt tokens per GPU per prefill step${mode}`
  );
}

/** Where the time of a token goes, in ms: one line per model and phase at position t. */
function breakdownLines(s: CostSetup, t: number): string[] {
  const lines: string[] = [];
  for (const phase of PHASES) {
    for (const m of s.models) {
      const parts = new Map<string, number>();
      for (const { op, seconds } of breakdown(m, s.profile, s.profile.deployment, phase, t)) {
        const key = op.kernel === 'gemm' ? 'linear layers' : op.name;
        parts.set(key, (parts.get(key) ?? 0) + seconds);
      }
      const total = [...parts.values()].reduce((a, b) => a + b, 0);
      const list = [...parts].map(([k, v]) => `${k} ${(v * 1000).toFixed(3)}`).join(', ');
      lines.push(`  ${phase.padEnd(7)} ${m.name.padEnd(6)} ${(total * 1000).toFixed(3)} ms = ${list}`);
    }
  }
  return lines;
}

/** The printed report: setup, the table, the comparison with the paper, crossovers and a breakdown at 128K. */
export function costTable(s: CostSetup): string {
  const out: string[] = [];
  const w = (x = '') => out.push(x);
  const names = s.models.map((m) => m.name);
  w(`dsa cost: $ per million tokens against token position (${s.models.map((m) => `${m.name}: ${m.dsa ? 'DSA' : 'dense MLA'}`).join(', ')})`);
  w(`hardware: ${s.profile.description[0]}`);
  for (const line of s.profile.description.slice(1)) w(`          ${line}`);
  w(`price:    $${s.price} per GPU-hour; $ per million tokens = seconds per token × 10⁶ × price / 3600`);
  w(`serving:  ${deploymentLine(s)}`);
  w('per token: roofline max(compute, memory) of every op over all layers; decode per generated token; formulas in docs/cost-model.md');
  w();
  const pair = s.models.length === 2 && s.models[0]!.dsa !== s.models[1]!.dsa;
  const head = ['position'];
  for (const phase of PHASES) {
    for (const n of names) head.push(`${phase} ${n}`);
    if (pair) head.push(`${names[0]}÷${names[1]}`);
  }
  const widths = head.map((h) => Math.max(9, h.length));
  const line = (cells: string[]) => w(cells.map((c, i) => c.padStart(widths[i]!)).join('  '));
  line(head);
  for (const t of TABLE_POSITIONS) {
    const cells = [kTok(t)];
    for (const phase of PHASES) {
      const v = s.models.map((m) => costAt(s, m, phase, t));
      cells.push(...v.map(usd));
      if (pair) cells.push(`${(v[0]! / v[1]!).toFixed(2)}×`);
    }
    line(cells);
  }
  w();
  const dense = s.models.find((m) => !m.dsa);
  const dsa = s.models.find((m) => m.dsa);
  if (dense && dsa) {
    const c = PHASES.map((phase) => {
      const x = crossover(s, dense, dsa, phase);
      return `${phase} ${x === null ? 'never (up to 128K)' : `from position ${x} (≈${(x / 1024).toFixed(1)}K)`}`;
    });
    w(`${dsa.name} is cheaper than ${dense.name}: ${c.join('; ')}`);
  }
  if (s.profile.name === 'h800' && s.price === 2 && names.includes('v3.1') && names.includes('v3.2')) {
    const cmp = PHASES.flatMap((phase) =>
      (['v3.1', 'v3.2'] as const).map((n) => {
        const ours = costAt(s, s.models.find((m) => m.name === n)!, phase, 131072);
        const paper = PAPER_128K[phase][n];
        return `${phase} ${n} ${usd(ours)} vs ${paper} (${ours >= paper ? '+' : ''}${(((ours - paper) / paper) * 100).toFixed(0)}%)`;
      }),
    );
    w(`paper (Figure 3, H800, $2 per GPU-hour) at 128K: ${cmp.join(', ')}`);
  }
  w('time per token at 128K (ms, decode per generated token):');
  for (const l of breakdownLines(s, 131072)) w(l);
  return `${out.join('\n')}\n`;
}

/** The two panels (prefill, decode) of the cost figure as one vega-lite spec: x in K tokens, one line per model. */
export function costPlotSpec(s: CostSetup): TopLevelSpec {
  const topks = s.models.filter((m) => m.dsa).map((m) => m.cfg.indexTopk);
  const extra = topks.flatMap((k) => [k - 1, k]);
  const positions = [...new Set([...JSON_POSITIONS, ...extra])].filter((t) => t <= 131072).sort((a, b) => a - b);
  const j = costJson(s, positions);
  const panel = (phase: Phase) => {
    const data = s.models.flatMap((m) => positions.map((t, i) => ({ k: t / 1024, usd: j[phase][m.name]![i]!, model: label(m) })));
    const spec = linePlotSpec({
      title: phase === 'prefill' ? '(a) Prefilling' : '(b) Decoding',
      x: { field: 'k', title: 'token position (K tokens)' },
      y: { field: 'usd', title: `$ per million ${phase === 'prefill' ? 'prompt' : 'generated'} tokens` },
      series: 'model',
      data,
      width: 420,
      height: 300,
    }) as unknown as { layer: PanelLayer[] } & Record<string, unknown>;
    // Lines without point marks, full legend labels, and the paper's ticks (every 32K).
    const lines = spec.layer[0]!;
    lines.mark.point = false;
    lines.encoding.color.legend.labelLimit = 400;
    lines.encoding.x.axis.values = [0, 32, 64, 96, 128];
    delete spec.$schema;
    delete spec.background;
    return spec;
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Inference cost against token position: ${s.profile.name}, $${s.price} per GPU-hour`,
    background: 'white',
    hconcat: [panel('prefill'), panel('decode')],
  } as unknown as TopLevelSpec;
}

/** The parts of linePlotSpec's line layer that the cost figure adjusts. */
interface PanelLayer {
  mark: { point?: boolean };
  encoding: { color: { legend: Record<string, unknown> }; x: { axis: Record<string, unknown> } };
}

function label(m: CostModelSpec): string {
  if (m.name === 'v3.1') return 'DeepSeek-V3.1-Terminus (dense)';
  if (m.name === 'v3.2') return 'DeepSeek-V3.2-Exp (DSA)';
  return `${m.name} (${m.dsa ? 'DSA' : 'dense'})`;
}

/** Renders the cost figure to SVG (write it with writePlot for SVG or PNG). */
export async function costPlot(s: CostSetup): Promise<string> {
  const view = new vega.View(vega.parse(compile(costPlotSpec(s)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
