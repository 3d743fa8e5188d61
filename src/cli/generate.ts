/**
 * `dsa generate`: prefill the prompt, then sample new tokens one decode step at a time. The prompt
 * is token ids or text (tokenized with the model's tokenizer, optionally through its chat
 * template); sampling goes through the request pipeline the server uses — logits processors,
 * seeded sampler, stopping criteria with stop strings — and text is streamed as it completes.
 */
import type { LatentFormat } from '../backend/backend.js';
import type { IndexerFormat } from '../model/cache.js';
import { parseSamplingParams, type SamplingParams, type SamplingParamsInput } from '../generate/params.js';
import { TokenSampler } from '../generate/sampler.js';
import type { FinishReason } from '../generate/stopping.js';
import { TokenStreamer } from '../generate/streamer.js';
import { DEFAULT_CHUNK, type Model } from '../model/model.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { densePathNote, progressBar } from './progress.js';
import { io } from './io.js';

export interface GenerateOptions {
  model: Model;
  prompt: Int32Array;
  maxNewTokens: number;
  /** Sampling fields as a request has them (temperature, top_p, top_k, min_p, seed, stop, …). */
  sampling?: SamplingParamsInput;
  /** Shorthands kept from the first version of this function (override `sampling`). */
  temperature?: number;
  seed?: number;
  /** Stop at the EOS ids (the tokenizer's, else the config's eos_token_id). */
  stopAtEos: boolean;
  /** Decodes the output (stop strings need it); null or absent: ids only. */
  tokenizer?: TextTokenizer | null;
  /** Called with each piece of completed text (streaming). */
  onText?: (text: string) => void;
  chunk?: number;
  /** The latent cache format (default 'bf16', as the DeepSeek demo and vLLM keep it). */
  cache?: LatentFormat;
  /** The indexer key cache format (default 'fp8', the reference). */
  indexerCache?: IndexerFormat;
  verbose?: boolean;
}

export interface GenerateResult {
  ids: number[];
  text: string;
  finishReason: FinishReason;
}

/** Generates up to maxNewTokens ids; returns them (for callers of the first version). */
export async function runGenerate(o: GenerateOptions): Promise<number[]> {
  return (await generate(o)).ids;
}

export async function generate(o: GenerateOptions): Promise<GenerateResult> {
  const { model, prompt } = o;
  const b = model.backend;
  const cfg = model.config;
  const total = prompt.length + o.maxNewTokens;
  if (total > cfg.maxPositionEmbeddings) {
    throw new Error(`prompt (${prompt.length}) + new tokens (${o.maxNewTokens}) exceed max_position_embeddings (${cfg.maxPositionEmbeddings})`);
  }
  const params: SamplingParams = parseSamplingParams({
    temperature: 0,
    ...o.sampling,
    ...(o.temperature !== undefined ? { temperature: o.temperature } : {}),
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    max_tokens: o.maxNewTokens,
    ignore_eos: !o.stopAtEos,
  });
  const eosTokenIds = o.tokenizer?.eosTokenIds.length ? o.tokenizer.eosTokenIds : cfg.eosTokenId == null ? [] : [cfg.eosTokenId];
  const sampler = new TokenSampler(params, { promptIds: prompt, eosTokenIds });
  const streamer = new TokenStreamer(params, { tokenizer: o.tokenizer, eosTokenIds, promptIds: prompt });

  const seq = model.createCache(total, { latentFormat: o.cache ?? 'bf16', indexerFormat: o.indexerCache }).newSequence();
  try {
    let logits: Float32Array | null = null;
    if (o.verbose) io().err(`${densePathNote(cfg.indexTopk, total)}\n`);
    const bar = progressBar('prefill', prompt.length, o.verbose);
    await model.prefill(seq, prompt, {
      chunk: o.chunk ?? DEFAULT_CHUNK,
      logits: 'last',
      onLogits: async (_start, t) => {
        logits = (await b.read(t)) as Float32Array;
      },
      onProgress: (done) => bar.update(done),
    });
    bar.stop();
    const dbar = progressBar('decode', o.maxNewTokens, o.verbose);
    for (;;) {
      const token = sampler.sample(logits!);
      const step = streamer.push(token);
      if (step.text) o.onText?.(step.text);
      dbar.update(streamer.generatedCount);
      if (step.finishReason) break;
      logits = (await b.read(model.decode(seq, token))) as Float32Array;
    }
    dbar.stop();
  } finally {
    seq.release();
  }
  return { ids: [...streamer.tokenIds], text: streamer.text, finishReason: streamer.finishReason! };
}

/** The model directory's tokenizer; an error saying why when `required` and there is none. */
export function loadTokenizer(dir: string, required: boolean): TextTokenizer | null {
  const tokenizer = TextTokenizer.load(dir);
  if (!tokenizer && required) throw new Error(`${dir} has no tokenizer.json: text prompts and --stop need one (use --prompt-ids, or a model from \`dsa make-tiny\`)`);
  return tokenizer;
}

/** Prompt ids of a text: encoded with BOS, or rendered as a chat (user message, optional system message first). */
export function promptFromText(tokenizer: TextTokenizer, text: string, chat: boolean, system?: string): number[] {
  if (!chat) return tokenizer.encode(text);
  const messages = [...(system !== undefined ? [{ role: 'system', content: system }] : []), { role: 'user', content: text }];
  return tokenizer.encodeChat(messages);
}
