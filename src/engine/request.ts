/**
 * A generation request as the engine sees it: prompt token ids, how many tokens it may generate,
 * its own sampler and stopping criteria (one each per request, so batching never changes what a
 * request draws), and callbacks for each token and for the end. Text never enters the engine.
 */
import type { Sequence } from '../model/cache.js';

/** Why generation ended: a stop condition, the token limit, cancellation, or an engine error. */
export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

/** Picks the next token from one row of logits (e.g. Sampler, or the text layer's TokenSampler). */
export interface RequestSampler {
  sample(logits: Float32Array): number;
}

/** Token-level stopping (stop ids, EOS): sees every generated token. */
export interface RequestStopping {
  check(token: number): { finishReason: 'stop' | 'length'; stopReason?: number } | null;
}

export interface GenerationRequest {
  prompt: Int32Array;
  /** Upper bound on generated tokens (the engine reserves cache pages for prompt + maxTokens). */
  maxTokens: number;
  sampler: RequestSampler;
  stopping?: RequestStopping;
  /** Each generated token, as soon as it is sampled. */
  onToken?: (token: number, req: EngineRequest) => void;
  /** Called once at the end (also after cancellation). */
  onFinish?: (reason: FinishReason, req: EngineRequest, error?: Error) => void;
}

/** Bad requests the server answers with 400 (`code` goes into the OpenAI error object). */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly code: 'context_length_exceeded' | 'invalid_prompt',
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

/** The waiting queue is full (the server answers 429). */
export class QueueFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueueFullError';
  }
}

/** The engine was closed (the server answers 503). */
export class EngineClosedError extends Error {
  constructor() {
    super('the engine is shutting down');
    this.name = 'EngineClosedError';
  }
}

export type RequestState = 'waiting' | 'running' | 'finished';

export class EngineRequest {
  state: RequestState = 'waiting';
  /** Prompt, then every generated token. */
  readonly tokens: number[];
  readonly generated: number[] = [];
  /** The cache sequence while running. */
  seq: Sequence | null = null;
  /** Prompt tokens found in the prefix cache (not computed again). */
  cachedTokens = 0;
  /** Pages adopted from the prefix cache. */
  sharedPages = 0;
  /** Own pages reserved at admission (prompt + maxTokens, less the shared ones). */
  reservedPages = 0;
  /** Hashes of the full pages named so far (see PrefixCache). */
  pageHashes: string[] = [];
  finishReason: FinishReason | null = null;
  /** performance.now() at submission. */
  readonly arrivedAt = performance.now();

  constructor(
    readonly id: number,
    readonly params: GenerationRequest,
  ) {
    this.tokens = Array.from(params.prompt);
  }

  get promptLength(): number {
    return this.params.prompt.length;
  }

  /** Still in its prompt: cache entries written for fewer tokens than the prompt has. */
  get prefilling(): boolean {
    return this.seq !== null && this.seq.length < this.promptLength;
  }

  /** Pages of its own it may still allocate. */
  get outstandingPages(): number {
    const own = this.seq ? this.seq.pageIds.length - this.sharedPages : 0;
    return Math.max(0, this.reservedPages - own);
  }
}
