/**
 * DeepSeek-V3.2 forward pass, read top to bottom: embedding → layers (RMSNorm → attention with
 * DSA → residual → RMSNorm → MLP or MoE → residual) → RMSNorm → lm_head. The model calls only
 * Backend operations. Prompts are processed in chunks of query rows, so no L×L matrix is built.
 */
import type { Backend, LatentFormat, Tensor } from '../backend/backend.js';
import { Checkpoint } from '../io/checkpoint.js';
import { KVCache, needsPrefillLatent, type IndexerFormat, type Sequence } from './cache.js';
import { loadConfig, type ModelConfig } from './config.js';
import { mlp, moe } from './ffn.js';
import { attention } from './mla.js';
import { multiSeqPlan } from './multi-seq.js';
import { ropeTables, softmaxScale } from './rope.js';
import type { BatchContext, Segment, StepOptions } from './step.js';
import { loadWeights, loadWeightsAsync, type LoadProgress, type ModelWeights } from './weights.js';

export type LogitRows = 'all' | 'last' | 'none';

/** One sequence's tokens in a multi-sequence step. */
export interface BatchInput {
  seq: Sequence;
  tokens: Int32Array;
  /**
   * This sequence's path (default: the step's `opts.mode`): 'prefill' for prompt chunks, 'decode'
   * for generated tokens, so a sequence computes the same whatever it is batched with.
   */
  mode?: StepOptions['mode'];
}

export interface PrefillOptions extends Omit<StepOptions, 'mode'> {
  /** Query rows per chunk (default 256): memory per layer is O(chunk × context). */
  chunk?: number;
  logits: LogitRows;
  /** Receives each chunk's logits: rows [start, start + T) of the prompt (or only its last row). */
  onLogits?: (start: number, logits: Tensor) => void | Promise<void>;
  /** Called after each chunk with the tokens done so far. */
  onProgress?: (done: number, total: number) => void;
}

export const DEFAULT_CHUNK = 256;

export class Model {
  private cos: Tensor | null = null;
  private sin: Tensor | null = null;
  private ropeRows = 0;
  readonly scale: number;

  constructor(
    readonly config: ModelConfig,
    readonly weights: ModelWeights,
    readonly backend: Backend,
  ) {
    this.scale = softmaxScale(config);
  }

  /** Loads DIR/config.json and the checkpoint's weights onto the backend. */
  static load(dir: string, backend: Backend, progress?: LoadProgress): Model {
    const config = loadConfig(dir);
    const ckpt = Checkpoint.open(dir);
    try {
      return new Model(config, loadWeights(ckpt, config, backend, progress), backend);
    } finally {
      ckpt.close();
    }
  }

  /** Model.load that yields to the event loop after each layer (a server stays responsive). */
  static async loadAsync(dir: string, backend: Backend, progress?: LoadProgress): Promise<Model> {
    const config = loadConfig(dir);
    const ckpt = Checkpoint.open(dir);
    try {
      return new Model(config, await loadWeightsAsync(ckpt, config, backend, progress), backend);
    } finally {
      ckpt.close();
    }
  }

  /**
   * A cache pool for `capacity` tokens in all, its latent stored as `latentFormat` (default 'f32',
   * the reference numerics; 'bf16' halves it, 'fp8' is FlashMLA's 656-byte layout at full size),
   * its indexer keys as `indexerFormat` (default 'fp8', the reference; 'int8': cache.ts).
   */
  createCache(capacity: number, opts: { latentFormat?: LatentFormat; indexerFormat?: IndexerFormat } = {}): KVCache {
    const latentFormat = opts.latentFormat ?? 'f32';
    const fp8KvB = this.weights.layers.some((l) => l.attn.kvBIsFp8);
    const prefillLatent = needsPrefillLatent(fp8KvB, latentFormat);
    return new KVCache(this.backend, this.config, { capacity, prefillLatent, latentFormat, indexerFormat: opts.indexerFormat });
  }

  private ropeFor(end: number): { cos: Tensor; sin: Tensor } {
    if (end > this.ropeRows || !this.cos || !this.sin) {
      const rows = Math.min(Math.max(end, 2 * this.ropeRows, 256), this.config.maxPositionEmbeddings);
      const t = ropeTables(this.config, rows);
      if (this.cos) this.backend.dispose(this.cos);
      if (this.sin) this.backend.dispose(this.sin);
      this.cos = this.backend.upload(t.cos, [rows, t.half]);
      this.sin = this.backend.upload(t.sin, [rows, t.half]);
      this.ropeRows = rows;
    }
    return { cos: this.cos, sin: this.sin };
  }

  /**
   * One forward step: `tokens` at the sequence's next positions. Writes their cache entries and
   * returns the logits of all rows, the last row, or nothing.
   */
  step(seq: Sequence, tokens: Int32Array, opts: StepOptions, logits: LogitRows): Tensor | null {
    return this.stepBatch([{ seq, tokens }], opts, logits);
  }

