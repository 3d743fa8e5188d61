/** Test helpers: a tiny trainable config and a deterministic in-test batch source (a learnable copy pattern). */
import type { Batch, BatchSource } from '../../src/train/batches.js';
import { smallConfigJson } from '../../src/train/model.js';

export function tinyTrainConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return smallConfigJson({
    vocab_size: 32,
    hidden_size: 32,
    intermediate_size: 48,
    num_attention_heads: 2,
    q_lora_rank: 16,
    kv_lora_rank: 16,
    qk_nope_head_dim: 8,
    qk_rope_head_dim: 4,
    v_head_dim: 8,
    index_n_heads: 2,
    index_head_dim: 8,
    index_topk: 4,
    max_position_embeddings: 256,
    ...over,
  });
}

/**
 * Sequences counting up by a fixed stride from a random start (mod vocab), with every `period`-th
 * token random: mostly predictable from the previous token, so a few steps show learning.
 */
export class CountSource implements BatchSource {
  readonly description = 'count by 3';
  private s: number;
  constructor(
    seed: number,
    private readonly vocab: number,
    private readonly period = 8,
  ) {
    this.s = seed >>> 0;
  }
  private rand(): number {
    this.s = (Math.imul(this.s, 1664525) + 1013904223) >>> 0;
    return this.s >>> 8;
  }
  next(batch: number, seqLen: number): Batch {
    const ids = new Int32Array(batch * seqLen);
    const targets = new Int32Array(batch * seqLen);
    for (let b = 0; b < batch; b++) {
      let tok = this.rand() % this.vocab;
      const seq = Array.from({ length: seqLen + 1 }, (_, i) => (tok = i % this.period === this.period - 1 ? this.rand() % this.vocab : (tok + 3) % this.vocab));
      for (let i = 0; i < seqLen; i++) {
        ids[b * seqLen + i] = seq[i]!;
        targets[b * seqLen + i] = seq[i + 1]!;
      }
    }
    return { ids, targets };
  }
  state(): unknown {
    return { s: this.s };
  }
  restore(state: unknown): void {
    this.s = (state as { s: number }).s;
  }
}
