/**
 * The Backend interface: every operation the model performs, on opaque device tensors.
 *
 * The model (src/model/) calls only these operations and never sees how a device runs them.
 * Operations are issued synchronously and return tensor handles at once; a device may run them
 * later (a GPU queues them). Only `read` waits for results. Operations never modify their inputs,
 * except `writeRows`, which scatters rows into a cache tensor.
 *
 * Tensors are row-major and contiguous. Shapes below use T = token rows of the current step,
 * H = heads, S = keys (cache positions), K = selected keys per query.
 */
import type { ScaleFormat } from '../numerics/block-quant.js';

export type { ScaleFormat };
/** Element types. 'bf16' tensors hold bfloat16 bit patterns (a Uint16Array on the host). */
export type DType = 'f32' | 'i32' | 'u8' | 'bf16';

export type HostArray = Float32Array | Int32Array | Uint8Array | Uint16Array;

/**
 * How the MLA latent cache stores one token's entry [c_kv (r) | k_rope (dr)]:
 * - 'f32': f32 [slots, r + dr], the reference numerics;
 * - 'bf16': bf16 [slots, r + dr] (round to nearest even), what the DeepSeek demo and vLLM keep;
 * - 'fp8': u8 [slots, r + 4·r/128 + 2·dr], FlashMLA's layout (656 B at r 512, dr 64): r e4m3 codes of
 *   c_kv, then r/128 little-endian float32 scales (one per 128 values, powers of two: ue8m0, from
 *   the block's amax as in the activation quantizer), then dr little-endian bf16 values of k_rope.
 *   Requires r to be a multiple of 128.
 */
export type LatentFormat = 'f32' | 'bf16' | 'fp8';

export const LATENT_FORMATS: readonly LatentFormat[] = ['f32', 'bf16', 'fp8'];

/** Values of c_kv per float32 scale in the 'fp8' latent format. */
export const LATENT_FP8_BLOCK = 128;

/** The dtype of a latent cache tensor in `format`. */
export function latentDType(format: LatentFormat): DType {
  return format === 'f32' ? 'f32' : format === 'bf16' ? 'bf16' : 'u8';
}

/** Elements per row of a latent cache tensor in `format` (bytes, for 'fp8'). Throws if 'fp8' and r % 128 ≠ 0. */
export function latentRowWidth(format: LatentFormat, r: number, dr: number): number {
  if (format !== 'fp8') return r + dr;
  if (!(r > 0 && r % LATENT_FP8_BLOCK === 0)) {
    throw new RangeError(`the fp8 latent cache needs kv_lora_rank to be a multiple of ${LATENT_FP8_BLOCK}, got ${r}`);
  }
  return r + (4 * r) / LATENT_FP8_BLOCK + 2 * dr;
}

/** Bytes per row (one token, one layer) of a latent cache in `format`. */
export function latentRowBytes(format: LatentFormat, r: number, dr: number): number {
  const width = latentRowWidth(format, r, dr);
  return format === 'f32' ? 4 * width : format === 'bf16' ? 2 * width : width;
}

export interface Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
}

/** A linear layer's weight [outDim, inDim] in the format the checkpoint stores it. */
export type HostWeight =
  | { format: 'f32'; outDim: number; inDim: number; data: Float32Array }
  | { format: 'bf16'; outDim: number; inDim: number; data: Uint16Array }
  | {
      format: 'fp8';
      outDim: number;
      inDim: number;
      /** e4m3 codes [outDim, inDim]. */
      data: Uint8Array;
      /** Block scales [ceil(outDim / blockOut), ceil(inDim / blockIn)]: real = e4m3(code) * scaleInv. */
      scaleInv: Float32Array;
      block: [number, number];
    };

export type WeightFormat = HostWeight['format'];

/** A weight uploaded to a backend. */
export interface Weight {
  readonly format: WeightFormat;
  readonly outDim: number;
  readonly inDim: number;
}