  /**
   * One forward step over several sequences at once (continuous batching): each sequence's tokens
   * at its next positions. Projections and experts run once over all rows; cache writes, indexer,
   * top-k and attention too where the backend takes several sequences in one call (else per
   * sequence). Returns the logits of all rows (sequence after sequence),
   * the last row of each sequence, or nothing.
   */
  stepBatch(inputs: readonly BatchInput[], opts: StepOptions, logits: LogitRows): Tensor | null {
    const b = this.backend;
    const cfg = this.config;
    if (inputs.length === 0) throw new RangeError('step: no sequences');
    if (new Set(inputs.map((i) => i.seq)).size !== inputs.length) throw new RangeError('step: a sequence appears twice in one step');
    let maxEnd = 0;
    let t = 0;
    for (const { seq, tokens } of inputs) {
      if (tokens.length === 0) throw new RangeError('step: a sequence with no tokens');
      if (seq.cache !== inputs[0]!.seq.cache) throw new RangeError('step: sequences of one step must share one cache');
      const end = seq.length + tokens.length;
      if (end > cfg.maxPositionEmbeddings) {
        throw new RangeError(`position ${end - 1} exceeds the model's max_position_embeddings (${cfg.maxPositionEmbeddings})`);
      }
      maxEnd = Math.max(maxEnd, end);
      t += tokens.length;
    }
    const { cos, sin } = this.ropeFor(maxEnd);
    const positions = new Int32Array(t);
    const ids = new Int32Array(t);
    const segments: Segment[] = [];
    let row = 0;
    for (const { seq, tokens, mode } of inputs) {
      const start = seq.length;
      seq.reserve(start + tokens.length);
      const own = new Int32Array(tokens.length);
      for (let i = 0; i < tokens.length; i++) own[i] = start + i;
      positions.set(own, row);
      ids.set(tokens, row);
      const posT = b.upload(own, [own.length]);
      const segOpts = mode === undefined || mode === opts.mode ? opts : { ...opts, mode };
      segments.push({ start: row, positions: own, posT, pages: seq.pages(), pageIds: seq.pageIds, nKeys: start + tokens.length, cos, sin, opts: segOpts });
      row += tokens.length;
    }
    const batch: BatchContext = { positions, posT: inputs.length === 1 ? segments[0]!.posT : b.upload(positions, [t]), cos, sin, opts, segments };
    const cache = inputs[0]!.seq.cache;
    // The one-call plan's tensors (stacked block table, rowSeq) serve every layer: made here, outside
    // the layers' scopes, which free what they create (on a GPU the buffers are destroyed).
    multiSeqPlan(b, cfg, batch, cache.layers[0]!.latentPrefill !== null);

    let h = b.embedding(this.weights.embed, b.upload(ids, [t]));
    let moeIndex = 0;
    this.weights.layers.forEach((w, layer) => {
      const m = w.moe ? moeIndex++ : -1;
      h = b.scope(() => {
        const x = b.add(h, attention(b, cfg, layer, w.attn, cache.layers[layer]!, b.rmsNorm(h, w.inputNorm, cfg.rmsNormEps), batch, this.scale));
        const f = b.rmsNorm(x, w.postAttnNorm, cfg.rmsNormEps);
        return b.add(x, w.moe ? moe(b, cfg, m, w.moe, f, batch) : mlp(b, cfg, w.mlp!, f));
      });
      opts.observe?.hidden?.(layer, positions, h);
    });
    for (const { seq, tokens } of inputs) seq.length += tokens.length;
    if (logits === 'none') return null;
    let rows = h;
    if (logits === 'last' && t > inputs.length) {
      const last = Int32Array.from(segments, (s) => s.start + s.positions.length - 1);
      rows = b.gatherRows(h, b.upload(last, [last.length]));
    }
    return b.linear(b.rmsNorm(rows, this.weights.norm, cfg.rmsNormEps), this.weights.lmHead, null);
  }

  /** Runs a prompt through the model in chunks of query rows (prefill semantics). */
  async prefill(seq: Sequence, tokens: Int32Array, opts: PrefillOptions): Promise<void> {
    const chunk = opts.chunk ?? DEFAULT_CHUNK;
    if (!(chunk > 0)) throw new RangeError(`chunk must be positive, got ${chunk}`);
    for (let s = 0; s < tokens.length; s += chunk) {
      const part = tokens.subarray(s, Math.min(s + chunk, tokens.length));
      const isLast = s + part.length === tokens.length;
      const rows: LogitRows = opts.logits === 'all' ? 'all' : opts.logits === 'last' && isLast ? 'last' : 'none';
      const out = this.step(seq, part, { ...opts, mode: 'prefill' }, rows);
      if (out && opts.onLogits) await opts.onLogits(rows === 'last' ? s + part.length - 1 : s, out);
      opts.onProgress?.(s + part.length, tokens.length);
    }
  }

  /** One decode step for one token (the reference's single-token path); returns its logits [1, V]. */
  decode(seq: Sequence, token: number, opts: Omit<StepOptions, 'mode'> = {}): Tensor {
    return this.step(seq, Int32Array.of(token), { ...opts, mode: 'decode' }, 'last')!;
  }
}
