/** `dsa generate`: prefill the prompt, then sample new tokens one decode step at a time. */
import type { LatentFormat } from '../backend/backend.js';
import { Sampler } from '../generate/sampler.js';
import { DEFAULT_CHUNK, type Model } from '../model/model.js';
import { densePathNote, progressBar } from './progress.js';
import { io } from './io.js';

export interface GenerateOptions {
  model: Model;
  prompt: Int32Array;
  maxNewTokens: number;
  temperature: number;
  seed: number;
  stopAtEos: boolean;
  chunk?: number;
  /** The latent cache format (default 'bf16', as the DeepSeek demo and vLLM keep it). */
  cache?: LatentFormat;
  verbose?: boolean;
}

export async function runGenerate(o: GenerateOptions): Promise<number[]> {
  const { model, prompt } = o;
  const b = model.backend;
  const cfg = model.config;
  const total = prompt.length + o.maxNewTokens;
  if (total > cfg.maxPositionEmbeddings) {
    throw new Error(`prompt (${prompt.length}) + new tokens (${o.maxNewTokens}) exceed max_position_embeddings (${cfg.maxPositionEmbeddings})`);
  }
  const sampler = new Sampler(o.temperature, o.seed);
  const seq = model.createCache(total, { latentFormat: o.cache ?? 'bf16' }).newSequence();
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
  const out: number[] = [];
  const dbar = progressBar('decode', o.maxNewTokens, o.verbose);
  for (let i = 0; i < o.maxNewTokens; i++) {
    const token = sampler.sample(logits!);
    out.push(token);
    dbar.update(i + 1);
    if (o.stopAtEos && token === cfg.eosTokenId) break;
    if (i + 1 < o.maxNewTokens) logits = (await b.read(model.decode(seq, token))) as Float32Array;
  }
  dbar.stop();
  seq.release();
  return out;
}
