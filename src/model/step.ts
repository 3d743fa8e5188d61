/**
 * What one forward step knows about its tokens (positions, cache pages, rotary tables), and the two
 * hooks a caller can attach to it: observing the model's discrete choices (top-k selections, expert
 * routes) and forcing recorded ones in their place. Forcing is how two engines are compared tightly:
 * replay one's discrete choices in the other and compare the continuous outputs.
 */
import type { SeqPages, Tensor } from '../backend/backend.js';
import type { MultiSeqPlan } from './multi-seq.js';

/** Replaces the model's discrete choices. Each returns null to keep the model's own. */
export interface Forcing {
  /** Selected key positions [T, width] (−1 padded) for the rows at `positions` of `layer`. */
  topk?(layer: number, positions: Int32Array): Int32Array | null;
  /** Experts [T, num_experts_per_tok] for MoE layer number `moeIndex` (0 = first MoE layer). */
  experts?(moeIndex: number, positions: Int32Array): Int32Array | null;
}

/** Sees the model's own discrete choices (even when forced ones are used). */
export interface Observer {
  /** `own` is i32 [T, width] (ascending, −1 padded), or null when every key 0..position is selected. */
  topk?(layer: number, positions: Int32Array, own: Tensor | null): void;
  experts?(moeIndex: number, positions: Int32Array, chosen: Tensor): void;
  /** The indexer's scores f32 [T, nKeys] (−∞ after each position), whenever they are computed. */
  indexScores?(layer: number, positions: Int32Array, scores: Tensor): void;
  /** The residual stream f32 [T, d] after each layer. */
  hidden?(layer: number, positions: Int32Array, h: Tensor): void;
}

export interface StepOptions {
  /**
   * 'prefill' follows the reference's prompt path (MHA semantics: with an FP8 kv_b_proj the latent
   * is act-quantized before it meets the heads); 'decode' its one-token path (absorbed, unquantized).
   * In a multi-sequence step each segment carries its own (see BatchInput.mode).
   */
  mode: 'prefill' | 'decode';
  /** Attend to every earlier position (no indexer selection): the dense baseline. */
  dense?: boolean;
  force?: Forcing;
  observe?: Observer;
}

/**
 * One forward step over several sequences at once (continuous batching): their token rows are
 * stacked, every projection runs once over all of them, and the per-sequence parts (cache writes,
 * indexer scores, top-k, attention) run once over all rows where the backend takes several
 * sequences in one call (see multi-seq.ts), else per segment.
 */
export interface BatchContext {
  /** Positions of all T rows, sequence after sequence (host copy and device tensor). */
  positions: Int32Array;
  posT: Tensor;
  cos: Tensor;
  sin: Tensor;
  opts: StepOptions;
  /** Each sequence's rows: [start, start + positions.length) of the step. */
  segments: Segment[];
  /** The one-call plan over all segments, built by the first layer (null: per segment; absent: not built yet). */
  multi?: MultiSeqPlan | null;
}

export interface Segment extends StepContext {
  /** First row of this sequence in the step. */
  start: number;
  /** The host copy of `pages.blockTable` (needed to batch the sequences' DSA ops into one call). */
  pageIds?: readonly number[];
}

/** What one sequence's rows of a step know (used per segment of a BatchContext). */
export interface StepContext {
  /** Absolute positions of this step's T tokens (host copy and device tensor). */
  positions: Int32Array;
  posT: Tensor;
  pages: SeqPages;
  /** Keys in the cache after this step's writes (= last position + 1). */
  nKeys: number;
  cos: Tensor;
  sin: Tensor;
  opts: StepOptions;
}
