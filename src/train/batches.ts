/**
 * Where training batches come from: `batch` sequences of `seqLen` input ids with their next-token
 * targets (−1 = no loss at that position). A source is deterministic given its state, and its state
 * is JSON, saved with every checkpoint, so a resumed run sees exactly the batches it would have seen.
 */
export interface Batch {
  ids: Int32Array;
  targets: Int32Array;
}

export interface BatchSource {
  /** A short description for logs (e.g. 'passkey, vocab 256'). */
  readonly description: string;
  next(batch: number, seqLen: number): Batch;
  state(): unknown;
  restore(state: unknown): void;
}
