/**
 * The trainable model: a small DeepSeek-V3.2 (MLA with a compressed latent and a decoupled RoPE
 * key, the lightning indexer, dense SwiGLU MLPs) whose parameters are float32 arrays under the
 * checkpoint's Hugging Face names, so `Model.load` (src/model/) runs what training wrote. Training
 * numerics are float32 throughout — the indexer's q/k included; inference quantizes them to FP8
 * (after a Hadamard rotation, which leaves q·k unchanged), so its index scores differ by FP8 rounding.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Checkpoint, loadJsonFile } from '../io/checkpoint.js';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors-writer.js';
import { Rng } from '../generate/sampler.js';
import { loadConfig, parseConfig, type ModelConfig } from '../model/config.js';
import { tinyConfigJson } from '../model/random-model.js';

/** config.json of a small all-dense DeepSeek-V3.2 for training from scratch (snake_case keys). */
export function smallConfigJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const layers = (overrides.num_hidden_layers as number | undefined) ?? 2;
  return tinyConfigJson({
    vocab_size: 256,
    hidden_size: 64,
    intermediate_size: 128,
    moe_intermediate_size: 64,
    num_hidden_layers: layers,
    first_k_dense_replace: layers,
    num_attention_heads: 4,
    n_routed_experts: 1,
    n_shared_experts: 0,
    num_experts_per_tok: 1,
    n_group: 1,
    topk_group: 1,
    q_lora_rank: 32,
    kv_lora_rank: 32,
    qk_nope_head_dim: 16,
    qk_rope_head_dim: 8,
    v_head_dim: 16,
    rope_scaling: null,
    max_position_embeddings: 32768,
    index_n_heads: 4,
    index_head_dim: 32,
    index_topk: 16,
    torch_dtype: 'float32',
    ...overrides,
  });
}

export interface ParamSpec {
  name: string;
  shape: number[];
  /** 'matrix' (decayed, N(0, std)), 'norm' (ones), 'bias' (zeros). */
  kind: 'matrix' | 'norm' | 'bias';
  std: number;
  /** Part of the lightning indexer (trained by the KL losses only). */
  indexer: boolean;
}

/** Every parameter of the model in checkpoint order, with its shape and initialization. */
export function paramSpecs(cfg: ModelConfig): ParamSpec[] {
  if (cfg.firstKDenseReplace < cfg.numLayers) throw new RangeError('training supports dense MLP layers only (first_k_dense_replace = num_hidden_layers)');
  const { hiddenSize: d, numHeads: h, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv, kvLoraRank: r, qLoraRank: rq } = cfg;
  const specs: ParamSpec[] = [];
  const residualStd = 0.02 / Math.sqrt(2 * cfg.numLayers);
  const m = (name: string, shape: number[], std = 0.02, indexer = false) => specs.push({ name, shape, kind: 'matrix', std, indexer });
  const n = (name: string, size: number, indexer = false) => specs.push({ name, shape: [size], kind: 'norm', std: 0, indexer });
  m('model.embed_tokens.weight', [cfg.vocabSize, d]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const a = `${p}.self_attn`;
    n(`${p}.input_layernorm.weight`, d);
    n(`${p}.post_attention_layernorm.weight`, d);
    m(`${a}.q_a_proj.weight`, [rq, d]);
    n(`${a}.q_a_layernorm.weight`, rq);
    // Queries and keys start at unit scale (std 1/√fan-in), so attention is not uniform from the first step.
    m(`${a}.q_b_proj.weight`, [h * (dn + dr), rq], 1 / Math.sqrt(rq));
    m(`${a}.kv_a_proj_with_mqa.weight`, [r + dr, d]);
    n(`${a}.kv_a_layernorm.weight`, r);
    m(`${a}.kv_b_proj.weight`, [h * (dn + dv), r], 1 / Math.sqrt(r));
    m(`${a}.o_proj.weight`, [d, h * dv], residualStd);
    m(`${a}.indexer.wq_b.weight`, [cfg.indexNHeads * cfg.indexHeadDim, rq], 1 / Math.sqrt(rq), true);
    m(`${a}.indexer.wk.weight`, [cfg.indexHeadDim, d], 1 / Math.sqrt(d), true);
    n(`${a}.indexer.k_norm.weight`, cfg.indexHeadDim, true);
    specs.push({ name: `${a}.indexer.k_norm.bias`, shape: [cfg.indexHeadDim], kind: 'bias', std: 0, indexer: true });
    m(`${a}.indexer.weights_proj.weight`, [cfg.indexNHeads, d], 0.02, true);
    m(`${p}.mlp.gate_proj.weight`, [cfg.intermediateSize, d]);
    m(`${p}.mlp.up_proj.weight`, [cfg.intermediateSize, d]);
    m(`${p}.mlp.down_proj.weight`, [d, cfg.intermediateSize], residualStd);
  }
  n('model.norm.weight', d);
  m('lm_head.weight', [cfg.vocabSize, d]);
  return specs;
}

