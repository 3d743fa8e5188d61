/**
 * Logits processors (transformers.js / transformers style): each one rewrites a row of scores in
 * place, given the tokens generated so far. Filtered tokens are set to −Infinity, which the sampler
 * gives probability zero. The order is the transformers one: logit bias, penalties, temperature,
 * then the filters top-k, top-p, min-p.
 */
import { isGreedy, type SamplingParams } from './params.js';

export interface LogitsProcessor {
  /** Rewrites `scores` (one vocabulary row) in place; `generated` = the tokens sampled so far. */
  apply(scores: Float32Array, generated: readonly number[]): void;
}

/** Adds a bias per token id (OpenAI logit_bias; ids outside the vocabulary are ignored). */
export class LogitBiasProcessor implements LogitsProcessor {
  private readonly bias: Array<[number, number]>;
  constructor(bias: Record<string, number>) {
    this.bias = Object.entries(bias).map(([k, v]) => [Number(k), v]);
  }
  apply(scores: Float32Array): void {
    for (const [id, b] of this.bias) if (id < scores.length) scores[id] = scores[id]! + b;
  }
}

/**
 * transformers/vLLM repetition penalty over the prompt and the generated tokens: a positive logit
 * is divided by the penalty, a negative one multiplied (> 1 discourages repeats).
 */
export class RepetitionPenaltyProcessor implements LogitsProcessor {
  private readonly promptIds: Set<number>;
  constructor(
    readonly penalty: number,
    promptIds: ArrayLike<number> = [],
  ) {
    this.promptIds = new Set(Array.prototype.slice.call(promptIds) as number[]);
  }
  apply(scores: Float32Array, generated: readonly number[]): void {
    const seen = new Set(this.promptIds);
    for (const id of generated) seen.add(id);
    for (const id of seen) {
      if (id >= scores.length) continue;
      const s = scores[id]!;
      scores[id] = s > 0 ? s / this.penalty : s * this.penalty;
    }
  }
}

/** OpenAI presence/frequency penalties over the generated tokens: logit −= presence·[count > 0] + frequency·count. */
export class PresenceFrequencyProcessor implements LogitsProcessor {
  constructor(
    readonly presence: number,
    readonly frequency: number,
  ) {}
  apply(scores: Float32Array, generated: readonly number[]): void {
    const counts = new Map<number, number>();
    for (const id of generated) counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const [id, n] of counts) {
      if (id < scores.length) scores[id] = scores[id]! - this.presence - this.frequency * n;
    }
  }
}

export class TemperatureProcessor implements LogitsProcessor {
  constructor(readonly temperature: number) {
    if (!(temperature > 0) || !Number.isFinite(temperature)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
  }
  apply(scores: Float32Array): void {
    for (let i = 0; i < scores.length; i++) scores[i] = scores[i]! / this.temperature;
  }
}

/** Keeps the k highest scores (and any tied with the k-th, as transformers does). */
export class TopKProcessor implements LogitsProcessor {
  constructor(readonly k: number) {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`top_k must be an integer ≥ 1, got ${k}`);
  }
  apply(scores: Float32Array): void {
    if (this.k >= scores.length) return;
    const kth = kthLargest(scores, this.k);
    for (let i = 0; i < scores.length; i++) if (scores[i]! < kth) scores[i] = -Infinity;
  }
}

/** The k-th largest value (1-based): a size-k min-heap when k is small, else a sorted copy. */
export function kthLargest(values: Float32Array, k: number): number {
  if (k > 1024 || k * 8 > values.length) return values.slice().sort()[values.length - k]!;
  const heap = new Float32Array(k).fill(-Infinity);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!(v > heap[0]!)) continue;
    // Replace the root (the smallest of the k largest so far) and sift down.
    let j = 0;
    for (;;) {
      const l = 2 * j + 1;
      if (l >= k) break;
      const c = l + 1 < k && heap[l + 1]! < heap[l]! ? l + 1 : l;
      if (heap[c]! >= v) break;
      heap[j] = heap[c]!;
      j = c;
    }
    heap[j] = v;
  }
  return heap[0]!;
}

/**
 * Keeps the nucleus: the fewest highest-probability tokens whose probabilities add up to at least
 * p (tokens tied with the last one kept stay too).
 */
