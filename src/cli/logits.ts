/**
 * `dsa logits`: one prefill over the prompt, then N greedy decode steps one token at a time; writes
 * the logits and the discrete choices in the layout of the fixtures' expected.safetensors.
 * With --force REF the reference's selections, routes and decode tokens are replayed.
 */
import type { Backend, LatentFormat } from '../backend/backend.js';
import type { IndexerFormat } from '../model/cache.js';
import { SafetensorsStreamWriter } from '../io/safetensors-writer.js';
import { Model, DEFAULT_CHUNK } from '../model/model.js';
import { ChoiceRecorder } from '../model/record.js';
import { Replay } from '../model/replay.js';
import { densePathNote, progressBar } from './progress.js';
import { argmax } from '../generate/sampler.js';
import { io } from './io.js';

export interface LogitsOptions {
  model: Model;
  prompt: Int32Array;
  decode: number;
  out: string;
  force?: string;
  dense?: boolean;
  chunk?: number;
  /** The latent cache format (default 'f32': the reference numerics this command compares with). */
  cache?: LatentFormat;
  /** The indexer key cache format (default 'fp8', the reference). */
  indexerCache?: IndexerFormat;
  verbose?: boolean;
}

/**
 * Runs the job and writes OUT. Logits are streamed to the file as they are produced (a chunk of
 * prompt rows, then one row per decode step), so memory stays O(chunk × vocab) however long the run.
 */
export async function runLogits(o: LogitsOptions): Promise<void> {
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
  const l = cfg.numLayers;
  const out = new SafetensorsStreamWriter(
    o.out,
    [
      ['prompt_ids', { dtype: 'I32', shape: [p] }],
      ['prefill_logits', { dtype: 'F32', shape: [p, v] }],
      ['decode_input_ids', { dtype: 'I32', shape: [steps] }],
      ['decode_logits', { dtype: 'F32', shape: [steps, v] }],
      ['prefill_topk_all', { dtype: 'I32', shape: [l, p, recorder.k] }],
      ['decode_topk', { dtype: 'I32', shape: [steps, l, recorder.kDecode] }],
      ['moe_experts', { dtype: 'I32', shape: [recorder.moeLayers, p + steps, cfg.numExpertsPerTok] }],
    ],
    { format: 'dsa-logits', forced: o.force ? 'true' : 'false', attention: o.dense ? 'dense' : 'sparse', cache: o.cache ?? 'f32', indexerCache: o.indexerCache ?? 'fp8' },
  );
  try {
    out.writeTensor('prompt_ids', prompt);
    const seq = model.createCache(p + steps, { latentFormat: o.cache ?? 'f32', indexerFormat: o.indexerCache }).newSequence();
    let last: Float32Array = new Float32Array(v);
    if (o.verbose) io().err(`${densePathNote(cfg.indexTopk, p + steps, o.dense)}\n`);
    const bar = progressBar('prefill', p, o.verbose);
    await model.prefill(seq, prompt, {
      chunk: o.chunk ?? DEFAULT_CHUNK,
      logits: 'all',
      dense: o.dense,
      force: replay,
      observe: recorder,
      onLogits: async (start, t) => {
        const rows = (await b.read(t)) as Float32Array;
        out.write('prefill_logits', rows, start * v);
        if (start * v + rows.length === p * v) last = rows.slice(rows.length - v);
      },
      onProgress: (done) => bar.update(done),
    });
    bar.stop();

    const decodeInputIds = new Int32Array(steps);
    const dbar = progressBar('decode', steps, o.verbose);
    for (let i = 0; i < steps; i++) {
      const token = replay ? replay.decodeInputIds[i]! : argmax(last);
      if (!(token >= 0 && token < v)) throw new Error(`decode token ${token} at step ${i} is outside the vocabulary`);
      decodeInputIds[i] = token;
      last = (await b.read(model.decode(seq, token, { dense: o.dense, force: replay, observe: recorder }))) as Float32Array;
      out.write('decode_logits', last, i * v);
      dbar.update(i + 1);
    }
    dbar.stop();
    await recorder.flush();
    seq.release();
    out.writeTensor('decode_input_ids', decodeInputIds);
    out.writeTensor('prefill_topk_all', recorder.prefillTopk);
    out.writeTensor('decode_topk', recorder.decodeTopk);
    out.writeTensor('moe_experts', recorder.moeExperts);
    out.close();
  } catch (e) {
    out.abort();
    throw e;
  }
}
