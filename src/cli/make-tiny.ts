/**
 * `dsa make-tiny --out DIR`: a small DeepSeek-V3.2 model that needs no download — random weights
 * (writeRandomModel) plus a tokenizer trained on the spot (byte-level BPE in DeepSeek's layout, its
 * vocabulary as large as the model's) and a DeepSeek-style chat template. For the server, demos and
 * tests.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { tinyConfigJson, writeRandomModel } from '../model/random-model.js';
import { trainByteLevelBpe, type SpecialToken } from '../text/bpe-train.js';
import { DEEPSEEK_CHAT_TEMPLATE } from '../text/chat-template.js';
import { TINY_CORPUS } from '../text/tiny-corpus.js';
import { io } from './io.js';

export const BOS = '<｜begin▁of▁sentence｜>';
export const EOS = '<｜end▁of▁sentence｜>';

/** DeepSeek's first three ids: BOS 0, EOS 1, pad 2 (as tinyConfigJson's bos/eos ids). */
const LEADING: SpecialToken[] = [
  { content: BOS, special: true },
  { content: EOS, special: true },
  { content: '<｜▁pad▁｜>', special: true },
];

/** DeepSeek's chat and tool markers (not "special": they stay in decoded text, as in DeepSeek's tokenizer). */
const TRAILING: SpecialToken[] = [
  '<｜User｜>',
  '<｜Assistant｜>',
  '<think>',
  '</think>',
  '<｜tool▁calls▁begin｜>',
  '<｜tool▁calls▁end｜>',
  '<｜tool▁call▁begin｜>',
  '<｜tool▁call▁end｜>',
  '<｜tool▁sep｜>',
  '<｜tool▁outputs▁begin｜>',
  '<｜tool▁outputs▁end｜>',
  '<｜tool▁output▁begin｜>',
  '<｜tool▁output▁end｜>',
].map((content) => ({ content, special: false }));

export interface TinyModelOptions {
  seed?: number;
  fp8?: boolean;
  /** config.json keys to override (vocab_size sizes the tokenizer too). */
  config?: Record<string, unknown>;
}

const addedToken = (content: string) => ({ __type: 'AddedToken', content, lstrip: false, normalized: true, rstrip: false, single_word: false });

/**
 * Writes DIR/config.json, model.safetensors, tokenizer.json, tokenizer_config.json and
 * generation_config.json. Returns the config.json object.
 */
export function writeTinyModel(dir: string, opts: TinyModelOptions = {}): Record<string, unknown> {
  const wanted = tinyConfigJson(opts.config);
  if (wanted.bos_token_id !== 0 || wanted.eos_token_id !== 1) {
    throw new Error(`make-tiny's tokenizer has BOS 0 and EOS 1; config asks for bos_token_id ${String(wanted.bos_token_id)}, eos_token_id ${String(wanted.eos_token_id)}`);
  }
  const vocabSize = wanted.vocab_size;
  if (!Number.isInteger(vocabSize)) throw new Error(`config vocab_size must be an integer, got ${JSON.stringify(vocabSize)}`);
  // The tokenizer first: a vocabulary too small for it fails before anything is written.
  const tokenizer = trainByteLevelBpe({ vocabSize: vocabSize as number, leadingSpecials: LEADING, trailingSpecials: TRAILING, corpus: TINY_CORPUS });
  const config = writeRandomModel(dir, { seed: opts.seed, fp8: opts.fp8, config: opts.config });
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: addedToken(BOS),
    eos_token: addedToken(EOS),
    pad_token: addedToken(EOS),
    unk_token: null,
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: config.max_position_embeddings,
    tokenizer_class: 'LlamaTokenizerFast',
    chat_template: DEEPSEEK_CHAT_TEMPLATE,
  };
  writeFileSync(join(dir, 'tokenizer.json'), `${JSON.stringify(tokenizer, null, 2)}\n`);
  writeFileSync(join(dir, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfig, null, 2)}\n`);
  writeFileSync(join(dir, 'generation_config.json'), `${JSON.stringify({ bos_token_id: 0, eos_token_id: 1, do_sample: true, temperature: 0.6, top_p: 0.95 }, null, 2)}\n`);
  return config;
}

/** Parses --config: a JSON object of config.json keys. */
export function parseConfigOverrides(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`--config: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('--config: expected a JSON object');
  return v as Record<string, unknown>;
}

export function addMakeTiny(program: Command, seedArg: (v: string) => number): void {
  program
    .command('make-tiny')
    .description('write a small DeepSeek-V3.2 model with random weights, a trained byte-level BPE tokenizer and a DeepSeek chat template')
    .requiredOption('--out <dir>', 'output directory')
    .option('--seed <n>', 'random seed of the weights', seedArg, 1)
    .option('--fp8', 'FP8 e4m3 block-quantized projections (as the real checkpoints)', false)
    .option('--config <json>', 'config.json keys to override, as a JSON object (e.g. \'{"vocab_size": 1024}\')')
    .action((o: { out: string; seed: number; fp8: boolean; config?: string }) => {
      writeTinyModel(o.out, { seed: o.seed, fp8: o.fp8, config: parseConfigOverrides(o.config) });
      io().out(`${o.out}\n`);
    });
}
