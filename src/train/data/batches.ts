/**
 * Batches for training: random windows of seq_len + 1 tokens from a token stream, inputs the
 * first seq_len, targets the last seq_len. Batch i is drawn from a generator seeded (seed, i)
 * alone, so the loader's whole state is {seed, index}: a resumed run restores it and gets the
 * same batches as the run that was killed. The stream's tail is held out for validation, read as
 * fixed consecutive windows (the same ones at every evaluation).
 */
import { checkSeed, itemRng, randInt } from './seed.js';
import type { TokenSource } from './source.js';

export interface Batch {
  batchSize: number;
  seqLen: number;
  /** [batchSize, seqLen], row-major: the ids the model reads. */
  inputs: Int32Array;
  /** [batchSize, seqLen]: the id each position should predict (the inputs shifted by one). */
  targets: Int32Array;
  /** [batchSize, seqLen]: 1 where the target counts in the loss; null when every target does. */
  mask: Uint8Array | null;
}

/** Everything a loader needs to continue where it was (JSON-serializable). */
export interface LoaderState {
  kind: string;
  seed: number;
  /** The index of the next batch. */
  index: number;
  batchSize: number;
  seqLen: number;
  /** What the loader reads: checked on restore so a state is not applied to other data. */
  data: string;
}

/** A deterministic, resumable stream of batches. */
export interface BatchSource {
  readonly batchSize: number;
  readonly seqLen: number;
  /** The next batch (batchAt(index), then index + 1). */
  next(): Batch;
  /** Batch i of the stream, whatever the current position. */
  batchAt(index: number): Batch;
  state(): LoaderState;
  restore(state: LoaderState): void;
}

export interface LoaderOptions {
  seqLen: number;
  batchSize: number;
  seed: number;
}

export function checkShape(o: { seqLen: number; batchSize: number }): void {
  if (!Number.isInteger(o.seqLen) || o.seqLen < 1) throw new RangeError(`seq_len must be an integer ≥ 1, got ${o.seqLen}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new RangeError(`batch size must be an integer ≥ 1, got ${o.batchSize}`);
}

/** Splits one window of seqLen + 1 ids into row `row` of inputs and targets. */
export function putWindow(window: Int32Array, row: number, inputs: Int32Array, targets: Int32Array): void {
  const T = window.length - 1;
  inputs.set(window.subarray(0, T), row * T);
  targets.set(window.subarray(1), row * T);
}

/** The shared position/state logic of the loaders; subclasses say how batch i is made. */
export abstract class SeededLoader implements BatchSource {
  readonly batchSize: number;
  readonly seqLen: number;
  readonly seed: number;
  protected index = 0;

  constructor(
    readonly kind: string,
    opts: LoaderOptions,
  ) {
    checkShape(opts);
    this.batchSize = opts.batchSize;
    this.seqLen = opts.seqLen;
    this.seed = checkSeed(opts.seed);
  }

  /** Identifies the data, for restore's check. */
  abstract get data(): string;
  abstract batchAt(index: number): Batch;

  next(): Batch {
    const b = this.batchAt(this.index);
    this.index++;
    return b;
  }

  state(): LoaderState {
    return { kind: this.kind, seed: this.seed, index: this.index, batchSize: this.batchSize, seqLen: this.seqLen, data: this.data };
  }

  restore(s: LoaderState): void {
    const mine = this.state();
    for (const k of ['kind', 'seed', 'batchSize', 'seqLen', 'data'] as const) {
      if (s[k] !== mine[k]) throw new Error(`cannot restore the batch loader: its ${k} is ${JSON.stringify(mine[k])} but the saved state's is ${JSON.stringify(s[k])}`);
    }
    if (!Number.isInteger(s.index) || s.index < 0) throw new Error(`cannot restore the batch loader: bad index ${JSON.stringify(s.index)}`);
    this.index = s.index;
  }
}

/** A range [begin, end) of a token stream. */
export interface TokenRange {
  begin: number;
  end: number;
}

/** Random windows from tokens [range.begin, range.end) of a source. */
export class TokenBatchLoader extends SeededLoader {
  readonly range: TokenRange;

  constructor(
    readonly source: TokenSource,
    opts: LoaderOptions & { range?: TokenRange },
  ) {
    super('tokens', opts);
    this.range = opts.range ?? { begin: 0, end: source.length };
    const { begin, end } = this.range;
    if (!(Number.isInteger(begin) && Number.isInteger(end) && 0 <= begin && begin <= end && end <= source.length)) {
      throw new RangeError(`${source.name}: bad token range [${begin}, ${end}) of ${source.length} tokens`);
    }
    if (end - begin < this.seqLen + 1) {
      throw new Error(`${source.name}: ${end - begin} training tokens cannot fill one window of seq_len + 1 = ${this.seqLen + 1}`);
    }
  }

  get data(): string {
    return `${this.source.name}[${this.range.begin},${this.range.end})`;
  }

  batchAt(index: number): Batch {
    const { batchSize: B, seqLen: T } = this;
    const rng = itemRng(this.seed, index);
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    const window = new Int32Array(T + 1);
    for (let b = 0; b < B; b++) {
      const start = randInt(rng, this.range.begin, this.range.end - T);
      putWindow(this.source.read(start, T + 1, window), b, inputs, targets);
    }
    return { batchSize: B, seqLen: T, inputs, targets, mask: null };
  }
}

/** The training and validation ranges: the last `valFraction` of the stream is validation. */
export function splitRange(length: number, valFraction: number): { train: TokenRange; val: TokenRange } {
  if (!(valFraction >= 0 && valFraction < 1)) throw new RangeError(`validation fraction must be in [0, 1), got ${valFraction}`);
  const cut = length - Math.floor(length * valFraction);
  return { train: { begin: 0, end: cut }, val: { begin: cut, end: length } };
}

/**
 * The validation batches: consecutive windows of seq_len + 1 at a stride of seq_len (every
 * validation token is a target once), at most `maxBatches` batches, the last possibly smaller.
 */
export function validationBatches(source: TokenSource, range: TokenRange, opts: { seqLen: number; batchSize: number; maxBatches?: number }): Batch[] {
  checkShape(opts);
  const T = opts.seqLen;
  const windows = Math.floor((range.end - range.begin - 1) / T);
  if (windows < 1) throw new Error(`${source.name}: ${range.end - range.begin} validation tokens cannot fill one window of seq_len + 1 = ${T + 1}`);
  const total = Math.min(windows, (opts.maxBatches ?? Infinity) * opts.batchSize);
  const out: Batch[] = [];
  const window = new Int32Array(T + 1);
  for (let w0 = 0; w0 < total; w0 += opts.batchSize) {
    const B = Math.min(opts.batchSize, total - w0);
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) putWindow(source.read(range.begin + (w0 + b) * T, T + 1, window), b, inputs, targets);
    out.push({ batchSize: B, seqLen: T, inputs, targets, mask: null });
  }
  return out;
}

/** Checks every id of a batch against the model's vocabulary (a clear error instead of an out-of-range embedding read). */
export function checkBatchVocab(batch: Batch, vocabSize: number, what = 'batch'): void {
  for (const arr of [batch.inputs, batch.targets]) {
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i]!;
      if (v < 0 || v >= vocabSize) throw new Error(`${what}: token id ${v} is outside the model's vocabulary (0..${vocabSize - 1})`);
    }
  }
}
