/**
 * The serving engine: requests in, tokens out, many requests sharing each forward step
 * (continuous batching). One loop runs while there is work: admit → plan a step (decode tokens of
 * some requests, prompt chunks of others, each with its own mode) → Model.stepBatch → sample one
 * token per request whose step ended on a row that predicts one → name the pages just filled for
 * prefix reuse → yield to the event loop (so the server reads and writes sockets) → again.
 * Cancellation frees a request's pages at once; the cache's size bounds memory.
 */
import type { LatentFormat } from '../backend/backend.js';
import { PAGE_SIZE, type IndexerFormat, type KVCache } from '../model/cache.js';
import type { Model } from '../model/model.js';
import { PrefixCache } from './prefix-cache.js';
import { EngineClosedError, EngineRequest, QueueFullError, RequestError, type FinishReason, type GenerationRequest } from './request.js';
import { pagesFor, Scheduler, type StepItem } from './scheduler.js';

export interface EngineOptions {
  /** Requests running at once (default 16). */
  maxBatch?: number;
  /** Longest prompt + generation (default: the model's max_position_embeddings). */
  maxContext?: number;
  /** Requests waiting for admission before new ones are refused (default 256). */
  maxWaiting?: number;
  /**
   * Tokens the cache holds in all, which bounds its memory; at least maxContext. Default:
   * maxBatch × maxContext, capped at DEFAULT_CACHE_CAP tokens (but never below maxContext).
   */
  cacheTokens?: number;
  /** Tokens per engine step (default 256). */
  maxStepTokens?: number;
  /** Latent cache format (default 'bf16'). */
  latentFormat?: LatentFormat;
  /** Indexer key cache format (default 'fp8', the reference). */
  indexerFormat?: IndexerFormat;
  /** Share cache pages between requests with a common prompt prefix (default true). */
  prefixCaching?: boolean;
}

export interface EngineStats {
  running: number;
  waiting: number;
  pagesTotal: number;
  /** Pages held by requests. */
  pagesUsed: number;
  /** Pages held by the prefix cache alone (reclaimable). */
  pagesCached: number;
  promptTokens: number;
  cachedPromptTokens: number;
  generatedTokens: number;
  steps: number;
}

