/** The CPU backend keeps weights in their checkpoint format and decodes rows on the fly. */
import type { HostWeight, Weight } from '../backend.js';
import { ShapeError } from '../backend.js';
import { bf16ToF32 } from '../../numerics/bf16.js';
import { E4M3_TABLE } from '../../numerics/e4m3.js';

export class CpuWeight implements Weight {
  readonly format: HostWeight['format'];
  readonly outDim: number;
  readonly inDim: number;
  /**
   * @param heap where the weight's data and block scales live in the WASM heap (absent: JavaScript
   *   arrays only, used by the TypeScript kernels)
   */
  constructor(
    readonly host: HostWeight,
    readonly heap?: { ptr: number; scalePtr: number; owner: object },
  ) {
    this.format = host.format;
    this.outDim = host.outDim;
    this.inDim = host.inDim;
    const n = host.outDim * host.inDim;
    if (host.data.length !== n) {
      throw new ShapeError('uploadWeight', `${host.format} weight [${host.outDim}, ${host.inDim}] needs ${n} values, got ${host.data.length}`);
    }
    if (host.format === 'fp8') {
      const [bo, bi] = host.block;
      const want = Math.ceil(host.outDim / bo) * Math.ceil(host.inDim / bi);
      if (host.scaleInv.length !== want) {
        throw new ShapeError('uploadWeight', `fp8 weight [${host.outDim}, ${host.inDim}] needs ${want} block scales, got ${host.scaleInv.length}`);
      }
    }
  }
}

/** Table of bf16 → float32, built once (65536 entries). */
let bf16Table: Float32Array | undefined;
function bf16Lut(): Float32Array {
  if (!bf16Table) {
    bf16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) bf16Table[i] = bf16ToF32(i);
  }
  return bf16Table;
}

/** Writes row `row` of the weight's real values (scales applied) into dst[0 .. inDim). */
export function decodeRow(w: CpuWeight, row: number, dst: Float32Array): void {
  const h = w.host;
  const k = h.inDim;
  const base = row * k;
  if (h.format === 'f32') {
    dst.set(h.data.subarray(base, base + k));
  } else if (h.format === 'bf16') {
    const lut = bf16Lut();
    for (let j = 0; j < k; j++) dst[j] = lut[h.data[base + j]];
  } else {
    const [bo, bi] = h.block;
    const kb = Math.ceil(k / bi);
    const srow = Math.floor(row / bo) * kb;
    for (let j = 0; j < k; j++) dst[j] = E4M3_TABLE[h.data[base + j]] * h.scaleInv[srow + Math.floor(j / bi)];
  }
}

/** For FP8 weights: writes the unscaled e4m3 values of a row (exact in float32). */
export function decodeFp8Codes(w: CpuWeight, row: number, dst: Float32Array): void {
  const h = w.host;
  if (h.format !== 'fp8') throw new ShapeError('decodeFp8Codes', `weight is ${h.format}, not fp8`);
  const base = row * h.inDim;
  for (let j = 0; j < h.inDim; j++) dst[j] = E4M3_TABLE[h.data[base + j]];
}
