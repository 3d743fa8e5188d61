/**
 * Compares two runs in the layout of `dsa logits` / the fixtures' expected.safetensors: logits by
 * max absolute and relative difference, discrete choices as sets (top-k selections, expert routes),
 * and greedy tokens. Used by `dsa compare` and the golden tests.
 */
import { SafetensorsFile } from '../io/safetensors.js';

export interface LogitDiff {
  rows: number;
  maxAbs: number;
  /** maxAbs divided by the largest |logit| of the reference. */
  rel: number;
  /** Median over rows of the row's max abs difference. */
  medianRow: number;
  argmaxDiffers: number;
}

export interface SetAgreement {
  rows: number;
  same: number;
  fraction: number;
  worstSymmetricDifference: number;
  /** Mean over rows of |A ∩ B| / |B| (B the reference row; 1 for an empty B): the share of keys kept. */
  meanOverlap: number;
}

export interface Comparison {
  prefill: LogitDiff | null;
  decode: LogitDiff | null;
  prefillTopk: SetAgreement | null;
  decodeTopk: SetAgreement | null;
  experts: SetAgreement | null;
  decodeTokensEqual: boolean | null;
  /** How many leading decode tokens of the run equal the reference's (a greedy chain's common prefix). */
  decodeTokensMatching: number | null;
}

export function diffLogits(a: Float32Array, ref: Float32Array, cols: number): LogitDiff {
  if (a.length !== ref.length) throw new RangeError(`logit tensors differ in size: ${a.length} vs ${ref.length}`);
  const rows = cols === 0 ? 0 : a.length / cols;
  let maxAbs = 0;
  let refMax = 0;
  let argmaxDiffers = 0;
  const perRow: number[] = [];
  for (let r = 0; r < rows; r++) {
    let rowMax = 0;
    let ia = 0;
    let ib = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const d = Math.abs(a[i]! - ref[i]!);
      if (!(d <= rowMax)) rowMax = d; // NaN propagates
      refMax = Math.max(refMax, Math.abs(ref[i]!));
      if (a[i]! > a[r * cols + ia]!) ia = c;
      if (ref[i]! > ref[r * cols + ib]!) ib = c;
    }
    if (ia !== ib) argmaxDiffers++;
    perRow.push(rowMax);
    if (!(rowMax <= maxAbs)) maxAbs = rowMax;
  }
  perRow.sort((x, y) => x - y);
  return { rows, maxAbs, rel: refMax > 0 ? maxAbs / refMax : maxAbs, medianRow: perRow[Math.floor(perRow.length / 2)] ?? 0, argmaxDiffers };
}

/** Rows of width wa and wb (−1 = padding) compared as sets. */
export function compareSets(a: Int32Array, wa: number, b: Int32Array, wb: number): SetAgreement {
  const rows = wa === 0 ? 0 : a.length / wa;
  if (wb === 0 || b.length / wb !== rows) throw new RangeError(`selection tensors have different row counts`);
  let same = 0;
  let worst = 0;
  let overlap = 0;
  for (let r = 0; r < rows; r++) {
    const sa = new Set<number>();
    const sb = new Set<number>();
    for (let j = 0; j < wa; j++) if (a[r * wa + j]! >= 0) sa.add(a[r * wa + j]!);
    for (let j = 0; j < wb; j++) if (b[r * wb + j]! >= 0) sb.add(b[r * wb + j]!);
    let diff = 0;
    for (const v of sa) if (!sb.has(v)) diff++;
    for (const v of sb) if (!sa.has(v)) diff++;
    if (diff === 0) same++;
    overlap += sb.size === 0 ? 1 : (sb.size - [...sb].filter((v) => !sa.has(v)).length) / sb.size;
    worst = Math.max(worst, diff);
  }
  return { rows, same, fraction: rows === 0 ? 1 : same / rows, worstSymmetricDifference: worst, meanOverlap: rows === 0 ? 1 : overlap / rows };
}

function lastDim(f: SafetensorsFile, name: string): number {
  const s = f.info(name).shape;
  return s[s.length - 1] ?? 1;
}

/** Compares run A with reference B tensor by tensor (whatever both files have). */
export function compareFiles(aPath: string, refPath: string): Comparison {
  const a = SafetensorsFile.open(aPath);
  const b = SafetensorsFile.open(refPath);
  try {
    const both = (name: string) => a.has(name) && b.has(name);
    const logits = (name: string) => (both(name) ? diffLogits(a.readF32(name), b.readF32(name), lastDim(b, name)) : null);
    const sets = (name: string) =>
      both(name) && a.info(name).numel > 0 ? compareSets(a.readInt32(name), lastDim(a, name), b.readInt32(name), lastDim(b, name)) : null;
    let tokens: boolean | null = null;
    let matching: number | null = null;
    if (both('decode_input_ids')) {
      const x = a.readInt32('decode_input_ids');
      const y = b.readInt32('decode_input_ids');
      tokens = x.length <= y.length && x.every((v, i) => v === y[i]);
      matching = 0;
      while (matching < Math.min(x.length, y.length) && x[matching] === y[matching]) matching++;
    }
    return {
      prefill: logits('prefill_logits'),
      decode: logits('decode_logits'),
      prefillTopk: sets('prefill_topk_all'),
      decodeTopk: sets('decode_topk'),
      experts: sets('moe_experts'),
      decodeTokensEqual: tokens,
      decodeTokensMatching: matching,
    };
  } finally {
    a.close();
    b.close();
  }
}
