/** Shared pieces of the training-data tests: a temporary folder and a tiny byte-level BPE tokenizer.json. */
import { after } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A temporary folder removed after the file's tests. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** GPT-2's byte → printable character map (what ByteLevel pre-tokenizers use). */
function byteChars(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) out[b] = keep.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  return out;
}

/**
 * A byte-level BPE tokenizer.json: id 0 is <|endoftext|>, ids 1..256 the bytes, then the merges
 * h+e, l+l, he+ll, hell+o (so "hello" is one token, id 260).
 */
export function tinyTokenizerJson(): object {
  const vocab: Record<string, number> = { '<|endoftext|>': 0 };
  byteChars().forEach((c, b) => (vocab[c] = b + 1));
  const merges = ['h e', 'l l', 'he ll', 'hell o'];
  merges.forEach((m, i) => (vocab[m.replace(' ', '')] = 257 + i));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 0, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}