export class TopPProcessor implements LogitsProcessor {
  constructor(readonly p: number) {
    if (!(p > 0 && p <= 1)) throw new RangeError(`top_p must be in (0, 1], got ${p}`);
  }
  apply(scores: Float32Array): void {
    if (this.p >= 1) return;
    let max = -Infinity;
    for (let i = 0; i < scores.length; i++) if (scores[i]! > max) max = scores[i]!;
    if (max === -Infinity) return;
    // Unnormalized probabilities, bucketed by how far below the maximum their logit is (in
    // 1/BUCKETS_PER_NAT steps): the nucleus is every bucket above the one where the mass reaches
    // p, plus the likeliest tokens of that bucket — only it needs sorting.
    const e = new Float64Array(scores.length);
    const bucketMass = new Float64Array(BUCKETS);
    let total = 0;
    for (let i = 0; i < scores.length; i++) {
      const s = scores[i]!;
      if (s === -Infinity) continue;
      e[i] = Math.exp(s - max);
      total += e[i]!;
      bucketMass[bucketOf(max - s)] += e[i]!;
    }
    const target = this.p * total;
    let acc = 0;
    let b = 0;
    for (; b < BUCKETS - 1 && acc + bucketMass[b]! < target; b++) acc += bucketMass[b]!;
    const members: number[] = [];
    for (let i = 0; i < scores.length; i++) if (e[i]! > 0 && bucketOf(max - scores[i]!) === b) members.push(e[i]!);
    members.sort((x, y) => y - x);
    let threshold = members[members.length - 1] ?? 0;
    for (const q of members) {
      acc += q;
      if (acc >= target) {
        threshold = q;
        break;
      }
    }
    for (let i = 0; i < scores.length; i++) if (e[i]! < threshold) scores[i] = -Infinity;
  }
}

const BUCKETS_PER_NAT = 128;
/** Logits more than BUCKETS / BUCKETS_PER_NAT = 32 nats below the maximum share the last bucket. */
const BUCKETS = 4096;

function bucketOf(belowMax: number): number {
  return Math.min(BUCKETS - 1, Math.floor(belowMax * BUCKETS_PER_NAT));
}

/** Keeps tokens whose probability is at least minP times the largest probability. */
export class MinPProcessor implements LogitsProcessor {
  constructor(readonly minP: number) {
    if (!(minP >= 0 && minP <= 1)) throw new RangeError(`min_p must be in [0, 1], got ${minP}`);
  }
  apply(scores: Float32Array): void {
    if (this.minP <= 0) return;
    let max = -Infinity;
    for (const s of scores) if (s > max) max = s;
    // p_i ≥ minP · p_max  ⇔  s_i ≥ s_max + ln(minP)
    const cut = max + Math.log(this.minP);
    for (let i = 0; i < scores.length; i++) if (scores[i]! < cut) scores[i] = -Infinity;
  }
}

/** Softmax in float64 (−Infinity → 0). */
export function softmax(scores: Float32Array): Float64Array {
  let max = -Infinity;
  for (const s of scores) if (s > max) max = s;
  const p = new Float64Array(scores.length);
  if (max === -Infinity) return p;
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    p[i] = Math.exp(scores[i]! - max);
    sum += p[i]!;
  }
  for (let i = 0; i < p.length; i++) p[i] = p[i]! / sum;
  return p;
}

/** Forbids the stop ids (EOS, stop_token_ids) until minTokens tokens are generated (vLLM's min_tokens). */
export class MinTokensProcessor implements LogitsProcessor {
  constructor(
    readonly minTokens: number,
    readonly stopIds: readonly number[],
  ) {}
  apply(scores: Float32Array, generated: readonly number[]): void {
    if (generated.length >= this.minTokens) return;
    for (const id of this.stopIds) if (id < scores.length) scores[id] = -Infinity;
  }
}

/** Runs processors in order. */
export class LogitsProcessorList implements LogitsProcessor {
  constructor(readonly processors: LogitsProcessor[]) {}
  get length(): number {
    return this.processors.length;
  }
  apply(scores: Float32Array, generated: readonly number[]): void {
    for (const p of this.processors) p.apply(scores, generated);
  }
}

export interface ProcessorContext {
  /** The prompt (the repetition penalty counts its tokens as seen). */
  promptIds?: ArrayLike<number>;
  /** The model's EOS ids (min_tokens forbids them early). */
  eosTokenIds?: readonly number[];
}

/**
 * The processors a request's parameters ask for, in order. Greedy requests get only those that can
 * change the argmax (bias, penalties); temperature and the filters cannot.
 */
export function buildLogitsProcessors(p: SamplingParams, opts: ProcessorContext = {}): LogitsProcessorList {
  const promptIds = opts.promptIds ?? [];
  const list: LogitsProcessor[] = [];
  if (p.min_tokens > 0) {
    const stopIds = [...(p.ignore_eos ? [] : (opts.eosTokenIds ?? [])), ...(p.stop_token_ids ?? [])];
    if (stopIds.length > 0) list.push(new MinTokensProcessor(p.min_tokens, stopIds));
  }
  if (p.logit_bias && Object.keys(p.logit_bias).length > 0) list.push(new LogitBiasProcessor(p.logit_bias));
  if (p.repetition_penalty !== 1) list.push(new RepetitionPenaltyProcessor(p.repetition_penalty, promptIds));
  if (p.presence_penalty !== 0 || p.frequency_penalty !== 0) list.push(new PresenceFrequencyProcessor(p.presence_penalty, p.frequency_penalty));
  if (!isGreedy(p)) {
    if (p.temperature !== 1) list.push(new TemperatureProcessor(p.temperature));
    if (p.top_k > 0) list.push(new TopKProcessor(p.top_k));
    if (p.top_p < 1) list.push(new TopPProcessor(p.top_p));
    if (p.min_p > 0) list.push(new MinPProcessor(p.min_p));
  }
  return new LogitsProcessorList(list);
}