function gaussian(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng.next(), 1e-300);
    const v = rng.next();
    const rad = std * Math.sqrt(-2 * Math.log(u));
    out[i] = rad * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = rad * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export class TrainModel {
  readonly specs: ParamSpec[];
  readonly params = new Map<string, Float32Array>();

  constructor(
    readonly configJson: Record<string, unknown>,
    readonly config: ModelConfig = parseConfig(configJson),
  ) {
    this.specs = paramSpecs(config);
  }

  /** A freshly initialized model (seeded). */
  static init(configJson: Record<string, unknown>, seed = 1): TrainModel {
    const model = new TrainModel(configJson);
    const rng = new Rng(seed);
    for (const s of model.specs) {
      const size = s.shape.reduce((a, x) => a * x, 1);
      model.params.set(s.name, s.kind === 'matrix' ? gaussian(rng, size, s.std) : new Float32Array(size).fill(s.kind === 'norm' ? 1 : 0));
    }
    return model;
  }

  /** Loads DIR (config.json + safetensors, any float dtype) as float32 parameters. */
  static load(dir: string): TrainModel {
    const config = loadConfig(dir);
    const json = loadJsonFile(join(dir, 'config.json'), 'the model config') as Record<string, unknown>;
    const model = new TrainModel(json, config);
    const ckpt = Checkpoint.open(dir);
    try {
      for (const s of model.specs) {
        if (!ckpt.has(s.name)) throw new Error(`${dir}: tensor '${s.name}' is missing (a trainable model needs every parameter)`);
        const info = ckpt.info(s.name);
        if (info.shape.length !== s.shape.length || info.shape.some((x, i) => x !== s.shape[i])) {
          throw new Error(`${dir}: tensor '${s.name}' has shape [${info.shape.join(', ')}], the config implies [${s.shape.join(', ')}]`);
        }
        if (info.dtype === 'F8_E4M3') throw new Error(`${dir}: tensor '${s.name}' is FP8; training needs float weights`);
        model.params.set(s.name, ckpt.readF32(s.name));
      }
    } finally {
      ckpt.close();
    }
    return model;
  }

  /** Writes DIR/config.json and DIR/model.safetensors (float32, Hugging Face names): loadable by Model.load. */
  save(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const tensors = new Map<string, TensorToWrite>();
    for (const s of this.specs) tensors.set(s.name, { dtype: 'F32', shape: s.shape, data: this.get(s.name) });
    writeFileSync(join(dir, 'config.json'), `${JSON.stringify(this.configJson, null, 2)}\n`);
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt', generator: 'dsa train' });
  }

  get(name: string): Float32Array {
    const p = this.params.get(name);
    if (!p) throw new Error(`no parameter '${name}'`);
    return p;
  }

  shapeOf(name: string): number[] {
    const s = this.specs.find((x) => x.name === name);
    if (!s) throw new Error(`no parameter '${name}'`);
    return s.shape;
  }

  get parameterCount(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.length;
    return n;
  }
}
