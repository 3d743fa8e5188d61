/**
 * The per-request output stream (transformers.js's "streamer"): generated token ids in, text deltas
 * and the finish reason out. It joins the incremental detokenizer (whole characters only) with the
 * stopping criteria (stop ids, stop strings with hold-back, max tokens). Without a tokenizer it
 * still stops on ids and length and reports empty text.
 *
 *   const out = new TokenStreamer(params, { tokenizer, promptIds });
 *   for (;;) { const step = out.push(token); send(step.text); if (step.finishReason) break; }
 */
import { IncrementalDetokenizer, type Decoder } from '../text/detokenizer.js';
import { stopStrings, type SamplingParams } from './params.js';
import { StoppingCriteria, StopStrings, stoppingOptions, type FinishReason } from './stopping.js';

export interface StreamStep {
  /** Text to emit now (may be ''). */
  text: string;
  /** Set on the token that ends generation. */
  finishReason: FinishReason | null;
  /** The stop string or stop token id that ended it (vLLM's stop_reason); undefined otherwise. */
  stopReason?: string | number;
}

export interface StreamerOptions {
  /** Decodes ids; null for a model without a tokenizer (then stop strings are refused). */
  tokenizer?: Decoder | null;
  /** Ids that end generation: the tokenizer's eosTokenIds (or the config's eos_token_id). */
  eosTokenIds?: readonly number[];
  /** The prompt, as context for the detokenizer. */
  promptIds?: ArrayLike<number>;
}

export class TokenStreamer {
  private readonly detok: IncrementalDetokenizer | null;
  private readonly stops: StopStrings;
  private readonly criteria: StoppingCriteria;
  private finished: FinishReason | null = null;
  private readonly includeStop: boolean;
  private readonly ids: number[] = [];
  private emitted = '';

  constructor(params: SamplingParams, opts: StreamerOptions = {}) {
    const strings = stopStrings(params);
    const tokenizer = opts.tokenizer ?? null;
    if (strings.length > 0 && !tokenizer) throw new RangeError('stop strings need a tokenizer (this model has none); use stop_token_ids');
    this.detok = tokenizer ? new IncrementalDetokenizer(tokenizer, { skipSpecialTokens: params.skip_special_tokens, promptIds: opts.promptIds }) : null;
    this.stops = new StopStrings(strings, params.include_stop_str_in_output);
    this.includeStop = params.include_stop_str_in_output;
    this.criteria = new StoppingCriteria(stoppingOptions(params, opts.eosTokenIds ?? []));
  }

  /** One generated token. Throws once generation has finished. */
  push(tokenId: number): StreamStep {
    if (this.finished) throw new Error(`generation already finished (${this.finished})`);
    this.ids.push(tokenId);
    const byToken = this.criteria.check(tokenId);
    if (byToken?.finishReason === 'stop') {
      // A stop id ends generation: its own text is left out (as vLLM does, unless
      // include_stop_str_in_output); held text is released (it did not become a stop string).
      const piece = this.detok && this.includeStop ? this.detok.push(tokenId) : '';
      return this.finish({ text: this.stops.release() + piece + this.flushDetok(), finishReason: 'stop', stopReason: byToken.stopReason });
    }
    const piece = this.detok ? this.detok.push(tokenId) : '';
    const r = this.stops.push(piece, this.criteria.pastMinimum);
    if (r.stop !== undefined) return this.finish({ text: r.text, finishReason: 'stop', stopReason: r.stop });
    if (byToken?.finishReason === 'length') return this.finishRest(r.text, 'length');
    return this.emit({ text: r.text, finishReason: null });
  }

  /**
   * Generation ended for a reason outside the stream (context full, client gone): the text still
   * held back, which belongs to the output.
   */
  end(reason: FinishReason = 'length'): StreamStep {
    if (this.finished) return { text: '', finishReason: this.finished };
    return this.finishRest('', reason);
  }

  get finishReason(): FinishReason | null {
    return this.finished;
  }

  /** Every id pushed (the ids of the completion, for return_token_ids). */
  get tokenIds(): readonly number[] {
    return this.ids;
  }

  /** Everything emitted so far: the completion's text. */
  get text(): string {
    return this.emitted;
  }

  get generatedCount(): number {
    return this.criteria.count;
  }

  /** Ends with `text`, the detokenizer's incomplete tail and the held-back text (a stop string in them still stops). */
  private finishRest(text: string, reason: FinishReason): StreamStep {
    const r = this.stops.push(this.flushDetok(), this.criteria.pastMinimum);
    if (r.stop !== undefined) return this.finish({ text: text + r.text, finishReason: 'stop', stopReason: r.stop });
    return this.finish({ text: text + r.text + this.stops.release(), finishReason: reason });
  }

  private flushDetok(): string {
    return this.detok ? this.detok.flush() : '';
  }

  private finish(step: StreamStep): StreamStep {
    this.finished = step.finishReason;
    return this.emit(step);
  }

  private emit(step: StreamStep): StreamStep {
    this.emitted += step.text;
    return step;
  }
}
