/**
 * DeepSeek-V3.2 forward pass, read top to bottom: embedding → layers (RMSNorm → attention with
 * DSA → residual → RMSNorm → MLP or MoE → residual) → RMSNorm → lm_head. The model calls only
 * Backend operations. Prompts are processed in chunks of query rows, so no L×L matrix is built.
 */
import type { Backend, LatentFormat, Tensor } from '../backend/backend.js';
import { Checkpoint } from '../io/checkpoint.js';
import { KVCache, needsPrefillLatent, type Sequence } from './cache.js';
import { loadConfig, type ModelConfig } from './config.js';
import { mlp, moe } from './ffn.js';
import { attention } from './mla.js';
import { ropeTables, softmaxScale } from './rope.js';
import type { StepContext, StepOptions } from './step.js';
import { loadWeights, type LoadProgress, type ModelWeights } from './weights.js';

export type LogitRows = 'all' | 'last' | 'none';

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

  /**
   * A cache pool for `capacity` tokens in all, its latent stored as `latentFormat` (default 'f32',
   * the reference numerics; 'bf16' halves it, 'fp8' is FlashMLA's 656-byte layout at full size).
   */
  createCache(capacity: number, opts: { latentFormat?: LatentFormat } = {}): KVCache {
    const latentFormat = opts.latentFormat ?? 'f32';
    const fp8KvB = this.weights.layers.some((l) => l.attn.kvBIsFp8);
    const prefillLatent = needsPrefillLatent(fp8KvB, latentFormat);
    return new KVCache(this.backend, this.config, { capacity, prefillLatent, latentFormat });
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
    const b = this.backend;
    const cfg = this.config;
    const t = tokens.length;
    if (t === 0) throw new RangeError('step: no tokens');
    const start = seq.length;
    const end = start + t;
    if (end > cfg.maxPositionEmbeddings) {
      throw new RangeError(`position ${end - 1} exceeds the model's max_position_embeddings (${cfg.maxPositionEmbeddings})`);
    }
    seq.reserve(end);
    const positions = new Int32Array(t);
    for (let i = 0; i < t; i++) positions[i] = start + i;
    const { cos, sin } = this.ropeFor(end);
    const ctx: StepContext = { positions, posT: b.upload(positions, [t]), pages: seq.pages(), nKeys: end, cos, sin, opts };

    let h = b.embedding(this.weights.embed, b.upload(tokens, [t]));
    let moeIndex = 0;
    this.weights.layers.forEach((w, layer) => {
      const cache = seq.cache.layers[layer]!;
      const m = w.moe ? moeIndex++ : -1;
      h = b.scope(() => {
        const x = b.add(h, attention(b, cfg, layer, w.attn, cache, b.rmsNorm(h, w.inputNorm, cfg.rmsNormEps), ctx, this.scale));
        const f = b.rmsNorm(x, w.postAttnNorm, cfg.rmsNormEps);
        return b.add(x, w.moe ? moe(b, cfg, m, w.moe, f, ctx) : mlp(b, cfg, w.mlp!, f));
      });
      opts.observe?.hidden?.(layer, positions, h);
    });
    seq.length = end;
    if (logits === 'none') return null;
    const rows = logits === 'last' && t > 1 ? b.gatherRows(h, b.upload(Int32Array.of(t - 1), [1])) : h;
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
