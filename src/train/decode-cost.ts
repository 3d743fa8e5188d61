/**
 * The measured decode-cost ratio of a trained model: the inference engine (Model.load of the
 * checkpoint training wrote, CPU backend, FP8 indexer keys) decodes greedy steps after a prompt of
 * `context` tokens, with dense attention and with DSA; the ratio of their step times.
 */
import type { Backend } from '../backend/backend.js';
import { Model } from '../model/model.js';

export interface DecodeCost {
  context: number;
  denseMs: number;
  sparseMs: number;
  ratio: number;
}

async function timeDecode(model: Model, prompt: Int32Array, steps: number, dense: boolean): Promise<number> {
  const seq = model.createCache(prompt.length + steps + 1).newSequence();
  await model.prefill(seq, prompt, { logits: 'none', dense });
  let token = prompt[prompt.length - 1]!;
  // One untimed step, then the timed ones.
  await model.backend.read(model.decode(seq, token, { dense }));
  const started = performance.now();
  for (let i = 0; i < steps; i++) {
    const logits = (await model.backend.read(model.decode(seq, token, { dense }))) as Float32Array;
    token = logits.indexOf(Math.max(...logits));
  }
  return (performance.now() - started) / steps;
}

export async function decodeCost(dir: string, backend: Backend, contexts: number[], steps = 16): Promise<DecodeCost[]> {
  const model = Model.load(dir, backend);
  const out: DecodeCost[] = [];
  for (const context of contexts) {
    if (context + steps + 1 > model.config.maxPositionEmbeddings) {
      throw new RangeError(`context ${context} + ${steps} decode steps exceeds max_position_embeddings (${model.config.maxPositionEmbeddings})`);
    }
    const prompt = new Int32Array(context);
    for (let i = 0; i < context; i++) prompt[i] = (i * 7919 + 13) % model.config.vocabSize;
    const denseMs = await timeDecode(model, prompt, steps, true);
    const sparseMs = await timeDecode(model, prompt, steps, false);
    out.push({ context, denseMs, sparseMs, ratio: denseMs / sparseMs });
  }
  return out;
}
