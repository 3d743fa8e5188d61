/**
 * Writes a DeepSeek-V3.2 checkpoint with seeded random weights (Hugging Face names and layout,
 * bf16 or FP8 block-quantized linears): small models for tests, demos and benchmarks, made on the
 * spot instead of downloaded. Weight scales follow the golden fixtures' recipe (N(0, std) per kind,
 * norms 1 + 0.05·N(0, 1)).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors-writer.js';
import { encodeBf16 } from '../numerics/bf16.js';
import { quantizeBlockWeight, type ScaleFormat } from '../numerics/block-quant.js';
import { Rng } from '../generate/sampler.js';
import { parseConfig } from './config.js';

/** A small config in config.json form (snake_case keys), like the tiny-bf16 fixture's. */
export function tinyConfigJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['DeepseekV32ForCausalLM'],
    model_type: 'deepseek_v32',
    vocab_size: 512,
    hidden_size: 128,
    intermediate_size: 256,
    moe_intermediate_size: 64,
    num_hidden_layers: 3,
    first_k_dense_replace: 1,
    num_attention_heads: 4,
    n_routed_experts: 8,
    n_shared_experts: 1,
    num_experts_per_tok: 2,
    n_group: 4,
    topk_group: 2,
    routed_scaling_factor: 2.5,
    scoring_func: 'sigmoid',
    topk_method: 'noaux_tc',
    norm_topk_prob: true,
    q_lora_rank: 64,
    kv_lora_rank: 64,
    qk_nope_head_dim: 32,
    qk_rope_head_dim: 16,
    v_head_dim: 32,
    rope_theta: 10000,
    rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 1024, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-6,
    index_n_heads: 8,
    index_head_dim: 64,
    index_topk: 32,
    bos_token_id: 0,
    eos_token_id: 1,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    ...overrides,
  };
}

export interface RandomModelOptions {
  seed?: number;
  /** Quantize the projections the reference quantizes to FP8 e4m3 in 128×128 blocks. */
  fp8?: boolean;
  scaleFormat?: ScaleFormat;
  /** config.json keys to override. */
  config?: Record<string, unknown>;
}

class Gaussian {
  private spare: number | null = null;
  constructor(private readonly rng: Rng) {}
  next(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u = Math.max(this.rng.next(), 1e-300);
    const v = this.rng.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  fill(n: number, std: number, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.next();
    return out;
  }
}

/** Writes DIR/config.json and DIR/model.safetensors; returns the config.json object written. */
export function writeRandomModel(dir: string, opts: RandomModelOptions = {}): Record<string, unknown> {
  const scaleFormat = opts.scaleFormat ?? 'ue8m0';
  const json = tinyConfigJson({
    ...(opts.fp8
      ? { quantization_config: { activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', ...(scaleFormat === 'ue8m0' ? { scale_fmt: 'ue8m0' } : {}), weight_block_size: [128, 128] } }
      : {}),
    ...opts.config,
  });
  const cfg = parseConfig(json, join(dir, 'config.json'));
  const g = new Gaussian(new Rng(opts.seed ?? 1));
  const tensors = new Map<string, TensorToWrite>();
  const bf16 = (name: string, shape: number[], data: Float32Array) => tensors.set(name, { dtype: 'BF16', shape, data: encodeBf16(data) });
  const vector = (name: string, n: number, std: number, mean: number) => bf16(name, [n], g.fill(n, std, mean));
  /** A projection the reference quantizes (FP8 when asked). */
  const quantized = (name: string, out: number, inDim: number, std: number) => {
    const w = g.fill(out * inDim, std);
    if (!opts.fp8) return bf16(`${name}.weight`, [out, inDim], w);
    const { w8, scaleInv } = quantizeBlockWeight(w, out, inDim, scaleFormat);
    tensors.set(`${name}.weight`, { dtype: 'F8_E4M3', shape: [out, inDim], data: w8 });
    tensors.set(`${name}.weight_scale_inv`, { dtype: 'F32', shape: [Math.ceil(out / 128), Math.ceil(inDim / 128)], data: scaleInv });
  };
  const mlp = (prefix: string, inter: number) => {
    quantized(`${prefix}.gate_proj`, inter, d, 0.02);
    quantized(`${prefix}.up_proj`, inter, d, 0.02);
    quantized(`${prefix}.down_proj`, d, inter, 0.02);
  };

  const d = cfg.hiddenSize;
  const { numHeads: h, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv, kvLoraRank: r, qLoraRank: rq } = cfg;
  bf16('model.embed_tokens.weight', [cfg.vocabSize, d], g.fill(cfg.vocabSize * d, 0.5));
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const a = `${p}.self_attn`;
    vector(`${p}.input_layernorm.weight`, d, 0.05, 1);
    vector(`${p}.post_attention_layernorm.weight`, d, 0.05, 1);
    quantized(`${a}.q_a_proj`, rq, d, 0.02);
    vector(`${a}.q_a_layernorm.weight`, rq, 0.05, 1);
    quantized(`${a}.q_b_proj`, h * (dn + dr), rq, 0.05);
    quantized(`${a}.kv_a_proj_with_mqa`, r + dr, d, 0.05);
    vector(`${a}.kv_a_layernorm.weight`, r, 0.05, 1);
    quantized(`${a}.kv_b_proj`, h * (dn + dv), r, 0.02);
    quantized(`${a}.o_proj`, d, h * dv, 0.02);
    quantized(`${a}.indexer.wq_b`, cfg.indexNHeads * cfg.indexHeadDim, rq, 0.02);
    quantized(`${a}.indexer.wk`, cfg.indexHeadDim, d, 0.02);
    vector(`${a}.indexer.k_norm.weight`, cfg.indexHeadDim, 0.05, 1);
    vector(`${a}.indexer.k_norm.bias`, cfg.indexHeadDim, 0.05, 0);
    bf16(`${a}.indexer.weights_proj.weight`, [cfg.indexNHeads, d], g.fill(cfg.indexNHeads * d, 0.02));
    if (i < cfg.firstKDenseReplace) {
      mlp(`${p}.mlp`, cfg.intermediateSize);
    } else {
      bf16(`${p}.mlp.gate.weight`, [cfg.nRoutedExperts, d], g.fill(cfg.nRoutedExperts * d, 0.05));
      tensors.set(`${p}.mlp.gate.e_score_correction_bias`, { dtype: 'F32', shape: [cfg.nRoutedExperts], data: g.fill(cfg.nRoutedExperts, 0.01) });
      for (let j = 0; j < cfg.nRoutedExperts; j++) mlp(`${p}.mlp.experts.${j}`, cfg.moeIntermediateSize);
      if (cfg.nSharedExperts > 0) mlp(`${p}.mlp.shared_experts`, cfg.nSharedExperts * cfg.moeIntermediateSize);
    }
  }
  vector('model.norm.weight', d, 0.05, 1);
  bf16('lm_head.weight', [cfg.vocabSize, d], g.fill(cfg.vocabSize * d, 0.05));

  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(json, null, 2)}\n`);
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt', generator: 'dsa random-model' });
  return json;
}
