/**
 * A small byte-level BPE tokenizer trained on the spot, in DeepSeek's tokenizer.json layout:
 * DeepSeek's pre-tokenizer (digits in threes, CJK runs, its word regex, then GPT-2 byte-to-unicode
 * mapping), the 256 byte tokens (so any text encodes), merges learned from a corpus, and special
 * tokens (BOS/EOS/pad first, the chat and tool markers last). Used by `dsa make-tiny`.
 */
import { Tokenizer } from '@huggingface/tokenizers';

/** DeepSeek-V3's pre-tokenizer, verbatim from its tokenizer.json. */
export const DEEPSEEK_PRE_TOKENIZER = {
  type: 'Sequence',
  pretokenizers: [
    { type: 'Split', pattern: { Regex: '\\p{N}{1,3}' }, behavior: 'Isolated', invert: false },
    { type: 'Split', pattern: { Regex: '[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+' }, behavior: 'Isolated', invert: false },
    {
      type: 'Split',
      pattern: { Regex: "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+" },
      behavior: 'Isolated',
      invert: false,
    },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
  ],
} as const;

/** GPT-2's map from bytes to printable characters (the byte-level alphabet). */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const map = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  }
  return map;
}

export interface SpecialToken {
  content: string;
  /** Special tokens are dropped by skip_special_tokens; the chat markers of DeepSeek are not special. */
  special: boolean;
}

export interface BpeSpec {
  /** Total ids: specials + 256 bytes + merges. */
  vocabSize: number;
  /** Tokens at ids 0, 1, 2… (DeepSeek: BOS, EOS, pad). */
  leadingSpecials: SpecialToken[];
  /** Tokens at the top of the vocabulary (DeepSeek: chat and tool markers). */
  trailingSpecials: SpecialToken[];
  corpus: string;
}

/** Learns merges and returns the tokenizer.json object. */
export function trainByteLevelBpe(spec: BpeSpec): Record<string, unknown> {
  const nSpecial = spec.leadingSpecials.length + spec.trailingSpecials.length;
  const nMerges = spec.vocabSize - nSpecial - 256;
  if (nMerges < 0) throw new Error(`vocabulary size ${spec.vocabSize} is below the ${nSpecial + 256} ids the special and byte tokens need`);
  const alphabet = bytesToUnicode();
  const vocab: Record<string, number> = {};
  let next = 0;
  for (const t of spec.leadingSpecials) vocab[t.content] = next++;
  for (const ch of [...alphabet].sort()) vocab[ch] = next++;

  const merges = learnMerges(preTokenize(spec.corpus, alphabet), nMerges);
  for (const [a, b] of merges) vocab[a + b] = next++;
  const trailingStart = next;
  for (const t of spec.trailingSpecials) vocab[t.content] = next++;

  const added = [
    ...spec.leadingSpecials.map((t, i) => ({ t, id: i })),
    ...spec.trailingSpecials.map((t, i) => ({ t, id: trailingStart + i })),
  ].map(({ t, id }) => ({ id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: !t.special, special: t.special }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [] },
    pre_tokenizer: DEEPSEEK_PRE_TOKENIZER,
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** The corpus split into byte-level words by DeepSeek's pre-tokenizer, with counts. */
function preTokenize(corpus: string, alphabet: string[]): Map<string, number> {
  const vocab = Object.fromEntries(alphabet.map((c, i) => [c, i]));
  const json = { added_tokens: [], normalizer: null, pre_tokenizer: DEEPSEEK_PRE_TOKENIZER, post_processor: null, decoder: null, model: { type: 'BPE', vocab, merges: [], ignore_merges: false } };
  const tok = new Tokenizer(json, {});
  const words = new Map<string, number>();
  for (const line of corpus.split(/(?<=\n)/)) {
    for (const w of tok.pre_tokenizer!.pre_tokenize(line)) words.set(w, (words.get(w) ?? 0) + 1);
  }
  return words;
}

/**
 * Classic BPE: repeatedly merge the most frequent adjacent pair (ties: the smaller merged string,
 * then the smaller pair) until `n` merges exist or no pair is left.
 */
function learnMerges(words: Map<string, number>, n: number): Array<[string, string]> {
  const seqs = [...words].map(([w, count]) => ({ symbols: [...w], count }));
  const merges: Array<[string, string]> = [];
  const made = new Set<string>();
  while (merges.length < n) {
    const counts = new Map<string, { a: string; b: string; count: number }>();
    for (const { symbols, count } of seqs) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        const e = counts.get(key);
        if (e) e.count += count;
        else counts.set(key, { a: symbols[i]!, b: symbols[i + 1]!, count });
      }
    }
    let best: { a: string; b: string; count: number } | undefined;
    for (const e of counts.values()) {
      if (made.has(e.a + e.b)) continue; // another merge already makes this string: one id per string
      if (!best || e.count > best.count || (e.count === best.count && compareMerge(e, best) < 0)) best = e;
    }
    if (!best) break;
    merges.push([best.a, best.b]);
    const merged = best.a + best.b;
    made.add(merged);
    for (const s of seqs) {
      const out: string[] = [];
      for (let i = 0; i < s.symbols.length; i++) {
        if (i + 1 < s.symbols.length && s.symbols[i] === best.a && s.symbols[i + 1] === best.b) {
          out.push(merged);
          i++;
        } else out.push(s.symbols[i]!);
      }
      s.symbols = out;
    }
  }
  return merges;
}

function compareMerge(x: { a: string; b: string }, y: { a: string; b: string }): number {
  const mx = x.a + x.b;
  const my = y.a + y.b;
  if (mx !== my) return mx < my ? -1 : 1;
  return x.a < y.a ? -1 : x.a > y.a ? 1 : 0;
}