/**
 * How positions map to cache slots. One sequence: slot(p) = blockTable[p / pageSize] * pageSize + p % pageSize.
 * Several sequences in one call (continuous batching: one grid over every sequence of a step): row t
 * of the op belongs to sequence rowSeq[t] and its positions map through that sequence's row of a
 * 2-D table, slot(t, p) = blockTable[rowSeq[t], p / pageSize] * pageSize + p % pageSize.
 */
export interface SeqPages {
  /** i32 [pages] (one sequence), or i32 [seqs, maxPages] with rowSeq (entries past a sequence's pages are never read). */
  readonly blockTable: Tensor;
  readonly pageSize: number;
  /** i32 [T]: the blockTable row of each of the op's T rows. Absent: every row belongs to the one sequence of a 1-D blockTable. */
  readonly rowSeq?: Tensor;
}

export interface RouteOptions {
  topk: number;
  nGroup: number;
  topkGroup: number;
  scoring: 'sigmoid' | 'softmax';
  normalize: boolean;
  scale: number;
}

export interface Backend {
  readonly name: string;
  /**
   * Whether writeRows, indexerScores and mlaAttention accept a SeqPages with rowSeq (several
   * sequences in one call). Absent or false: the model issues those ops once per sequence.
   */
  readonly multiSequence?: boolean;

  // ---- memory ----
  upload(data: HostArray, shape: readonly number[]): Tensor;
  zeros(shape: readonly number[], dtype: DType): Tensor;
  read(t: Tensor): Promise<HostArray>;
  /** Same storage, new shape (sizes must match). */
  reshape(t: Tensor, shape: readonly number[]): Tensor;
  dispose(t: Tensor): void;
  uploadWeight(w: HostWeight): Weight;
  /** Tensors created inside fn are disposed when it returns, except those it returns (in an array or object). */
  scope<R>(fn: () => R): R;

  // ---- element-wise and shape ----
  add(a: Tensor, b: Tensor): Tensor;
  mul(a: Tensor, b: Tensor): Tensor;
  scale(a: Tensor, c: number): Tensor;
  /** silu(gate) * up. */
  swiglu(gate: Tensor, up: Tensor): Tensor;
  /** x [..., n] → x[..., start:start+len]. */
  sliceLast(x: Tensor, start: number, len: number): Tensor;
  /** Rows start..start+len-1 of x [R, ...] → [len, ...] (a copy). */
  sliceRows(x: Tensor, start: number, len: number): Tensor;
  /** Tensors [R_i, ...] with equal trailing dims stacked along the first dim → [Σ R_i, ...]. */
  concatRows(parts: readonly Tensor[]): Tensor;
  /** Rows of x [R, n] at the given indices (i32 [M]) → [M, n]. */
  gatherRows(x: Tensor, rows: Tensor): Tensor;
  /** argmax over the last dim: [R, n] → i32 [R]. */
  argmax(x: Tensor): Tensor;

  // ---- layers ----
  /** Rows of an embedding table [V, d] at ids (i32 [T]) → f32 [T, d]. */
  embedding(table: Weight, ids: Tensor): Tensor;
  /** x * rsqrt(mean(x²) + eps) * w over the last dim. */
  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor;
  /** Standard LayerNorm over the last dim with weight and bias. */
  layerNorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor;
  /**
   * x [T, inDim] · wᵀ → [T, outDim]. With an FP8 weight and actQuant set, the activation rows are
   * quantized to e4m3 in 128-blocks first and the product is the reference's block-scaled FP8 GEMM;
   * otherwise the weight is used at its real value and the product is float32.
   */
  linear(x: Tensor, w: Weight, actQuant: ScaleFormat | null): Tensor;
  /** Per head: x [T, H, n] with w [H, n, m] → [T, H, m]; with transposeW, w is [H, m, n]. */
  headMatmul(x: Tensor, w: Tensor, transposeW: boolean): Tensor;
  /**
   * Rotary embedding on x [T, heads, dim] over dims [offset, offset + 2·cos.shape[1]), using rows
   * positions[t] of the cos/sin tables [maxPos, rotaryDim/2]. Interleaved pairs (x[2i], x[2i+1]) or
   * half-split pairs (x[i], x[i + rotaryDim/2]).
   */
  rope(x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor, offset: number, interleaved: boolean): Tensor;
  /** Normalized Walsh–Hadamard transform (Sylvester order, scaled by n^-0.5) over the last dim. */
  hadamard(x: Tensor): Tensor;
  /** Block FP8 quantization of rows: x [R, n] → codes u8 [R, n], scales f32 [R, ceil(n/block)]. */
  quantFp8(x: Tensor, block: number, fmt: ScaleFormat): { q: Tensor; s: Tensor };
  /** FP8 codes back to float32 with their block scales (the inverse of quantFp8, up to rounding). */
  dequantFp8(q: Tensor, s: Tensor, block: number): Tensor;

