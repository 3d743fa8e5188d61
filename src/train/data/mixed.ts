/**
 * A mixture of batch streams (e.g. text and passkey samples): batch i is batch i of one of them,
 * picked with the given weights by a generator seeded (seed, i) — deterministic and resumable like
 * its parts. A stream without a loss mask gets an all-ones mask when any stream has one, so every
 * batch has the same form.
 */
import { itemRng } from './seed.js';
import { SeededLoader, type Batch, type BatchSource } from './batches.js';

export interface MixturePart {
  source: BatchSource;
  /** Relative frequency (> 0). */
  weight: number;
}

export class MixedBatchLoader extends SeededLoader {
  private readonly cumulative: number[];
  private readonly anyMask: boolean;

  constructor(
    readonly parts: readonly MixturePart[],
    seed: number,
  ) {
    const first = parts[0]?.source;
    if (!first) throw new Error('a mixture needs at least one batch stream');
    super('mixture', { seqLen: first.seqLen, batchSize: first.batchSize, seed });
    for (const p of parts) {
      if (p.source.seqLen !== first.seqLen || p.source.batchSize !== first.batchSize) {
        throw new Error(`mixture: every stream needs the same shape (got ${first.batchSize}×${first.seqLen} and ${p.source.batchSize}×${p.source.seqLen})`);
      }
      if (!(p.weight > 0 && Number.isFinite(p.weight))) throw new RangeError(`mixture: weights must be positive, got ${p.weight}`);
    }
    const total = parts.reduce((a, p) => a + p.weight, 0);
    let acc = 0;
    this.cumulative = parts.map((p) => (acc += p.weight / total));
    this.anyMask = parts.some((p) => p.source.batchAt(0).mask !== null);
  }

  get data(): string {
    return this.parts.map((p) => `${p.weight}×${p.source.state().data}`).join('+');
  }

  /** Which stream batch i comes from. */
  partAt(index: number): number {
    const u = itemRng(this.seed, index, 0x6d17).next();
    const j = this.cumulative.findIndex((c) => u < c);
    return j >= 0 ? j : this.parts.length - 1;
  }

  batchAt(index: number): Batch {
    const b = this.parts[this.partAt(index)]!.source.batchAt(index);
    if (b.mask === null && this.anyMask) return { ...b, mask: new Uint8Array(b.inputs.length).fill(1) };
    return b;
  }
}
