/**
 * Passkey (needle-in-a-haystack) retrieval: one record [NEEDLE key SEP value] at a random depth
 * in random filler, and at the end the question [QUERY key SEP] whose answer is the value.
 */
import type { Rng } from '../../generate/sampler.js';
import { checkContext, countOption, drawIds, layout, record, taskVocab, type SyntheticTask, type TaskSample, type TaskVocab } from './task.js';

export interface PasskeyOptions {
  /** Ids in the key (default 2). */
  keyLength?: number;
  /** Ids in the value, the answer (default 4). */
  valueLength?: number;
}

export class PasskeyTask implements SyntheticTask {
  readonly name = 'passkey';
  readonly keyLength: number;
  readonly valueLength: number;

  constructor(
    readonly vocab: TaskVocab,
    opts: PasskeyOptions = {},
  ) {
    this.keyLength = countOption(opts.keyLength, 2, 'passkey: key length');
    this.valueLength = countOption(opts.valueLength, 4, 'passkey: value length');
  }

  /** BOS + record + question, less the one id not read. */
  get minContextLength(): number {
    return 2 * (2 + this.keyLength + this.valueLength);
  }

  sample(contextLength: number, rng: Rng): TaskSample {
    checkContext(this, contextLength);
    const v = this.vocab;
    const key = drawIds(rng, v.keys, this.keyLength);
    const value = drawIds(rng, v.values, this.valueLength);
    return layout(v, rng, contextLength, [record(v.needle, key, v.sep, value)], [{ ids: record(v.query, key, v.sep, value), answerLength: this.valueLength, of: 0 }]);
  }
}

export function passkeyTask(vocabSize: number, opts: PasskeyOptions = {}): PasskeyTask {
  return new PasskeyTask(taskVocab(vocabSize), opts);
}
