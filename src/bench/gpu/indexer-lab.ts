/**
 * The kernel lab's indexer section (`dsa bench gpu --sections indexer`): the FP8 indexer scan over
 * a whole batch in one grid, per context and batch, for the tensor-core kernels and their forms:
 *  - `indexer_<variant>_ms`: the fused variants (indexer-fused.ts, indexer-fused2.ts);
 *  - `indexer_sweep_<name>_ms`: the 'matrix-fused2' forms of FUSED2_SWEEP (read-ahead depth, run
 *    length, the subgroups' share), each checked against the CPU twin first (`check` rows);
 *  - `indexer_<kernel>_<probe>_ms`: timing probes, one stage left out (the time saved is its share);
 *  - `indexer_first_ms` / `indexer_last_ms`: the default variant timed first and again last, so a
 *    GPU whose clocks moved during the section shows it.
 * GB/s count the key cache read (codes + scales); `_ofCopy` divides by the copy kernel's rate.
 */
import type { GpuDevice } from '../../backend/webgpu/device.js';
import { bestIndexerVariant, indexerScoresGpu, indexerVariantAvailable, type IndexerVariant } from '../../backend/webgpu/kernels/indexer.js';
import { FUSED_PROBES, indexerFusedAvailable, indexerScoresFusedGpu } from '../../backend/webgpu/kernels/indexer-fused.js';
import { FUSED2_CONFIGS, FUSED2_SWEEP, indexerFused2Available, indexerScoresFused2Gpu, type Fused2Config } from '../../backend/webgpu/kernels/indexer-fused2.js';
import { checkIndexer, DI, HI } from './core-kernels.js';
import type { LabOptions } from './lab.js';
import { gpuTimes, indexerArgs, makeStep, releaseStep, round, type StepData } from './step.js';

const VARIANTS: IndexerVariant[] = ['matrix-fused', ...(Object.keys(FUSED2_CONFIGS) as IndexerVariant[]).filter((v) => !v.includes('scalar'))];

export async function indexerSection(gpu: GpuDevice, o: LabOptions, copyGBps: number | null): Promise<void> {
  if (!indexerFusedAvailable(gpu, HI, DI)) {
    o.emit({ section: 'indexer', available: false, note: 'no tensor-core indexer on this device' });
    return;
  }
  const sweep = Object.entries(FUSED2_SWEEP).filter(([, c]) => indexerFused2Available(gpu, HI, DI, c));
  for (const [name, c] of sweep) o.emit({ section: 'check', kernel: `indexer-sweep-${name}-multiseq`, ...(await checkIndexer(gpu, c, true)) });
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
      const time = async (record: (out: GPUBuffer) => void) =>
        (await gpuTimes(gpu, o.runs, () => {
          const out = gpu.buffer(batch * ctx * 4);
          record(out);
          gpu.release(out);
        })).totalMs;
      const variant = (v: IndexerVariant) => time(() => gpu.release(indexerScoresGpu(gpu, indexerArgs(s, v))));
      const fused2 = (c: Fused2Config) => time((out) => indexerScoresFused2Gpu(gpu, indexerArgs(s, 'matrix-fused2'), out, c, multiOf(s)));
      row.indexerVariant = best;
      put('first', await variant(best));
      for (const v of VARIANTS) if (indexerVariantAvailable(gpu, v, HI, DI)) put(v, await variant(v));
      for (const [name, c] of sweep) put(`sweep_${name}`, await fused2(c));
      for (const probe of FUSED_PROBES) {
        put(`fused_${probe}`, await time((out) => indexerScoresFusedGpu(gpu, indexerArgs(s, 'matrix-fused'), out, { probe }, multiOf(s))));
        if (indexerFused2Available(gpu, HI, DI, FUSED2_CONFIGS['matrix-fused2-kt32'])) put(`fused2-kt32_${probe}`, await fused2({ ...FUSED2_CONFIGS['matrix-fused2-kt32'], probe }));
      }
      put('last', await variant(best));
      o.emit(row);
      releaseStep(gpu, s);
      await gpu.finish();
    }
  }
}

/** The batched step's rows → table rows. */
function multiOf(s: StepData) {
  return { rowSeq: s.pages.rowSeq!, tableStride: s.pages.nPages, seqs: s.pages.seqs ?? 1 };
}
