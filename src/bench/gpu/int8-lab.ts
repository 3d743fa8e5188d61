/**
 * The int8 indexer experiment in the kernel lab (kernels/indexer-int8.ts): its check against the
 * CPU twin (src/bench/indexer-int8.ts) at the real head shape, and its timings over a batched step
 * for the indexer section — each scan form (`indexer_int8_<form>_ms`), the queries' re-quantization
 * a step adds (`indexer_int8_query_requant_ms`), and the cache's re-quantization, which a model would
 * do at cache-write time (`indexer_int8_keys_requant_ms`, once over the whole pool).
 */
import type { GpuDevice } from '../../backend/webgpu/device.js';
import { indexerInt8Available, indexerScoresInt8Gpu, int8ScanFormFor, requantInt8Gpu, type Int8ScanForm } from '../../backend/webgpu/kernels/indexer-int8.js';
import { indexerScoresInt8Paged } from '../indexer-int8.js';
import { DI, HI, PAGE } from './core-kernels.js';
import type { StepData } from './step.js';

/** The scan's forms the lab times (`indexer_int8_<name>_ms`; kernels/indexer-int8.ts), after the one the model runs (`indexer_int8_model_ms`). */
export const INT8_FORMS: Record<string, Int8ScanForm> = {
  direct: {},
  staged: { staged: true, qGlobal: false },
  'staged-wreg': { staged: true, wRegs: true, qGlobal: false },
  'staged-wreg-qg': { staged: true, wRegs: true, qGlobal: true },
  'staged-wreg-qg-ahead2': { staged: true, wRegs: true, qGlobal: true, ahead: 2 },
  'staged-wreg-qg-no-mma': { staged: true, wRegs: true, qGlobal: true, probe: 'no-mma' },
  'staged-wreg-qg-no-reduce': { staged: true, wRegs: true, qGlobal: true, probe: 'no-reduce' },
  'staged-wreg-qg-skeleton': { staged: true, wRegs: true, qGlobal: true, probe: 'skeleton' },
};

/** The forms this device can run. */
export function int8LabForms(gpu: GpuDevice): [string, Int8ScanForm][] {
  const model = int8ScanFormFor(gpu, HI, DI, PAGE);
  const forms = Object.entries(INT8_FORMS).filter(([, f]) => indexerInt8Available(gpu, HI, DI, PAGE, f));
  return model && !model.scalar ? [['model', model], ...forms] : forms;
}

/** Max error ÷ the row's max |score| of a tensor-core scan form against the CPU twin: 2 rows, 300 keys through a shuffled table (a wrong mask counts as ∞). */
export async function checkIndexerInt8(gpu: GpuDevice, form: Int8ScanForm): Promise<number> {
  const nKeys = 300;
  const nPages = Math.ceil(nKeys / PAGE);
  const table = Int32Array.from({ length: nPages }, (_, i) => (i * 2 + 1) % nPages);
  const slots = nPages * PAGE;
  let seed = 12345;
  const next = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) >>> 8) / 2 ** 24;
  const code = () => {
    const c = Math.floor(next() * 256);
    return (c & 0x7f) === 0x7f ? c ^ 1 : c;
  };
  const kc = Uint8Array.from({ length: slots * DI }, code);
  const kScale = Float32Array.from({ length: slots }, () => 0.01 + next());
  const rows = 2;
  const q8 = Uint8Array.from({ length: rows * HI * DI }, code);
  const w = Float32Array.from({ length: rows * HI }, () => next() - 0.4);
  const positions = Int32Array.of(nKeys - 1, 130);
  const up = (a: ArrayBufferView) => gpu.buffer(a.byteLength, a);
  const keys = requantInt8Gpu(gpu, up(kc), up(kScale), slots, DI);
  const qs = requantInt8Gpu(gpu, up(q8), up(w), rows * HI, DI);
  const out = gpu.buffer(rows * nKeys * 4);
  indexerScoresInt8Gpu(gpu, { qI8: qs.codes, wq: qs.scale, kI8: keys.codes, kScale: keys.scale, table: up(table), pageSize: PAGE, positions: up(positions), rows, heads: HI, dim: DI, nKeys }, out, null, form);
  const got = new Float32Array(await gpu.read(out, rows * nKeys * 4));
  let worst = 0;
  for (let row = 0; row < rows; row++) {
    const n = positions[row]! + 1;
    const want = indexerScoresInt8Paged(q8.subarray(row * HI * DI, (row + 1) * HI * DI), HI, DI, w.subarray(row * HI, (row + 1) * HI), kc, kScale, table, PAGE, n);
    const scale = Math.max(...Array.from(want, Math.abs));
    for (let s = 0; s < nKeys; s++) {
      const v = got[row * nKeys + s]!;
      worst = Math.max(worst, s >= n ? (v === -Infinity ? 0 : Infinity) : Math.abs(v - want[s]!) / scale);
    }
  }
  return worst;
}

/** The step's candidates for the indexer section's rounds (`forms`: those that passed their check), after re-quantizing the step's key cache once; and that pass's time. */
export function int8Candidates(gpu: GpuDevice, s: StepData, multi: { rowSeq: GPUBuffer; tableStride: number; seqs: number }, forms: [string, Int8ScanForm][]): { candidates: [string, () => void][]; release: () => void } {
  const slots = s.poolPages * PAGE;
  const keys = requantInt8Gpu(gpu, s.kCache, s.kScale, slots, DI);
  const qs = requantInt8Gpu(gpu, s.q8, s.w, s.rows * HI, DI);
  const args = (q: { codes: GPUBuffer; scale: GPUBuffer }) => ({
    qI8: q.codes, wq: q.scale, kI8: keys.codes, kScale: keys.scale, table: s.pages.table, pageSize: PAGE, positions: s.positions, rows: s.rows, heads: HI, dim: DI, nKeys: s.ctx,
  });
  const scan = (q: { codes: GPUBuffer; scale: GPUBuffer }, form: Int8ScanForm) => {
    const out = gpu.buffer(s.rows * s.ctx * 4);
    indexerScoresInt8Gpu(gpu, args(q), out, multi, form);
    gpu.release(out);
  };
  const candidates: [string, () => void][] = forms.map(([name, form]) => [`int8_${name}`, () => scan(qs, form)]);
  candidates.push(['int8_query_requant', () => {
    const q = requantInt8Gpu(gpu, s.q8, s.w, s.rows * HI, DI);
    gpu.release(q.codes);
    gpu.release(q.scale);
  }]);
  candidates.push(['int8_keys_requant', () => {
    const k = requantInt8Gpu(gpu, s.kCache, s.kScale, slots, DI);
    gpu.release(k.codes);
    gpu.release(k.scale);
  }]);
  return { candidates, release: () => [keys.codes, keys.scale, qs.codes, qs.scale].forEach((b) => gpu.release(b)) };
}
