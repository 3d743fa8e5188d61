/**
 * Multi-key associative recall (MQAR): `pairs` records [NEEDLE key SEP value] with distinct keys
 * at random depths in random filler, then `queries` questions [QUERY key SEP value] about
 * distinct records in random order; each value is an answer.
 */
import type { Rng } from '../../generate/sampler.js';
import { randInt } from '../data/seed.js';
import { checkContext, countOption, distinctKeys, drawIds, layout, record, taskVocab, type SyntheticTask, type TaskSample, type TaskVocab } from './task.js';

export interface RecallOptions {
  /** Key→value records in the context (default 8). */
  pairs?: number;
  /** Questions at the end, each about a different record (default 4, at most `pairs`). */
  queries?: number;
  /** Ids per key (default 1). */
  keyLength?: number;
  /** Ids per value (default 1). */
  valueLength?: number;
}

export class RecallTask implements SyntheticTask {
  readonly name = 'recall';
  readonly pairs: number;
  readonly queries: number;
  readonly keyLength: number;
  readonly valueLength: number;

  constructor(
    readonly vocab: TaskVocab,
    opts: RecallOptions = {},
  ) {
    this.pairs = countOption(opts.pairs, 8, 'recall: pairs');
    this.queries = countOption(opts.queries, Math.min(4, this.pairs), 'recall: queries');
    this.keyLength = countOption(opts.keyLength, 1, 'recall: key length');
    this.valueLength = countOption(opts.valueLength, 1, 'recall: value length');
    if (this.queries > this.pairs) throw new RangeError(`recall: ${this.queries} queries need at least as many pairs (got ${this.pairs})`);
    const space = (vocab.keys.hi - vocab.keys.lo) ** this.keyLength;
    if (this.pairs > space) throw new RangeError(`recall: ${this.pairs} distinct keys of ${this.keyLength} ids do not exist among ${vocab.keys.hi - vocab.keys.lo} key symbols (use longer keys or a larger vocabulary)`);
  }

  get minContextLength(): number {
    return (this.pairs + this.queries) * (2 + this.keyLength + this.valueLength);
  }

  sample(contextLength: number, rng: Rng): TaskSample {
    checkContext(this, contextLength);
    const v = this.vocab;
    const keys = distinctKeys(rng, v.keys, this.keyLength, this.pairs);
    const values = keys.map(() => drawIds(rng, v.values, this.valueLength));
    const records = keys.map((k, i) => record(v.needle, k, v.sep, values[i]!));
    // A random choice of `queries` distinct records, in random order (partial Fisher–Yates).
    const order = keys.map((_, i) => i);
    for (let i = 0; i < this.queries; i++) {
      const j = randInt(rng, i, order.length);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const questions = order.slice(0, this.queries).map((i) => ({ ids: record(v.query, keys[i]!, v.sep, values[i]!), answerLength: this.valueLength, of: i }));
    return layout(v, rng, contextLength, records, questions);
  }
}

export function recallTask(vocabSize: number, opts: RecallOptions = {}): RecallTask {
  return new RecallTask(taskVocab(vocabSize), opts);
}
