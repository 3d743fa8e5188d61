/**
 * The raw kernels training runs on: forward and backward of the heavy operations, on plain
 * Float32Arrays. The autograd ops (src/autograd/ops/) call only these for their heavy work, so a
 * device (WebGPU) implementation can replace the CPU one without touching the ops or the model.
 * Backward kernels ACCUMULATE into the gradient buffers they are given (null = not needed).
 */
import type { KeySets } from './keysets.js';

/** Shapes of MLA attention in MHA form: q [T, H, dn + dr], kv [T, H, dn + dv], kPe [T, dr]. */
export interface AttentionDims {
  heads: number;
  dn: number;
  dr: number;
  dv: number;
  scale: number;
}

export interface IndexerDims {
  heads: number;
  dim: number;
}

export interface TrainBackend {
  readonly name: string;
  /** y [M, N] = x [M, K] · wᵀ (w [N, K]). */
  matmulNT(x: Float32Array, w: Float32Array, m: number, k: number, n: number): Float32Array;
  /** dx [M, K] += dy [M, N] · w [N, K]. */
  matmulNNAcc(dy: Float32Array, w: Float32Array, m: number, n: number, k: number, dx: Float32Array): void;
  /** dw [N, K] += dyᵀ (dy [M, N]) · x [M, K]. */
  matmulTNAcc(dy: Float32Array, x: Float32Array, m: number, n: number, k: number, dw: Float32Array): void;

  /**
   * Attention of each row t over its keys: per head h, score(s) = (q_nope·k_nope[s] + q_pe·kPe[s]) · scale,
   * p = softmax over the keys, out[t, h] = Σ p(s) v[s, h]. Returns out [T, H, dv] and p ([nnz, H], parallel to keys).
   */
  attentionForward(q: Float32Array, kv: Float32Array, kPe: Float32Array, keys: KeySets, d: AttentionDims): { out: Float32Array; probs: Float32Array };
  attentionBackward(
    q: Float32Array,
    kv: Float32Array,
    kPe: Float32Array,
    keys: KeySets,
    d: AttentionDims,
    probs: Float32Array,
    dOut: Float32Array,
    dq: Float32Array | null,
    dkv: Float32Array | null,
    dkPe: Float32Array | null,
  ): void;

  /**
   * The lightning indexer's score of each listed key: I(t, s) = Σ_h w[t, h] · ReLU(q[t, h] · k[s]),
   * q [T, H_I, d_I], k [T, d_I], w [T, H_I]. Returns the scores (parallel to keys) and the dot products [nnz, H_I].
   */
  indexerForward(q: Float32Array, k: Float32Array, w: Float32Array, keys: KeySets, d: IndexerDims): { scores: Float32Array; dots: Float32Array };
  indexerBackward(
    q: Float32Array,
    k: Float32Array,
    w: Float32Array,
    keys: KeySets,
    d: IndexerDims,
    dots: Float32Array,
    dScores: Float32Array,
    dq: Float32Array | null,
    dk: Float32Array | null,
    dw: Float32Array | null,
  ): void;
}
