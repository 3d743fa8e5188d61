/**
 * The training forward pass, top to bottom: embedding → per layer (RMSNorm → MLA over each
 * query's keys → residual → RMSNorm → SwiGLU MLP → residual) → RMSNorm → lm_head → cross-entropy.
 * With DSA on, each layer's lightning indexer scores every earlier key and its top-k become the
 * keys of that layer's attention. The indexer's KL loss (dense: Eq. 3, over every key; sparse:
 * Eq. 4, over the selection) is built from detached inputs and a data target, so its gradient and
 * the language-modeling gradient never mix.
 */
import { causalKeys, type KeySets } from '../autograd/keysets.js';
import { add, swiglu } from '../autograd/ops/elementwise.js';
import { embedding } from '../autograd/ops/embedding.js';
import { linear } from '../autograd/ops/linear.js';
import { crossEntropy } from '../autograd/ops/loss.js';
import { rmsNorm } from '../autograd/ops/norm.js';
import type { RopeTables } from '../autograd/ops/rope.js';
import { Tape, Var } from '../autograd/var.js';
import type { TrainBackend } from '../autograd/backend.js';
import { ropeTables } from '../model/rope.js';
import { mlaAttend, mlaProjections } from './attention.js';
import type { LayerContext } from './context.js';
import { indexerInputs } from './indexer.js';
import { attentionTarget, indexerKl } from './indexer-kl.js';
import type { ParamSpec, TrainModel } from './model.js';
import { fullIndexScores, selectTopk } from './topk.js';

export interface ForwardOptions {
  /** Main attention over every earlier position, or over the indexer's top-k (DSA). */
  attention: 'dense' | 'sparse';
  /** The indexer's KL loss: none, Eq. 3 (every key, needs dense attention) or Eq. 4 (the selection, needs sparse). */
  indexerLoss: 'none' | 'dense' | 'sparse';
  /** Which parameters need gradients (the rest are frozen: no backward work for them). */
  trainable: (spec: ParamSpec) => boolean;
  /** Keys kept per query under DSA (default: the config's index_topk). */
  topk?: number;
  /** Keep per layer: dense attention target and the indexer's scores over every key (for recall). */
  trace?: boolean;
}

export interface LayerTrace {
  /** The keys every query could attend (causal). */
  causal: KeySets;
  /** Head-summed, normalized main attention over `attended` keys. */
  target: Float32Array;
  attended: KeySets;
  /** Index scores of every causal key (null when the indexer did not run). */
  indexScores: Float32Array | null;
}

export interface ForwardResult {
  tape: Tape;
  logits: Var;
  /** Mean next-token cross-entropy (rows with a negative target are skipped). */
  lmLoss: Var;
  /** The indexer KL loss of each layer (empty when off). */
  indexerLosses: Var[];
  /** The Vars of the parameters, by name (their .grad after backward). */
  vars: Map<string, Var>;
  traces: LayerTrace[];
}

const ropeCache = new WeakMap<TrainModel, RopeTables & { rows: number }>();

function ropeFor(model: TrainModel, rows: number): RopeTables {
  const have = ropeCache.get(model);
  if (have && have.rows >= rows) return have;
  const t = ropeTables(model.config, Math.max(rows, 2 * (have?.rows ?? 0)));
  const entry = { ...t, rows: Math.max(rows, 2 * (have?.rows ?? 0)) };
  ropeCache.set(model, entry);
  return entry;
}

/**
 * One forward pass over `batch` sequences of `seqLen` tokens (ids [batch·seqLen], targets likewise).
 */
export function forward(model: TrainModel, backend: TrainBackend, ids: Int32Array, targets: Int32Array, batch: number, seqLen: number, opts: ForwardOptions): ForwardResult {
  const cfg = model.config;
  if (ids.length !== batch * seqLen || targets.length !== ids.length) throw new RangeError(`forward: expected ${batch}×${seqLen} ids and targets`);
  if (seqLen > cfg.maxPositionEmbeddings) throw new RangeError(`sequence length ${seqLen} exceeds max_position_embeddings (${cfg.maxPositionEmbeddings})`);
  if (opts.indexerLoss === 'dense' && opts.attention !== 'dense') throw new RangeError('the dense warm-up KL (Eq. 3) needs dense attention');
  if (opts.indexerLoss === 'sparse' && opts.attention !== 'sparse') throw new RangeError('the sparse KL (Eq. 4) needs sparse attention');
  const g = new Tape(backend);
  const vars = new Map<string, Var>();
  for (const s of model.specs) vars.set(s.name, new Var(model.get(s.name), s.shape, opts.trainable(s)));
  const v = (name: string) => vars.get(name)!;
  const positions = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) positions[i] = i % seqLen;
  const rope = ropeFor(model, seqLen);
  const causal = causalKeys(batch, seqLen);
  const topk = opts.topk ?? cfg.indexTopk;
  const idxDims = { heads: cfg.indexNHeads, dim: cfg.indexHeadDim };
  const needIndexer = opts.attention === 'sparse' || opts.indexerLoss !== 'none' || opts.trace === true;

  let h = embedding(g, v('model.embed_tokens.weight'), ids);
  const indexerLosses: Var[] = [];
  const traces: LayerTrace[] = [];
  for (let layer = 0; layer < cfg.numLayers; layer++) {
    const pre = `model.layers.${layer}`;
    const ctx: LayerContext = { g, cfg, positions, rope, p: (name) => v(`${pre}.self_attn.${name}`) };
    const x = rmsNorm(g, h, v(`${pre}.input_layernorm.weight`), cfg.rmsNormEps);
    const proj = mlaProjections(ctx, x);
    const ix = needIndexer ? indexerInputs(ctx, x, proj.cq) : null;
    // Scores of every causal key: for the selection (DSA) and for recall traces; the warm-up's KL computes its own.
    const scores = ix && (opts.attention === 'sparse' || opts.trace) ? fullIndexScores(backend, ix, causal, idxDims) : null;
    const keys = opts.attention === 'sparse' ? selectTopk(causal, scores!, topk) : causal;
    const { out, probs } = mlaAttend(ctx, proj, keys);
    const target = attentionTarget(probs, cfg.numHeads, keys);
    if (opts.indexerLoss !== 'none') indexerLosses.push(indexerKl(g, ix!, keys, target, idxDims));
    if (opts.trace) traces.push({ causal, target, attended: keys, indexScores: scores });
    h = add(g, h, out);
    const f = rmsNorm(g, h, v(`${pre}.post_attention_layernorm.weight`), cfg.rmsNormEps);
    const hidden = swiglu(g, linear(g, f, v(`${pre}.mlp.gate_proj.weight`)), linear(g, f, v(`${pre}.mlp.up_proj.weight`)));
    h = add(g, h, linear(g, hidden, v(`${pre}.mlp.down_proj.weight`)));
  }
  const logits = linear(g, rmsNorm(g, h, v('model.norm.weight'), cfg.rmsNormEps), v('lm_head.weight'));
  const lmLoss = crossEntropy(g, logits, targets);
  return { tape: g, logits, lmLoss, indexerLosses, vars, traces };
}