  // ---- cache ----
  /** dst[slot(positions[t]), colOffset : colOffset + n] = src[t, :] for src [T, n] (dst and src of one dtype, any dtype). */
  writeRows(dst: Tensor, pages: SeqPages, positions: Tensor, src: Tensor, colOffset: number): void;
  /**
   * Latent cache rows from c_kv f32 [T, r] and k_rope f32 [T, dr], in `format` (see LatentFormat):
   * 'f32' → f32 [T, r + dr] (the values unchanged); 'bf16' → bf16 [T, r + dr] (round to nearest
   * even); 'fp8' → u8 [T, r + 4·r/128 + 2·dr] (c_kv quantized per 128-block with ue8m0 scales,
   * bit-exact with the activation quantizer; k_rope as bf16). Ready for `writeRows`.
   */
  packLatent(ckv: Tensor, kPe: Tensor, format: LatentFormat): Tensor;

  // ---- DSA ----
  /**
   * Lightning-indexer scores of queries against the cached FP8 keys 0..nKeys-1 of one sequence:
   * out[t, s] = kScale[s] · Σ_h w[t, h] · ReLU(q8[t, h] · k8[s]) for s ≤ positions[t], −∞ after.
   * q8 u8 [T, H, D], w f32 [T, H], kCache u8 [slots, D], kScale f32 [slots] → f32 [T, nKeys].
   */
  indexerScores(q8: Tensor, w: Tensor, kCache: Tensor, kScale: Tensor, pages: SeqPages, nKeys: number, positions: Tensor): Tensor;
  /**
   * FP8 e4m3 rows re-quantized to int8 with one scale per row (the int8 indexer's keys and
   * queries): q = round(127 · v / max|v|), halves away from zero; s = scaleIn · max|v| / 127 in
   * float32 (0 for a zero row). codes u8 [R, D], scaleIn f32 [R] or [R, 1] → q u8 [R, D] (int8
   * bytes), s f32 [R, 1].
   */
  requantInt8(codes: Tensor, scaleIn: Tensor): { q: Tensor; s: Tensor };
  /**
   * indexerScores over an int8 key cache with int8 queries (both from requantInt8):
   * out[t, s] = kScale[s] · Σ_h wq[t, h] · ReLU(qI8[t, h] · kI8[s]), −∞ after positions[t].
   * qI8 u8 [T, H, D] (int8 bytes), wq f32 [T, H], kCache u8 [slots, D] (int8 bytes), kScale f32
   * [slots] → f32 [T, nKeys]. H a multiple of 16, D of 32.
   */
  indexerScoresInt8(qI8: Tensor, wq: Tensor, kCache: Tensor, kScale: Tensor, pages: SeqPages, nKeys: number, positions: Tensor): Tensor;
  /**
   * Exact top-k of each row of scores [T, S] among keys 0..positions[t]: i32 [T, min(k, S)] holding
   * the selected key positions in ascending order, then −1 padding.
   */
  topk(scores: Tensor, k: number, positions: Tensor): Tensor;
  /**
   * MLA in MQA (absorbed) form for one sequence: query t of head h scores cached entry s as
   * (qLat[t,h] · latent[s, :r] + qPe[t,h] · latent[s, r:]) · scale, softmax over the attended
   * entries, and returns Σ p · latent[s, :r]: f32 [T, H, r]. qLat [T, H, r], qPe [T, H, dr].
   * The latent cache may be in any LatentFormat, told apart by its dtype (r from qLat, dr from qPe):
   * f32 or bf16 [slots, r + dr], or u8 [slots, latentRowWidth('fp8', r, dr)]; bf16 and fp8 rows are
   * decoded to float32 values (e4m3 · scale, bf16) before use. With indices (i32 [T, K], −1 = none)
   * only those entries are attended (sparse: O(K) per query); without, every position
   * 0..positions[t] (dense causal).
   */
  mlaAttention(
    qLat: Tensor,
    qPe: Tensor,
    latent: Tensor,
    pages: SeqPages,
    positions: Tensor,
    indices: Tensor | null,
    scale: number,
  ): Tensor;

