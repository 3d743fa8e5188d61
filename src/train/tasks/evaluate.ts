/**
 * Scoring a model on a synthetic task: exact match of the greedy answer tokens.
 *
 * One forward pass over the sample's inputs is enough: greedy decoding reproduces an answer
 * exactly if and only if, with the true answer fed back (teacher forcing), the argmax at every
 * answer position is the true token — so the question is answered right when all its answer
 * positions' argmaxes are right.
 */
import { argmax } from '../../generate/sampler.js';
import { itemRng } from '../data/seed.js';
import type { SyntheticTask, TaskSample } from './task.js';

/**
 * Logits of one sequence: for `tokens` (length T) either every position ([T, V] row-major) or only
 * the rows at `positions` ([P, V], in that order) — the latter spares memory at long contexts.
 */
export type LogitsFn = (tokens: Int32Array, positions: Int32Array) => Float32Array | Promise<Float32Array>;

/**
 * Logits of a batch: `tokens` is [B, T]; returns [B, T, V], or [B, P, V] for the given positions
 * (the same for every row). `positions` is empty when the rows' answers sit at different
 * positions: then every position is wanted.
 */
export type BatchLogitsFn = (tokens: Int32Array, batch: number, positions: Int32Array) => Float32Array | Promise<Float32Array>;

export interface EvalOptions {
  contextLength: number;
  samples: number;
  seed: number;
  /** Rows per call of a BatchLogitsFn (default 8). */
  batchSize?: number;
  /** Depth buckets of the report (default 5: 0–20%, …, 80–100%). */
  depthBuckets?: number;
}

export interface DepthBucket {
  /** [from, to) as fractions of the context. */
  from: number;
  to: number;
  questions: number;
  accuracy: number;
}

export interface TaskEval {
  task: string;
  contextLength: number;
  samples: number;
  questions: number;
  /** Share of questions whose answer tokens are all greedy-correct. */
  accuracy: number;
  /** Share of samples whose questions are all right. */
  sampleAccuracy: number;
  /** Share of answer tokens greedy-correct. */
  tokenAccuracy: number;
  /** Accuracy of a guess uniform over the vocabulary: 1 / V^answerLength (mean over questions). */
  chance: number;
  /** Accuracy by the depth of the record asked about. */
  byDepth: DepthBucket[];
}

/** Salt that keeps evaluation samples apart from training samples drawn with the same seed. */
export const EVAL_SALT = 0x5eed;

/** Sample i of the evaluation set (contextLength, seed). */
export function evalSample(task: SyntheticTask, contextLength: number, seed: number, i: number): TaskSample {
  return task.sample(contextLength, itemRng(seed, i, EVAL_SALT ^ contextLength));
}

/** The answer positions (targets) of a sample, in order. */
export function answerPositions(s: TaskSample): Int32Array {
  return Int32Array.from(s.answers.flatMap((a) => Array.from({ length: a.length }, (_, j) => a.start + j)));
}

function checkSize(got: number, rows: number, V: number, T: number, P: number, what: string): number {
  if (got === rows * T * V) return T;
  if (got === rows * P * V) return P;
  throw new Error(`${what} returned ${got} logits; expected ${rows} × ${T} × ${V} (every position) or ${rows} × ${P} × ${V} (the answer positions)`);
}

export async function evaluate(task: SyntheticTask, model: LogitsFn | { batch: BatchLogitsFn }, opts: EvalOptions): Promise<TaskEval> {
  const { contextLength: L, samples } = opts;
  if (!Number.isInteger(samples) || samples < 1) throw new RangeError(`samples must be an integer ≥ 1, got ${samples}`);
  const V = task.vocab.vocabSize;
  const B = typeof model === 'function' ? 1 : (opts.batchSize ?? 8);
  const nb = opts.depthBuckets ?? 5;
  const buckets = Array.from({ length: nb }, (_, i) => ({ from: i / nb, to: (i + 1) / nb, questions: 0, right: 0 }));
  let questions = 0;
  let right = 0;
  let samplesRight = 0;
  let tokens = 0;
  let tokensRight = 0;
  let chance = 0;

  for (let s0 = 0; s0 < samples; s0 += B) {
    const rows = Math.min(B, samples - s0);
    const batch = Array.from({ length: rows }, (_, r) => evalSample(task, L, opts.seed, s0 + r));
    const positions = batch.map(answerPositions);
    const logits: Float32Array[] = [];
    if (typeof model === 'function') {
      const s = batch[0]!;
      const out = await model(s.tokens.subarray(0, L), positions[0]!);
      checkSize(out.length, 1, V, L, positions[0]!.length, 'logitsFn');
      logits.push(out);
    } else {
      // Rows of one batch share the answer positions only if the task lays them out alike; ask for all positions otherwise.
      const same = positions.every((p) => p.length === positions[0]!.length && p.every((v, j) => v === positions[0]![j]));
      const ask = same ? positions[0]! : new Int32Array(0);
      const input = new Int32Array(rows * L);
      batch.forEach((s, r) => input.set(s.tokens.subarray(0, L), r * L));
      const out = await model.batch(input, rows, ask);
      const per = checkSize(out.length, rows, V, L, same ? ask.length : -1, 'batch logitsFn');
      for (let r = 0; r < rows; r++) logits.push(out.subarray(r * per * V, (r + 1) * per * V));
    }
    batch.forEach((s, r) => {
      const rowsAll = logits[r]!.length === L * V;
      let k = 0;
      let allRight = true;
      for (const a of s.answers) {
        let ok = true;
        for (let j = 0; j < a.length; j++, k++) {
          const p = a.start + j;
          const row = rowsAll ? p : k;
          const pred = argmax(logits[r]!.subarray(row * V, (row + 1) * V));
          const hit = pred === s.tokens[p + 1];
          tokens++;
          if (hit) tokensRight++;
          else ok = false;
        }
        questions++;
        chance += V ** -a.length;
        const bucket = buckets[Math.min(nb - 1, Math.floor(a.depth * nb))]!;
        bucket.questions++;
        if (ok) {
          right++;
          bucket.right++;
        } else allRight = false;
      }
      if (allRight) samplesRight++;
    });
  }
  return {
    task: task.name,
    contextLength: L,
    samples,
    questions,
    accuracy: right / questions,
    sampleAccuracy: samplesRight / samples,
    tokenAccuracy: tokensRight / tokens,
    chance: chance / questions,
    byDepth: buckets.map((b) => ({ from: b.from, to: b.to, questions: b.questions, accuracy: b.questions > 0 ? b.right / b.questions : NaN })),
  };
}
