/**
 * The inference engine as a task scorer: a LogitsFn that prefills the sample through a Model
 * (DSA top-k selection, or dense with `dense`) and returns the logits of the asked positions only,
 * so memory stays O(chunk × vocab) at any context length.
 */
import type { LatentFormat } from '../../backend/backend.js';
import { DEFAULT_CHUNK, type Model } from '../../model/model.js';
import type { LogitsFn } from './evaluate.js';

export interface ModelLogitsOptions {
  /** Dense attention (every earlier position) instead of DSA's top-k selection. */
  dense?: boolean;
  /** Prefill query rows per chunk (default 256). */
  chunk?: number;
  /** Latent cache format (default 'f32'). */
  cache?: LatentFormat;
}

export function modelLogitsFn(model: Model, opts: ModelLogitsOptions = {}): LogitsFn {
  const b = model.backend;
  const V = model.config.vocabSize;
  return async (tokens, positions) => {
    const bad = tokens.findIndex((t) => t < 0 || t >= V);
    if (bad >= 0) throw new Error(`token ${tokens[bad]} at position ${bad} is outside the model's vocabulary (0..${V - 1})`);
    if (tokens.length > model.config.maxPositionEmbeddings) throw new Error(`context length ${tokens.length} exceeds the model's max_position_embeddings (${model.config.maxPositionEmbeddings})`);
    // Where each asked position's row goes in the output.
    const slots = new Map<number, number[]>();
    positions.forEach((p, i) => {
      if (!(p >= 0 && p < tokens.length)) throw new RangeError(`position ${p} is outside the sequence (0..${tokens.length - 1})`);
      slots.set(p, [...(slots.get(p) ?? []), i]);
    });
    const out = new Float32Array(positions.length * V);
    const seq = model.createCache(tokens.length, { latentFormat: opts.cache ?? 'f32' }).newSequence();
    try {
      await model.prefill(seq, tokens, {
        chunk: opts.chunk ?? DEFAULT_CHUNK,
        logits: 'all',
        dense: opts.dense,
        onLogits: async (start, t) => {
          const rows = (await b.read(t)) as Float32Array;
          b.dispose(t);
          for (let r = 0; r * V < rows.length; r++) {
            for (const i of slots.get(start + r) ?? []) out.set(rows.subarray(r * V, (r + 1) * V), i * V);
          }
        },
      });
    } finally {
      seq.release();
    }
    return out;
  };
}
