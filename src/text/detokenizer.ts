/**
 * Incremental detokenization for streaming: token ids in, newly completed text out.
 *
 * A byte-level BPE token can end in the middle of a UTF-8 character (an emoji is often split over
 * two or three tokens), and decoding such a prefix yields U+FFFD. The detokenizer therefore decodes
 * a short window of recent tokens, as vLLM and TGI do: `prefixText` = decode(ids[prefix..read]),
 * `newText` = decode(ids[prefix..]); when `newText` grows past `prefixText` and does not end in
 * U+FFFD, the growth is emitted and the window moves on. Text is never emitted half a character at a
 * time, and the concatenation of everything emitted (with `flush`) equals the full decode.
 */

/** What the detokenizer needs of a tokenizer (TextTokenizer has it). */
export interface Decoder {
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
}

export interface DetokenizerOptions {
  /** Drop special tokens (BOS/EOS…) from the text (default true, as in vLLM's outputs). */
  skipSpecialTokens?: boolean;
  /**
   * The prompt's ids: its last few tokens start the window, so tokenizers whose decoders treat the
   * first token specially (SentencePiece's leading space) continue the prompt's text correctly.
   */
  promptIds?: ArrayLike<number>;
}

/** How many prompt tokens seed the window (vLLM's INITIAL_INCREMENTAL_DETOKENIZATION_OFFSET). */
const PROMPT_CONTEXT = 5;
/** The replacement character a partial UTF-8 sequence decodes to. */
const REPLACEMENT = '\uFFFD';

export class IncrementalDetokenizer {
  private readonly ids: number[] = [];
  private prefixOffset: number;
  private readOffset: number;
  private readonly skipSpecial: boolean;
  /** All text emitted so far (push + flush). */
  private emitted = '';

  constructor(
    private readonly decoder: Decoder,
    opts: DetokenizerOptions = {},
  ) {
    this.skipSpecial = opts.skipSpecialTokens ?? true;
    const prompt = opts.promptIds ?? [];
    for (let i = Math.max(0, prompt.length - PROMPT_CONTEXT); i < prompt.length; i++) this.ids.push(prompt[i]!);
    this.prefixOffset = 0;
    this.readOffset = this.ids.length;
  }

  /** Adds one generated token; returns the text it completes ('' while a character is still partial). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.decodeRange(this.prefixOffset, this.readOffset);
    const newText = this.decodeRange(this.prefixOffset, this.ids.length);
    if (newText.length > prefixText.length && !newText.endsWith(REPLACEMENT)) {
      const delta = newText.slice(prefixText.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      this.emitted += delta;
      this.trim();
      return delta;
    }
    return '';
  }

  /** Forgets ids before the window, so a long generation keeps a bounded list. */
  private trim(): void {
    if (this.prefixOffset < 1024) return;
    this.ids.splice(0, this.prefixOffset);
    this.readOffset -= this.prefixOffset;
    this.prefixOffset = 0;
  }

  /** The text still held back (an incomplete character at the end of generation), then resets the window. */
  flush(): string {
    if (this.readOffset === this.ids.length) return '';
    const prefixText = this.decodeRange(this.prefixOffset, this.readOffset);
    const newText = this.decodeRange(this.prefixOffset, this.ids.length);
    const delta = newText.slice(prefixText.length);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.emitted += delta;
    return delta;
  }

  /** Everything emitted so far. */
  get text(): string {
    return this.emitted;
  }

  private decodeRange(from: number, to: number): string {
    if (to <= from) return '';
    return this.decoder.decode(this.ids.slice(from, to), { skipSpecialTokens: this.skipSpecial });
  }
}
