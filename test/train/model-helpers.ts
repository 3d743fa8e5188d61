/** Test helpers of the trainer: a tiny trainable config and a deterministic in-test batch loader (a learnable pattern). */
import { SeededLoader, type Batch } from '../../src/train/data/batches.js';
import { itemRng, randInt } from '../../src/train/data/seed.js';
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
 * Sequences counting up by 3 from a random start (mod vocab), every 8th token random: mostly
 * predictable from the previous token, so a few steps show learning.
 */
export class CountLoader extends SeededLoader {
  constructor(
    seed: number,
    private readonly vocab: number,
    batchSize: number,
    seqLen: number,
  ) {
    super('count', { seed, batchSize, seqLen });
  }

  get data(): string {
    return `count(V=${this.vocab})`;
  }

  batchAt(index: number): Batch {
    const { batchSize: B, seqLen: T } = this;
    const rng = itemRng(this.seed, index);
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      let tok = randInt(rng, 0, this.vocab);
      const seq = Array.from({ length: T + 1 }, (_, i) => (tok = i % 8 === 7 ? randInt(rng, 0, this.vocab) : (tok + 3) % this.vocab));
      for (let i = 0; i < T; i++) {
        inputs[b * T + i] = seq[i]!;
        targets[b * T + i] = seq[i + 1]!;
      }
    }
    return { batchSize: B, seqLen: T, inputs, targets, mask: null };
  }
}
