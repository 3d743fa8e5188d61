/**
 * Synthetic long-context tasks: sequences generated on the fly from a seed, for any context
 * length and vocabulary, whose answers can only be produced by reading far back.
 *
 * Vocabulary layout (taskVocab): 0 BOS, 1 NEEDLE (starts a key→value record), 2 SEP (between key
 * and value), 3 QUERY (starts a question), then key symbols, value symbols and filler tokens in
 * disjoint ranges, so a record or question is never confused with filler.
 *
 * A sample holds contextLength + 1 ids: the model reads the first contextLength and predicts the
 * last contextLength; the answer tokens are the targets that count (mask) and are scored.
 */
import type { Rng } from '../../generate/sampler.js';
import { randInt } from '../data/seed.js';

export interface IdRange {
  lo: number;
  /** Exclusive. */
  hi: number;
}

export interface TaskVocab {
  vocabSize: number;
  bos: number;
  needle: number;
  sep: number;
  query: number;
  keys: IdRange;
  values: IdRange;
  filler: IdRange;
}

export const MIN_TASK_VOCAB = 10;

/**
 * The default layout for a vocabulary of `vocabSize` ids: 4 specials, then keys and values a
 * quarter of the rest each (at most `maxSymbols` each), filler the remainder.
 */
export function taskVocab(vocabSize: number, maxSymbols = 256): TaskVocab {
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_TASK_VOCAB) throw new RangeError(`synthetic tasks need a vocabulary of at least ${MIN_TASK_VOCAB} ids, got ${vocabSize}`);
  const rest = vocabSize - 4;
  const n = Math.max(1, Math.min(maxSymbols, Math.floor(rest / 4)));
  return {
    vocabSize,
    bos: 0,
    needle: 1,
    sep: 2,
    query: 3,
    keys: { lo: 4, hi: 4 + n },
    values: { lo: 4 + n, hi: 4 + 2 * n },
    filler: { lo: 4 + 2 * n, hi: vocabSize },
  };
}

/** One question of a sample: its answer is targets [start, start + length). */
export interface AnswerSpan {
  start: number;
  length: number;
  /** Where the record it asks about sits, as a fraction of the context (0 = start, 1 = end). */
  depth: number;
}

export interface TaskSample {
  /** contextLength + 1 ids. */
  tokens: Int32Array;
  /** contextLength: 1 where the target (tokens[p + 1]) is an answer token. */
  mask: Uint8Array;
  answers: AnswerSpan[];
}

export interface SyntheticTask {
  readonly name: string;
  readonly vocab: TaskVocab;
  /** The smallest context length the task fits in. */
  readonly minContextLength: number;
  /** A sample of contextLength + 1 ids drawn from rng. */
  sample(contextLength: number, rng: Rng): TaskSample;
}

/** `value`, or `fallback` when undefined; a RangeError naming `what` unless it is an integer ≥ 1. */
export function countOption(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${what} must be an integer ≥ 1, got ${v}`);
  return v;
}

export function checkContext(task: SyntheticTask, contextLength: number): void {
  if (!Number.isInteger(contextLength) || contextLength < task.minContextLength) {
    throw new RangeError(`${task.name}: context length must be an integer ≥ ${task.minContextLength}, got ${contextLength}`);
  }
}

/** `n` ids drawn uniformly from a range. */
export function drawIds(rng: Rng, r: IdRange, n: number): number[] {
  return Array.from({ length: n }, () => randInt(rng, r.lo, r.hi));
}

/** `count` distinct keys of `length` ids each (needs count ≤ (hi - lo)^length). */
export function distinctKeys(rng: Rng, r: IdRange, length: number, count: number): number[][] {
  const space = (r.hi - r.lo) ** length;
  if (count > space) throw new RangeError(`cannot draw ${count} distinct keys of ${length} ids from ${r.hi - r.lo} key symbols`);
  const seen = new Set<string>();
  const out: number[][] = [];
  while (out.length < count) {
    const k = drawIds(rng, r, length);
    const s = k.join(',');
    if (seen.has(s)) continue;
    seen.add(s);
    out.push(k);
  }
  return out;
}

/** A record [NEEDLE key SEP value] or a question [QUERY key SEP value]. */
export function record(head: number, key: number[], sep: number, value: number[]): number[] {
  return [head, ...key, sep, ...value];
}

/**
 * Lays out a sample of contextLength + 1 ids: BOS, random filler with `records` inserted at
 * random depths (in the given order), then the questions at the end. Each question's value is
 * an answer; it asks about records[question.of].
 */
export function layout(
  vocab: TaskVocab,
  rng: Rng,
  contextLength: number,
  records: number[][],
  questions: Array<{ ids: number[]; answerLength: number; of: number }>,
): TaskSample {
  const total = contextLength + 1;
  const used = 1 + records.reduce((a, r) => a + r.length, 0) + questions.reduce((a, q) => a + q.ids.length, 0);
  const fillerCount = total - used;
  if (fillerCount < 0) throw new RangeError(`context length ${contextLength} is too short for the task (${used - 1} tokens without filler)`);
  // Insertion points in the filler, sorted: record i goes after `cuts[i]` filler tokens.
  const cuts = records.map(() => randInt(rng, 0, fillerCount + 1)).sort((a, b) => a - b);
  const tokens = new Int32Array(total);
  const starts: number[] = [];
  let at = 0;
  tokens[at++] = vocab.bos;
  let filled = 0;
  const fill = (upTo: number): void => {
    for (; filled < upTo; filled++) tokens[at++] = randInt(rng, vocab.filler.lo, vocab.filler.hi);
  };
  records.forEach((r, i) => {
    fill(cuts[i]!);
    starts.push(at);
    tokens.set(r, at);
    at += r.length;
  });
  fill(fillerCount);
  const mask = new Uint8Array(contextLength);
  const answers: AnswerSpan[] = [];
  for (const q of questions) {
    tokens.set(q.ids, at);
    at += q.ids.length;
    // The answer ids are tokens [at - answerLength, at): targets [at - answerLength - 1, at - 1).
    const start = at - q.answerLength - 1;
    mask.fill(1, start, start + q.answerLength);
    answers.push({ start, length: q.answerLength, depth: contextLength > 1 ? starts[q.of]! / (contextLength - 1) : 0 });
  }
  return { tokens, mask, answers };
}
