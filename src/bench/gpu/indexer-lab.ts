/**
 * The kernel lab's indexer section (`dsa bench gpu --sections indexer`): the FP8 indexer scan over
 * a whole batch in one grid, per context and batch, for the tensor-core kernels and their forms:
 *  - `indexer_<variant>_ms`: the fused variants (indexer-fused.ts, indexer-fused2.ts);
 *  - `indexer_sweep_<name>_ms`: the 'matrix-fused2' forms of FUSED2_SWEEP (run length, the
 *    subgroups' share, the reduction's form), each checked against the CPU twin first (`check` rows);
 *  - `indexer_fused2_<probe>_ms`: timing probes of the default, one stage left out (the time saved is its share);
 *  - `indexer_int8_*_ms`: the int8 experiment (int8-lab.ts), checked against its own CPU twin;
 *  - `indexer_first_ms` / `indexer_last_ms`: the default variant timed first and again last, so a
 *    GPU whose clocks moved during the section shows it.
 * Candidates are timed in interleaved rounds (each once per round, `--runs` rounds, median), each
 * time in a burst of repetitions (step.ts: the GPU's clocks fall when it idles), after the GPU has
 * run the default for 1.5 s.
 * GB/s count the key cache read (codes + scales); `_ofCopy` divides by the copy kernel's rate.
 */
import type { GpuDevice } from '../../backend/webgpu/device.js';
import { bestIndexerVariant, indexerScoresGpu, indexerVariantAvailable, type IndexerVariant } from '../../backend/webgpu/kernels/indexer.js';
import { indexerFusedAvailable } from '../../backend/webgpu/kernels/indexer-fused.js';
import { FUSED2_CONFIGS, FUSED2_PROBES, FUSED2_SWEEP, indexerFused2Available, indexerScoresFused2Gpu, type Fused2Config } from '../../backend/webgpu/kernels/indexer-fused2.js';
import { checkIndexer, DI, HI } from './core-kernels.js';
import type { LabOptions } from './lab.js';
import { median } from '../harness.js';
import { checkIndexerInt8, int8Candidates, int8LabForms } from './int8-lab.js';
import type { Int8ScanForm } from '../../backend/webgpu/kernels/indexer-int8.js';
import { burstReps, indexerArgs, makeStep, passMs, releaseStep, round, warmUp, type StepData } from './step.js';

const VARIANTS: IndexerVariant[] = ['matrix-fused', ...(Object.keys(FUSED2_CONFIGS) as IndexerVariant[]).filter((v) => !v.includes('scalar'))];

export async function indexerSection(gpu: GpuDevice, o: LabOptions, copyGBps: number | null): Promise<void> {
  if (!indexerFusedAvailable(gpu, HI, DI)) {
    o.emit({ section: 'indexer', available: false, note: 'no tensor-core indexer on this device' });
    return;
  }
  const sweep = Object.entries(FUSED2_SWEEP).filter(([, c]) => indexerFused2Available(gpu, HI, DI, c));
  for (const [name, c] of sweep) o.emit({ section: 'check', kernel: `indexer-sweep-${name}-multiseq`, ...(await checkIndexer(gpu, c, true)) });
  // The int8 experiment against its own CPU twin (its scores are not the FP8 reference's).
  // A kernel that fails to build or check is reported and left out of the timings (a probe,
  // wrong on purpose, only has to build).
  const int8Forms: [string, Int8ScanForm][] = [];
  for (const [name, form] of int8LabForms(gpu)) {
    try {
      const err = await checkIndexerInt8(gpu, form);
      if (form.probe) {
        int8Forms.push([name, form]);
        continue;
      }
      o.emit({ section: 'check', kernel: `indexer-int8-${name}`, maxErrOverScale: err });
      if (err <= 1e-4) int8Forms.push([name, form]);
    } catch (e) {
      o.emit({ section: 'check', kernel: `indexer-int8-${name}`, error: (e as Error).message });
    }
  }
  for (const batch of o.batch) {
    for (const ctx of o.ctx) {
      o.note(`indexer: batch ${batch}, ctx ${ctx}`);
      const s = makeStep(gpu, ctx, batch, 9000 + ctx, true);
      await gpu.finish();
      const keyBytes = batch * ctx * (DI + 4);
      const row: Record<string, unknown> = { section: 'indexer', batch, ctx, keyBytes };
      const put = (name: string, ms: number) => {
        row[`indexer_${name}_ms`] = round(ms);
        const gbps = keyBytes / (ms * 1e-3) / 1e9;
        row[`indexer_${name}_GBps`] = round(gbps);
        if (copyGBps) row[`indexer_${name}_ofCopy`] = round(gbps / copyGBps, 3);
      };
      const best = bestIndexerVariant(gpu, HI, DI, ctx);
      const multi = multiOf(s);
      const withOut = (record: (out: GPUBuffer) => void) => () => {
        const out = gpu.buffer(batch * ctx * 4);
        record(out);
        gpu.release(out);
      };
      const variant = (v: IndexerVariant) => withOut(() => gpu.release(indexerScoresGpu(gpu, indexerArgs(s, v))));
      const fused2 = (c: Fused2Config) => withOut((out) => indexerScoresFused2Gpu(gpu, indexerArgs(s, 'matrix-fused2'), out, c, multi));
      const candidates: [string, () => void][] = [];
      for (const v of VARIANTS) if (indexerVariantAvailable(gpu, v, HI, DI)) candidates.push([v, variant(v)]);
      for (const [name, c] of sweep) candidates.push([`sweep_${name}`, fused2(c)]);
      for (const probe of FUSED2_PROBES) candidates.push([`fused2_${probe}`, fused2({ ...FUSED2_CONFIGS['matrix-fused2'], probe })]);
      const int8Parts = int8Forms.length ? int8Candidates(gpu, s, multi, int8Forms) : null;
      if (int8Parts) candidates.push(...int8Parts.candidates);
      row.indexerVariant = best;
      // The GPU's clocks up first; then every candidate once per round, rounds interleaved, so a
      // drift of the clocks during the section moves all of them alike (medians reported); each
      // time a burst of BURST_MS (step.ts), the repetitions from the candidate's first time.
      await warmUp(gpu, variant(best), 1500);
      const reps = new Map<string, number>();
      for (const [name, record] of candidates) reps.set(name, burstReps(await passMs(gpu, record)));
      const burst = async (name: string, record: () => void) => {
        const n = reps.get(name) ?? 1;
        return (await passMs(gpu, () => { for (let i = 0; i < n; i++) record(); })) / n;
      };
      reps.set('first', reps.get(best) ?? 1);
      put('first', await burst('first', variant(best)));
      const times = new Map<string, number[]>(candidates.map(([name]) => [name, []]));
      for (let r = 0; r < o.runs; r++) for (const [name, record] of candidates) times.get(name)!.push(await burst(name, record));
      for (const [name, ms] of times) put(name, median(ms));
      put('last', await burst('first', variant(best)));
      o.emit(row);
      int8Parts?.release();
      releaseStep(gpu, s);
      await gpu.finish();
    }
  }
}

/** The batched step's rows → table rows. */
function multiOf(s: StepData) {
  return { rowSeq: s.pages.rowSeq!, tableStride: s.pages.nPages, seqs: s.pages.seqs ?? 1 };
}
