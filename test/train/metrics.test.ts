import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MetricsLogger, parseMetrics, readMetrics, type MetricRecord } from '../../src/train/metrics.js';
import { metricsCurves, metricsPlotSpec, plotMetrics, runLabel, smoothEma } from '../../src/train/plot-metrics.js';
import { tempDir } from './helpers.js';

const dir = tempDir('dsa-metrics-');

test('metrics log: one JSON object per line, read back whole', () => {
  const file = path.join(dir, 'm.jsonl');
  const log = MetricsLogger.open(file);
  log.log({ step: 1, stage: 'dense', loss: 5.5, lr: 1e-3, grad_norm: 2, tokens_per_s: 1000 });
  log.log({ step: 2, stage: 'dense', loss: NaN, val_loss: 6 });
  log.close();
  const text = fs.readFileSync(file, 'utf8');
  assert.equal(text.split('\n').length, 3);
  const { records, partialLastLine } = readMetrics(file);
  assert.equal(partialLastLine, false);
  assert.deepEqual(records[0], { step: 1, stage: 'dense', loss: 5.5, lr: 1e-3, grad_norm: 2, tokens_per_s: 1000 });
  assert.equal(records[1]!.loss, 'NaN', 'a NaN loss stays visible');
  assert.throws(() => log.log({ step: 3 }), /closed/);
  const again = MetricsLogger.open(file);
  assert.throws(() => again.log({ loss: 1 } as never), /without a numeric step/);
  again.close();
  assert.equal(fs.readFileSync(file, 'utf8'), '', 'a fresh run starts an empty log');
});

test('metrics log: a killed run leaves a partial last line, skipped on read and cut on resume', () => {
  const file = path.join(dir, 'killed.jsonl');
  fs.writeFileSync(file, '{"step":1,"loss":3}\n{"step":2,"loss":2.5}\n{"step":3,"loss":2.4}\n{"step":4,"lo');
  const r = readMetrics(file);
  assert.equal(r.partialLastLine, true);
  assert.deepEqual(r.records.map((x) => x.step), [1, 2, 3]);
  // A complete last line without its newline is kept.
  assert.deepEqual(parseMetrics('{"step":1}\n{"step":2}').records.map((x) => x.step), [1, 2]);
  // Damage anywhere else is an error naming the line.
  assert.throws(() => parseMetrics('{"step":1}\n{"ste\n{"step":3}\n', 'f.jsonl'), /f\.jsonl:2: not valid JSON/);
  assert.throws(() => parseMetrics('{"loss":1}\n', 'f.jsonl'), /f\.jsonl:1: no numeric "step"/);

  // Resumed from the checkpoint at step 2: steps 3 and the partial 4 were logged after it and go.
  const log = MetricsLogger.open(file, { resumeStep: 2 });
  log.log({ step: 3, loss: 2.3 });
  log.close();
  assert.deepEqual(readMetrics(file).records, [{ step: 1, loss: 3 }, { step: 2, loss: 2.5 }, { step: 3, loss: 2.3 }]);
  const fresh = path.join(dir, 'fresh.jsonl');
  MetricsLogger.open(fresh, { resumeStep: 10 }).close();
  assert.equal(fs.readFileSync(fresh, 'utf8'), '');
});

test('curves: per run and stage, smoothed with the debiased EMA, thinned', () => {
  assert.deepEqual(smoothEma([1, 2, 3], 0), [1, 2, 3]);
  const s = smoothEma([4, 4, 4, 0], 0.5);
  assert.deepEqual(s.slice(0, 3), [4, 4, 4]); // debiased: a constant stays constant from the first step
  assert.ok(Math.abs(s[3]! - 4 * (0.5 * 0.875) / 0.9375) < 1e-12);
  assert.throws(() => smoothEma([1], 1), /smoothing must be in \[0, 1\)/);
  assert.equal(runLabel('runs/dense/metrics.jsonl'), 'dense');
  assert.equal(runLabel('runs/sparse-run.jsonl'), 'sparse-run');

  const records = [
    ...Array.from({ length: 50 }, (_, i) => ({ step: i, stage: 'warmup', loss: 1, kl: 10 - i / 10 })),
    ...Array.from({ length: 3000 }, (_, i) => ({ step: 50 + i, stage: 'sparse', loss: 3 - i / 3000 })),
  ];
  const runs = [{ label: 'a', records }, { label: 'b', records: [{ step: 0, loss: 4 }, { step: 1, loss: 'NaN' } as unknown as MetricRecord, { step: 2, loss: 3 }] }];
  const curves = metricsCurves(runs, { y: ['loss', 'kl'], maxPoints: 100 });
  assert.deepEqual(curves.map((c) => `${c.metric}:${c.series}:${c.points.length}`), ['loss:a · warmup:50', 'loss:a · sparse:101', 'loss:b:2', 'kl:a · warmup:50']);
  const sparse = curves[1]!.points;
  assert.deepEqual([sparse[0]!.x, sparse.at(-1)!.x], [50, 3049]);
});

test('plot: the SVG holds every series and panel; a missing field is a clear error', async () => {
  const runs = [
    { label: 'dense', records: Array.from({ length: 200 }, (_, i) => ({ step: i, loss: 6 * Math.exp(-i / 50) + 2 })) },
    { label: 'dsa', records: Array.from({ length: 200 }, (_, i) => ({ step: i, stage: i < 50 ? 'warmup' : 'sparse', loss: 6 * Math.exp(-i / 60) + 2.1, kl: 3 / (i + 1) })) },
  ];
  const svg = await plotMetrics(runs, { y: ['loss', 'kl'], smooth: 0.8, title: 'DSA' });
  assert.match(svg, /^<svg/);
  for (const label of ['dense', 'dsa · warmup', 'dsa · sparse', 'loss (smoothed 0.8)', 'kl (smoothed 0.8)', 'DSA']) assert.ok(svg.includes(label), `no '${label}' in the SVG`);
  // Three smoothed lines + three faint raw lines in the loss panel, two + two in the kl panel.
  assert.equal((svg.match(/<path[^>]*aria-roledescription="line mark"/g) ?? []).length, 10);
  const spec = JSON.stringify(metricsPlotSpec(runs, { y: ['loss'] }));
  assert.ok(!spec.includes('vconcat'));
  assert.throws(() => metricsPlotSpec(runs, { y: ['accuracy'] }), /no record has a numeric 'accuracy' to plot \(fields: step, loss, kl\)/);
});
