/**
 * Token sources: a stream of token ids of known length, read window by window.
 *
 * openTokenSource(path) picks the reader from the file:
 *   - an llm.c token file (magic 20240520; what `dsa tokenize` writes), any extension;
 *   - `.bin`/`.tok` without that header: raw little-endian ids (nanoGPT's uint16 train.bin) — give `dtype`;
 *   - `.safetensors`: one integer tensor (named `tokens` or `input_ids`, or the only tensor), flattened;
 *   - `.json`: an array of ids, or an object with a `tokens` or `input_ids` array;
 *   - `.jsonl`: one document per line, `{"text": ...}` (or a JSON string), through the tokenizer;
 *   - anything else: UTF-8 text, one document, through the tokenizer (byte-level when none is given).
 * File-backed formats are read on demand (bounded memory); JSON and text are tokenized into memory.
 */
import * as fs from 'node:fs';
import { extname } from 'node:path';
import { readFully, readSafetensorsHeader } from '../../io/safetensors.js';
import { readJsonFile, readTextFile } from '../../io/text-file.js';
import { decodeIds, openRead, readTokenFileHeader, TOKEN_DTYPE_BYTES, TOKEN_FILE_HEADER_BYTES, type TokenDType } from './token-file.js';
import { documentIds, loadTokenizer, type TextTokenizer } from './tokenizer.js';

export interface TokenSource {
  /** The file (or a label), for messages. */
  readonly name: string;
  /** Number of tokens. */
  readonly length: number;
  /** The vocabulary the ids come from, when the source knows it (token file header, tokenizer). */
  readonly vocabSize: number | null;
  /** Ids [start, start + count), into `out` when given. */
  read(start: number, count: number, out?: Int32Array): Int32Array;
  close(): void;
}

function checkRange(src: TokenSource, start: number, count: number): void {
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > src.length) {
    throw new RangeError(`${src.name}: cannot read tokens [${start}, ${start + count}) of ${src.length}`);
  }
}

/** Ids held in memory. */
export class MemoryTokens implements TokenSource {
  constructor(
    readonly ids: Int32Array,
    readonly name = 'tokens',
    readonly vocabSize: number | null = null,
  ) {}
  get length(): number {
    return this.ids.length;
  }
  read(start: number, count: number, out = new Int32Array(count)): Int32Array {
    checkRange(this, start, count);
    out.set(this.ids.subarray(start, start + count));
    return out;
  }
  close(): void {}
}

/** Ids stored contiguously in a file from `byteOffset`, read with pread when asked for. */
export class FileTokens implements TokenSource {
  private fd: number | null;
  constructor(
    readonly name: string,
    readonly byteOffset: number,
    readonly length: number,
    readonly dtype: TokenDType,
    readonly vocabSize: number | null = null,
  ) {
    this.fd = openRead(name);
  }
  read(start: number, count: number, out = new Int32Array(count)): Int32Array {
    checkRange(this, start, count);
    if (this.fd === null) throw new Error(`${this.name}: token source is closed`);
    const size = TOKEN_DTYPE_BYTES[this.dtype];
    const bytes = new Uint8Array(count * size);
    readFully(this.fd, bytes, this.byteOffset + start * size, this.name);
    decodeIds(bytes, this.dtype, out.length === count ? out : out.subarray(0, count), () => `${this.name} (tokens from ${start})`);
    return out;
  }
  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

export interface OpenOptions {
  /** Dtype of a headerless token file. */
  dtype?: TokenDType;
  /** tokenizer.json for text (default: byte-level). */
  tokenizer?: string | TextTokenizer;
}

const INT_DTYPES = new Set<string>(Object.keys(TOKEN_DTYPE_BYTES));

function openSafetensors(path: string): TokenSource {
  const h = readSafetensorsHeader(path);
  const names = [...h.tensors.keys()];
  const name = ['tokens', 'input_ids'].find((n) => h.tensors.has(n)) ?? (names.length === 1 ? names[0] : undefined);
  if (name === undefined) throw new Error(`${path}: no tensor named 'tokens' or 'input_ids', and ${names.length} tensors (${names.slice(0, 5).join(', ')}) to choose from`);
  const t = h.tensors.get(name)!;
  if (!INT_DTYPES.has(t.dtype)) throw new Error(`${path}: tensor '${name}' has dtype ${t.dtype}; token ids need an integer dtype (${[...INT_DTYPES].join(', ')})`);
  const vocab = h.metadata.vocab_size !== undefined ? Number(h.metadata.vocab_size) : null;
  return new FileTokens(path, t.offset, t.numel, t.dtype as TokenDType, vocab !== null && Number.isInteger(vocab) && vocab > 0 ? vocab : null);
}

function jsonIds(path: string): Int32Array {
  const raw = readJsonFile(path);
  let arr: unknown = raw;
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) arr = (raw as Record<string, unknown>).tokens ?? (raw as Record<string, unknown>).input_ids;
  if (!Array.isArray(arr)) throw new Error(`${path}: expected a JSON array of token ids, or an object with a "tokens" or "input_ids" array`);
  const bad = arr.findIndex((v) => !Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1);
  if (bad >= 0) throw new Error(`${path}: element ${bad} (${JSON.stringify(arr[bad])}) is not a token id`);
  return Int32Array.from(arr as number[]);
}

