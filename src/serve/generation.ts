/**
 * One request's generation as the HTTP layer sees it: prompt ids and sampling parameters in, a
 * stream of deltas (new text and the token ids behind it) out. Ties the engine (token ids) to the
 * text side: the request's own TokenSampler (logits processors + seeded draw), StoppingCriteria
 * (EOS, stop ids, min/max tokens), incremental detokenization, and stop strings (held back while
 * they may still match; a match cancels the engine request and reports finish_reason "stop").
 * Also records the request's latency metrics.
 */
import type { Engine } from '../engine/engine.js';
import type { EngineRequest, FinishReason } from '../engine/request.js';
import type { SamplingParams } from '../generate/params.js';
import { TokenSampler } from '../generate/sampler.js';
import { StoppingCriteria, StopStrings, stoppingOptions, stopStrings } from '../generate/stopping.js';
import { IncrementalDetokenizer } from '../text/detokenizer.js';
import type { TextTokenizer } from '../text/tokenizer.js';
import { serverError } from './errors.js';
import type { ServeMetrics } from './metrics.js';

export interface Delta {
  text: string;
  tokenIds: number[];
}

export interface GenerationSetup {
  engine: Engine;
  tokenizer: TextTokenizer | null;
  metrics: ServeMetrics;
  /** Stop ids when there is no tokenizer (the config's eos_token_id). */
  eosTokenIds: readonly number[];
}

export class Generation {
  finishReason: Exclude<FinishReason, 'abort'> | 'abort' | null = null;
  /** The stop string that ended generation, if any. */
  stopString: string | undefined;
  error: Error | undefined;
  readonly req: EngineRequest;
  private readonly queue: Delta[] = [];
  private wake: (() => void) | null = null;
  private readonly detok: IncrementalDetokenizer | null;
  private readonly stops: StopStrings | null;
  private readonly stopping: StoppingCriteria;
  private readonly arrival = performance.now();
  private lastTokenAt = 0;

  /** Submits to the engine (throws its RequestError / QueueFullError / EngineClosedError). */
  constructor(
    private readonly s: GenerationSetup,
    readonly prompt: Int32Array,
    params: SamplingParams,
    maxTokens: number,
  ) {
    const tok = s.tokenizer;
    this.detok = tok ? new IncrementalDetokenizer(tok, { skipSpecialTokens: params.skip_special_tokens, promptIds: prompt }) : null;
    const stops = stopStrings(params);
    this.stops = stops.length > 0 ? new StopStrings(stops, params.include_stop_str_in_output) : null;
    this.stopping = new StoppingCriteria(stoppingOptions({ ...params, max_tokens: maxTokens }, tok ? tok.eosTokenIds : s.eosTokenIds));
    this.req = s.engine.submit({
      prompt,
      maxTokens,
      sampler: new TokenSampler(params, { promptIds: prompt }),
      stopping: this.stopping,
      onToken: (token) => this.onToken(token),
      onFinish: (reason, _req, error) => this.onFinish(reason, error),
    });
    s.metrics.promptTokens.inc(prompt.length);
  }

  /** Stops generating (client gone); the engine frees the pages now. */
  cancel(): void {
    this.s.engine.abort(this.req);
  }

  /** The deltas as they come; ends when generation ends (throws if the engine failed). */
  async *deltas(): AsyncGenerator<Delta> {
    for (;;) {
      while (this.queue.length > 0) yield this.queue.shift()!;
      if (this.finishReason !== null) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Waits for the end: all text and ids. */
  async collect(): Promise<Delta> {
    const all: Delta = { text: '', tokenIds: [] };
    for await (const d of this.deltas()) {
      all.text += d.text;
      all.tokenIds.push(...d.tokenIds);
    }
    return all;
  }

  /** The finish_reason to report (an engine failure becomes a 500). */
  apiFinishReason(): 'stop' | 'length' {
    if (this.finishReason === 'error') throw serverError(`generation failed: ${this.error?.message ?? 'unknown error'}`);
    return this.finishReason === 'length' ? 'length' : 'stop';
  }

  get completionTokens(): number {
    return this.req.generated.length;
  }

  private push(d: Delta): void {
    if (d.text === '' && d.tokenIds.length === 0) return;
    this.queue.push(d);
    this.wake?.();
    this.wake = null;
  }

  private onToken(token: number): void {
    const now = performance.now();
    const m = this.s.metrics;
    if (this.lastTokenAt === 0) m.ttft.observe((now - this.arrival) / 1000);
    else m.itl.observe((now - this.lastTokenAt) / 1000);
    this.lastTokenAt = now;
    m.generationTokens.inc();
    let text = this.detok ? this.detok.push(token) : '';
    if (this.stops) {
      const r = this.stops.push(text, this.stopping.pastMinimum);
      text = r.text;
      if (r.stop !== undefined) {
        this.stopString = r.stop;
        this.push({ text, tokenIds: [token] });
        this.s.engine.abort(this.req);
        return;
      }
    }
    this.push({ text, tokenIds: [token] });
  }

  private onFinish(reason: FinishReason, error?: Error): void {
    const finish = reason === 'abort' && this.stopString !== undefined ? 'stop' : reason;
    if (finish !== 'abort' && finish !== 'error' && this.stopString === undefined) {
      // The end of the text: a character still incomplete, and text held back for a stop string.
      let tail = this.detok ? this.detok.flush() : '';
      if (this.stops) tail = this.stops.push(tail, false).text + this.stops.release();
      this.push({ text: tail, tokenIds: [] });
    }
    this.error = error;
    this.finishReason = finish;
    this.s.metrics.requests.inc({ finished_reason: finish });
    if (this.lastTokenAt > 0) this.s.metrics.e2e.observe((this.lastTokenAt - this.arrival) / 1000);
    this.wake?.();
    this.wake = null;
  }
}
