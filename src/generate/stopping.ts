/**
 * Stopping criteria: stop token ids (EOS included), stop strings and max tokens.
 *
 * Stop strings may span tokens. While the end of the text could still be the start of a stop
 * string it is held back from the stream; once resolved it is either released (no stop string
 * after all) or dropped with the stop string, which is not part of the output (unless
 * include_stop_str_in_output). So a streaming client never sees a stop string or a piece of one.
 */
import { stopStrings, type SamplingParams } from './params.js';

export type FinishReason = 'stop' | 'length';

/** Stop-string matching over streamed text with the hold-back rule. */
export class StopStrings {
  private held = '';
  private readonly maxLen: number;

  constructor(
    readonly stops: readonly string[],
    readonly includeInOutput = false,
  ) {
    if (stops.some((s) => s.length === 0)) throw new RangeError('stop strings must not be empty');
    this.maxLen = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /**
   * Adds text. Returns the text that is safe to emit and, when a stop string is complete, that
   * string (then `text` ends just before it, or after it with includeInOutput). With `match`
   * false (before min_tokens) nothing stops, but possible beginnings are still held back.
   */
  push(text: string, match = true): { text: string; stop?: string } {
    if (this.stops.length === 0) return { text };
    const buf = this.held + text;
    if (match) {
      let at = -1;
      let found: string | undefined;
      for (const s of this.stops) {
        const i = buf.indexOf(s);
        if (i >= 0 && (at < 0 || i < at || (i === at && s.length > found!.length))) {
          at = i;
          found = s;
        }
      }
      if (found !== undefined) {
        this.held = '';
        return { text: buf.slice(0, this.includeInOutput ? at + found.length : at), stop: found };
      }
    }
    const keep = this.pendingSuffix(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep) };
  }

  /** The held-back text, released (generation ended without a stop string). */
  release(): string {
    const t = this.held;
    this.held = '';
    return t;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
  private pendingSuffix(buf: string): number {
    for (let n = Math.min(this.maxLen - 1, buf.length); n > 0; n--) {
      const tail = buf.slice(buf.length - n);
      if (this.stops.some((s) => s.length > n && s.startsWith(tail))) return n;
    }
    return 0;
  }
}

export interface StoppingOptions {
  /** Token ids that end generation: the tokenizer's / config's EOS ids. */
  eosTokenIds?: readonly number[];
  /** More ids that end generation (request's stop_token_ids). */
  stopTokenIds?: readonly number[];
  /** Do not stop at EOS (stop_token_ids still stop). */
  ignoreEos?: boolean;
  /** Stop after this many generated tokens (finish reason 'length'). */
  maxTokens?: number | null;
  /** Before this many tokens only max tokens stops. */
  minTokens?: number;
}

/** Stopping by token: stop ids and EOS → 'stop', max tokens → 'length'. Counts the tokens. */
export class StoppingCriteria {
  private readonly stopIds: Set<number>;
  private n = 0;

  constructor(private readonly o: StoppingOptions) {
    this.stopIds = new Set([...(o.ignoreEos ? [] : (o.eosTokenIds ?? [])), ...(o.stopTokenIds ?? [])]);
    if (o.maxTokens != null && !(Number.isInteger(o.maxTokens) && o.maxTokens >= 1)) throw new RangeError(`max tokens must be an integer ≥ 1, got ${o.maxTokens}`);
  }

  /** Counts one generated token; says whether generation ends with it, and why. */
  check(tokenId: number): { finishReason: FinishReason; stopReason?: number } | null {
    this.n++;
    if (this.pastMinimum && this.stopIds.has(tokenId)) return { finishReason: 'stop', stopReason: tokenId };
    if (this.o.maxTokens != null && this.n >= this.o.maxTokens) return { finishReason: 'length' };
    return null;
  }

  /** Whether stop conditions other than max tokens apply yet (min_tokens reached). */
  get pastMinimum(): boolean {
    return this.n >= (this.o.minTokens ?? 0);
  }

  /** Tokens counted so far. */
  get count(): number {
    return this.n;
  }
}

/** StoppingCriteria options from a request's sampling parameters and the model's EOS ids. */
export function stoppingOptions(p: SamplingParams, eosTokenIds: readonly number[]): StoppingOptions {
  return { eosTokenIds, stopTokenIds: p.stop_token_ids ?? [], ignoreEos: p.ignore_eos, maxTokens: p.max_tokens, minTokens: p.min_tokens };
}

export { stopStrings };