/** The default cache's upper bound in tokens (a full-size model's cache at 128K is ~10 GB in bf16). */
export const DEFAULT_CACHE_CAP = 131072;

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Engine {
  readonly cache: KVCache;
  readonly prefix: PrefixCache | null;
  readonly maxContext: number;
  readonly maxBatch: number;
  readonly maxWaiting: number;
  private readonly scheduler: Scheduler;
  private readonly waiting: EngineRequest[] = [];
  private readonly running: EngineRequest[] = [];
  private nextId = 1;
  private loop: Promise<void> | null = null;
  private closed = false;
  private readonly counters = { promptTokens: 0, cachedPromptTokens: 0, generatedTokens: 0, steps: 0 };

  constructor(
    readonly model: Model,
    opts: EngineOptions = {},
  ) {
    const positive = (name: string, v: number) => {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
      return v;
    };
    const modelMax = model.config.maxPositionEmbeddings;
    this.maxBatch = positive('maxBatch', opts.maxBatch ?? 16);
    this.maxContext = positive('maxContext', opts.maxContext ?? modelMax);
    if (this.maxContext > modelMax) throw new RangeError(`maxContext ${this.maxContext} exceeds the model's max_position_embeddings (${modelMax})`);
    this.maxWaiting = positive('maxWaiting', opts.maxWaiting ?? 256);
    const cacheTokens = positive('cacheTokens', opts.cacheTokens ?? Math.max(this.maxContext, Math.min(this.maxBatch * this.maxContext, DEFAULT_CACHE_CAP)));
    if (cacheTokens < this.maxContext) throw new RangeError(`the cache (${cacheTokens} tokens) must hold at least one request of maxContext (${this.maxContext}) tokens`);
    const maxStepTokens = positive('maxStepTokens', opts.maxStepTokens ?? 256);
    this.cache = model.createCache(cacheTokens, { latentFormat: opts.latentFormat ?? 'bf16', indexerFormat: opts.indexerFormat });
    this.prefix = opts.prefixCaching === false ? null : new PrefixCache(this.cache);
    this.scheduler = new Scheduler(this.cache, this.prefix, { maxBatch: this.maxBatch, maxStepTokens });
  }

  /** Bytes the cache holds (every layer). */
  get cacheBytes(): number {
    return this.cache.numPages * PAGE_SIZE * this.cache.bytesPerTokenLayer() * this.model.config.numLayers;
  }

  /**
   * Queues a request. Throws RequestError for a prompt that cannot run (empty, ids outside the
   * vocabulary, longer than the context), QueueFullError when too many wait, EngineClosedError
   * after close().
   */
  submit(params: GenerationRequest): EngineRequest {
    if (this.closed) throw new EngineClosedError();
    const { prompt, maxTokens } = params;
    if (prompt.length === 0) throw new RequestError('the prompt is empty', 'invalid_prompt');
    const vocab = this.model.config.vocabSize;
    const bad = prompt.findIndex((t) => t < 0 || t >= vocab);
    if (bad >= 0) throw new RequestError(`prompt token ${prompt[bad]} at index ${bad} is outside the vocabulary (0..${vocab - 1})`, 'invalid_prompt');
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RangeError(`maxTokens must be a positive integer, got ${maxTokens}`);
    if (prompt.length + maxTokens > this.maxContext) {
      throw new RequestError(
        `this model's maximum context length is ${this.maxContext} tokens; the request has ${prompt.length} prompt tokens and asks for ${maxTokens} more (${prompt.length + maxTokens})`,
        'context_length_exceeded',
      );
    }
    if (pagesFor(prompt.length, maxTokens) > this.cache.numPages) throw new RequestError('the request needs more cache pages than the cache has', 'context_length_exceeded');
    if (this.waiting.length >= this.maxWaiting) throw new QueueFullError(`too many requests waiting (${this.waiting.length}); try again later`);
    const req = new EngineRequest(this.nextId++, params);
    this.waiting.push(req);
    this.counters.promptTokens += prompt.length;
    this.kick();
    return req;
  }

  /** Cancels a request: it leaves the queue or the batch now and its pages return to the pool. */
  abort(req: EngineRequest): void {
    this.finish(req, 'abort');
  }

  stats(): EngineStats {
    const cached = this.prefix?.reclaimable() ?? 0;
    return {
      running: this.running.length,
      waiting: this.waiting.length,
      pagesTotal: this.cache.numPages,
      pagesUsed: this.cache.usedPages - cached,
      pagesCached: cached,
      ...this.counters,
    };
  }

  /** Resolves when no request is waiting or running. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /** Refuses new requests, cancels the others, and waits for the loop to stop. */
  async close(): Promise<void> {
    this.closed = true;
    for (const r of [...this.waiting, ...this.running]) this.finish(r, 'abort');
    await this.idle();
  }

  private kick(): void {
    // An unexpected failure of the loop ends the requests it holds instead of the process.
    this.loop ??= this.run().catch((e: Error) => {
      for (const r of [...this.running, ...this.waiting]) this.finish(r, 'error', e);
    }).finally(() => {
      this.loop = null;
      if (!this.closed && (this.waiting.length > 0 || this.running.length > 0)) this.kick();
    });
  }

  private async run(): Promise<void> {
    // Let the caller of submit() attach to the request before the first step.
    await yieldToEventLoop();
    while (this.waiting.length > 0 || this.running.length > 0) {
      for (const req of this.scheduler.admit(this.waiting, this.running)) this.counters.cachedPromptTokens += req.cachedTokens;
      const items = this.scheduler.plan(this.running);
      if (items.length === 0) {
        // Nothing runs, so every page is free or reclaimable, and submit() checked that each request
        // fits the cache: unreachable. Fail the head of the queue rather than spin.
        const head = this.waiting[0];
        if (head) this.finish(head, 'error', new Error('the request does not fit the cache'));
        continue;
      }
      await this.step(items);
      await yieldToEventLoop();
    }
  }

  private async step(items: StepItem[]): Promise<void> {
    const b = this.model.backend;
    let rows: Float32Array;
    try {
      const out = this.model.stepBatch(
        items.map((it) => ({ seq: it.req.seq!, tokens: it.tokens, mode: it.mode })),
        { mode: 'decode' },
        'last',
      );
      rows = (await b.read(out!)) as Float32Array;
    } catch (e) {
      for (const it of items) this.finish(it.req, 'error', e as Error);
      return;
    }
    this.counters.steps++;
    const v = this.model.config.vocabSize;
    items.forEach((it, i) => {
      const req = it.req;
      if (req.state !== 'running') return; // cancelled while the step ran
      this.namePages(req);
      if (!it.sample) return;
      let token: number;
      try {
        token = req.params.sampler.sample(rows.subarray(i * v, (i + 1) * v));
      } catch (e) {
        this.finish(req, 'error', e as Error);
        return;
      }
      this.emit(req, token);
    });
  }

  private emit(req: EngineRequest, token: number): void {
    req.generated.push(token);
    req.tokens.push(token);
    this.counters.generatedTokens++;
    let stop: ReturnType<NonNullable<GenerationRequest['stopping']>['check']> = null;
    try {
      stop = req.params.stopping?.check(token) ?? null;
      req.params.onToken?.(token, req);
    } catch (e) {
      this.finish(req, 'error', e as Error);
      return;
    }
    if (req.state !== 'running') return; // the callback cancelled it (e.g. a stop string)
    if (stop) this.finish(req, stop.finishReason);
    else if (req.generated.length >= req.params.maxTokens) this.finish(req, 'length');
  }

  /** Offers the request's newly filled pages to the prefix cache. */
  private namePages(req: EngineRequest): void {
    if (!this.prefix || !req.seq) return;
    const full = Math.floor(req.seq.length / PAGE_SIZE);
    const named = req.pageHashes.length;
    if (full <= named) return;
    req.pageHashes = PrefixCache.pageHashes(req.tokens, full, req.pageHashes);
    const pages = req.seq.pageIds;
    for (let i = Math.max(named, req.sharedPages); i < full; i++) this.prefix.insert(req.pageHashes[i]!, pages[i]!);
  }

  private finish(req: EngineRequest, reason: FinishReason, error?: Error): void {
    if (req.state === 'finished') return;
    const list = req.state === 'waiting' ? this.waiting : this.running;
    const at = list.indexOf(req);
    if (at >= 0) list.splice(at, 1);
    req.seq?.release();
    req.seq = null;
    req.state = 'finished';
    req.finishReason = reason;
    try {
      req.params.onFinish?.(reason, req, error);
    } catch {
      // The request is over and its pages are back; a failing callback must not stop the engine.
    }
  }
}