/** The text of one JSON-lines line: `{"text": "..."}` or a JSON string; `where` names the line in errors. */
export function jsonlText(line: string, where: string): string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  const t = typeof v === 'string' ? v : v !== null && typeof v === 'object' ? (v as { text?: unknown }).text : undefined;
  if (typeof t !== 'string') throw new Error(`${where}: expected {"text": "..."} or a JSON string`);
  return t;
}

/** The texts of a JSON-lines file, blank lines skipped. */
export function jsonlTexts(path: string, text = readTextFile(path)): string[] {
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() !== '') out.push(jsonlText(line, `${path}:${i + 1}`));
  });
  return out;
}

/** The documents of a text (.jsonl: one a line; otherwise the whole file) as one id stream. */
export function tokenizeFile(path: string, tok: TextTokenizer): Int32Array {
  const texts = extname(path).toLowerCase() === '.jsonl' ? jsonlTexts(path) : [readTextFile(path)];
  const parts = texts.map((t) => documentIds(tok, t));
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Text and JSON larger than this are tokenized ahead with `dsa tokenize` rather than into memory. */
export const MAX_IN_MEMORY_BYTES = 256 * 2 ** 20;

function checkInMemorySize(path: string): void {
  const size = fs.statSync(path, { throwIfNoEntry: false })?.size;
  if (size !== undefined && size > MAX_IN_MEMORY_BYTES) {
    throw new Error(`${path}: ${(size / 2 ** 20).toFixed(0)} MiB is too large to tokenize in memory (limit ${MAX_IN_MEMORY_BYTES / 2 ** 20} MiB); write a token file first with \`dsa tokenize\``);
  }
}

/** Opens a token stream from a file (see the module comment for the formats). */
export function openTokenSource(path: string, opts: OpenOptions = {}): TokenSource {
  const ext = extname(path).toLowerCase();
  if (ext === '.safetensors') return openSafetensors(path);
  if (ext === '.json') {
    checkInMemorySize(path);
    return new MemoryTokens(jsonIds(path), path);
  }
  const header = ext === '.jsonl' ? null : readTokenFileHeader(path);
  if (header) return new FileTokens(path, TOKEN_FILE_HEADER_BYTES, header.tokens, header.dtype, header.vocabSize || null);
  if (ext === '.bin' || ext === '.tok') {
    if (opts.dtype === undefined) throw new Error(`${path}: no token file header (magic ${20240520}); for a headerless file give its dtype (e.g. U16 for nanoGPT's .bin)`);
    const size = fs.statSync(path).size;
    const bytes = TOKEN_DTYPE_BYTES[opts.dtype];
    if (size % bytes !== 0) throw new Error(`${path}: ${size} bytes is not a whole number of ${opts.dtype} ids`);
    return new FileTokens(path, 0, size / bytes, opts.dtype);
  }
  checkInMemorySize(path);
  const tok = typeof opts.tokenizer === 'object' ? opts.tokenizer : loadTokenizer(opts.tokenizer);
  return new MemoryTokens(tokenizeFile(path, tok), path, tok.vocabSize);
}
