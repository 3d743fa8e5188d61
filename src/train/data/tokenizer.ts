/**
 * Text to token ids: a Hugging Face tokenizer.json through @huggingface/tokenizers, or, when no
 * tokenizer is given, the byte-level tokenizer (one id per UTF-8 byte, then three specials).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { readJsonFile } from '../../io/text-file.js';

export interface TextTokenizer {
  /** 'bytes', or the tokenizer.json path. */
  readonly name: string;
  /** Every id is below this. */
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** The ids of the text, with no special tokens added. */
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
}

/** Ids 0..255 are the UTF-8 bytes; 256 = BOS, 257 = EOS, 258 = PAD. */
export class ByteTokenizer implements TextTokenizer {
  static readonly BOS = 256;
  static readonly EOS = 257;
  static readonly PAD = 258;
  readonly name = 'bytes';
  readonly vocabSize = 259;
  readonly bosId = ByteTokenizer.BOS;
  readonly eosId = ByteTokenizer.EOS;

  encode(text: string): number[] {
    return Array.from(new TextEncoder().encode(text));
  }

  /** Bytes back to text (invalid UTF-8 becomes U+FFFD); specials are dropped. */
  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id >= 0 && id < 256) bytes.push(id);
      else if (!(id >= 256 && id < this.vocabSize)) throw new RangeError(`byte tokenizer: id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    return new TextDecoder().decode(Uint8Array.from(bytes));
  }
}

/** Special tokens that end a document in common tokenizers, in the order they are tried. */
const EOS_NAMES = ['<｜end▁of▁sentence｜>', '<|endoftext|>', '</s>', '<|end_of_text|>', '<eos>', '<|eot_id|>'];
const BOS_NAMES = ['<｜begin▁of▁sentence｜>', '<s>', '<|begin_of_text|>', '<bos>'];

function tokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** A tokenizer.json (and the tokenizer_config.json beside it, when there is one). */
export class HfTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  private readonly tok: Tokenizer;

  constructor(
    readonly name: string,
    json: unknown,
    config: Record<string, unknown> = {},
  ) {
    if (json === null || typeof json !== 'object' || !('model' in json)) throw new Error(`${name}: not a tokenizer.json (no "model" key)`);
    try {
      this.tok = new Tokenizer(json, config);
    } catch (e) {
      throw new Error(`${name}: cannot load the tokenizer (${(e as Error).message})`);
    }
    let max = -1;
    for (const id of this.tok.get_vocab(true).values()) max = Math.max(max, id);
    if (max < 0) throw new Error(`${name}: the tokenizer has an empty vocabulary`);
    this.vocabSize = max + 1;
    this.eosId = this.special(config.eos_token, EOS_NAMES);
    this.bosId = this.special(config.bos_token, BOS_NAMES);
  }

  private special(configured: unknown, names: readonly string[]): number | null {
    const named = tokenName(configured);
    for (const n of named !== undefined ? [named] : names) {
      const id = this.tok.token_to_id(n);
      if (id !== undefined) return id;
    }
    return null;
  }

  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: ArrayLike<number>): string {
    return this.tok.decode(Array.from(ids), { skip_special_tokens: false });
  }
}

/**
 * The tokenizer at `path` (a tokenizer.json, or a directory holding one), or the byte-level
 * tokenizer when `path` is undefined.
 */
export function loadTokenizer(path?: string): TextTokenizer {
  if (path === undefined) return new ByteTokenizer();
  const file = existsSync(join(path, 'tokenizer.json')) ? join(path, 'tokenizer.json') : path;
  const json = readJsonFile(file, 'expected a tokenizer.json');
  const configFile = join(dirname(file), 'tokenizer_config.json');
  const config = existsSync(configFile) ? readJsonFile(configFile) : {};
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error(`${configFile}: expected a JSON object`);
  return new HfTokenizer(file, json, config as Record<string, unknown>);
}

/**
 * The ids of one document for a token stream: its text followed by EOS (which also separates it
 * from the next document), or preceded by BOS when the tokenizer has no EOS. A document encoded in
 * pieces passes `first`/`last` so the marker goes only where the document starts or ends.
 */
export function documentIds(tok: TextTokenizer, text: string, piece: { first: boolean; last: boolean } = { first: true, last: true }): number[] {
  const ids = tok.encode(text);
  if (tok.eosId !== null) {
    if (piece.last) ids.push(tok.eosId);
  } else if (tok.bosId !== null && piece.first) ids.unshift(tok.bosId);
  return ids;
}