  // ---- mixture of experts ----
  /**
   * Expert choice from gate logits [T, E]: scores = sigmoid (or softmax); with bias, choose by
   * scores + bias (group score = sum of the top-2 biased scores), else by scores (group score = max);
   * keep topkGroup groups; top `topk` experts. Weights = unbiased scores of the chosen experts,
   * normalized to sum 1 when asked, times scale. With `forced` (i32 [T, topk]) those experts are used
   * instead, weighted the same way. Returns experts i32 [T, topk] (the choice actually used) and
   * weights f32 [T, topk]; `chosen` is the model's own choice (equal to experts unless forced).
   */
  moeRoute(
    logits: Tensor,
    bias: Tensor | null,
    opts: RouteOptions,
    forced: Tensor | null,
  ): { experts: Tensor; weights: Tensor; chosen: Tensor };
  /**
   * Σ_j weights[t, j] · expert_{experts[t, j]}(x[t]) with expert(x) = down(silu(gate x) · up x),
   * each expert's linears as in `linear` with actQuant. x [T, d] → [T, d].
   */
  moeExperts(
    x: Tensor,
    experts: Tensor,
    weights: Tensor,
    gate: readonly Weight[],
    up: readonly Weight[],
    down: readonly Weight[],
    actQuant: ScaleFormat | null,
  ): Tensor;
}

/** Error thrown by backends for shape or dtype mismatches: names the op and what was wrong. */
export class ShapeError extends Error {
  constructor(op: string, message: string) {
    super(`${op}: ${message}`);
    this.name = 'ShapeError';
  }
}

/** Throws a ShapeError naming the op unless t has exactly `shape`. */
export function expectShape(op: string, what: string, t: Tensor, shape: readonly number[]): void {
  const ok = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
  if (!ok) throw new ShapeError(op, `${what} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
}

/** Throws a ShapeError naming the op unless b has a's shape. */
export function sameShape(op: string, a: Tensor, b: Tensor): void {
  expectShape(op, 'second operand', b, a.shape);
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * indexerScoresInt8's operands checked (both backends): qI8 [T, H, D], wq [T, H], positions [T],
 * key rows of D; H a multiple of 16 and D of 32 (the int8 kernels' tiles). Returns [T, H, D].
 */
export function int8ScanShape(qI8: Tensor, wq: Tensor, kCache: Tensor, positions: Tensor): [number, number, number] {
  const op = 'indexerScoresInt8';
  if (qI8.shape.length !== 3) throw new ShapeError(op, `expects qI8 [T, H, D], got [${qI8.shape.join(', ')}]`);
  const [rows, heads, dim] = qI8.shape as [number, number, number];
  expectShape(op, 'weights', wq, [rows, heads]);
  expectShape(op, 'positions', positions, [rows]);
  if (kCache.shape[1] !== dim) throw new ShapeError(op, `key cache rows have ${kCache.shape[1]} values, queries ${dim}`);
  if (heads % 16 || dim % 32) throw new ShapeError(op, `the int8 indexer needs heads a multiple of 16 and dims of 32, got ${heads} heads of ${dim}`);
  return [rows, heads, dim];
}
