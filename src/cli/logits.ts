/**
 * `dsa logits`: one prefill over the prompt, then N greedy decode steps one token at a time; writes
 * the logits and the discrete choices in the layout of the fixtures' expected.safetensors.
 * With --force REF the reference's selections, routes and decode tokens are replayed.
 */
import type { Backend } from '../backend/backend.js';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors-writer.js';
import { Model, DEFAULT_CHUNK } from '../model/model.js';
import { ChoiceRecorder } from '../model/record.js';
import { Replay } from '../model/replay.js';
import { progressBar } from './progress.js';
import { argmax } from '../generate/sampler.js';

export interface LogitsOptions {
  model: Model;
  prompt: Int32Array;
  decode: number;
  out: string;
  force?: string;
  dense?: boolean;
  chunk?: number;
  verbose?: boolean;
}

export interface LogitsResult {
  prefillLogits: Float32Array;
  decodeInputIds: Int32Array;
  decodeLogits: Float32Array;
  recorder: ChoiceRecorder;
}

export async function runLogits(o: LogitsOptions): Promise<LogitsResult> {
  const { model, prompt, decode: steps } = o;
  const b: Backend = model.backend;
  const cfg = model.config;
  const p = prompt.length;
  const v = cfg.vocabSize;
  if (p === 0) throw new Error('the prompt is empty');
  if (p + steps > cfg.maxPositionEmbeddings) {
    throw new Error(`prompt (${p}) + decode (${steps}) tokens exceed max_position_embeddings (${cfg.maxPositionEmbeddings})`);
  }
  const replay = o.force ? new Replay(o.force, cfg, prompt, steps) : undefined;
  const recorder = new ChoiceRecorder(b, cfg, p, steps);
  const cache = model.createCache(p + steps);
  const seq = cache.newSequence();
  const prefillLogits = new Float32Array(p * v);
  const bar = progressBar('prefill', p, o.verbose);
  await model.prefill(seq, prompt, {
    chunk: o.chunk ?? DEFAULT_CHUNK,
    logits: 'all',
    dense: o.dense,
    force: replay,
    observe: recorder,
    onLogits: async (start, t) => prefillLogits.set((await b.read(t)) as Float32Array, start * v),
    onProgress: (done) => bar.update(done),
  });
  bar.stop();

  const decodeInputIds = new Int32Array(steps);
  const decodeLogits = new Float32Array(steps * v);
  let last: Float32Array = prefillLogits.subarray((p - 1) * v, p * v);
  const dbar = progressBar('decode', steps, o.verbose);
  for (let i = 0; i < steps; i++) {
    const token = replay ? replay.decodeInputIds[i]! : argmax(last);
    if (!(token >= 0 && token < v)) throw new Error(`decode token ${token} at step ${i} is outside the vocabulary`);
    decodeInputIds[i] = token;
    const logits = model.decode(seq, token, { dense: o.dense, force: replay, observe: recorder });
    last = (await b.read(logits)) as Float32Array;
    decodeLogits.set(last, i * v);
    dbar.update(i + 1);
  }
  dbar.stop();
  await recorder.flush();
  seq.release();

  const l = cfg.numLayers;
  const tensors: Record<string, TensorToWrite> = {
    prompt_ids: { dtype: 'I32', shape: [p], data: prompt },
    prefill_logits: { dtype: 'F32', shape: [p, v], data: prefillLogits },
    decode_input_ids: { dtype: 'I32', shape: [steps], data: decodeInputIds },
    decode_logits: { dtype: 'F32', shape: [steps, v], data: decodeLogits },
    prefill_topk_all: { dtype: 'I32', shape: [l, p, recorder.k], data: recorder.prefillTopk },
    decode_topk: { dtype: 'I32', shape: [steps, l, recorder.kDecode], data: recorder.decodeTopk },
    moe_experts: { dtype: 'I32', shape: [recorder.moeLayers, p + steps, cfg.numExpertsPerTok], data: recorder.moeExperts },
  };
  writeSafetensors(o.out, tensors, {
    format: 'dsa-logits',
    forced: o.force ? 'true' : 'false',
    attention: o.dense ? 'dense' : 'sparse',
  });
  return { prefillLogits, decodeInputIds, decodeLogits, recorder };
}
