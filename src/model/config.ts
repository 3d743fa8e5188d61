/**
 * config.json of a DeepSeek-V3.2 (model_type "deepseek_v32") checkpoint, validated and turned into
 * the camel-cased ModelConfig the rest of the code reads. Every problem is reported with the file
 * name and the key, in one error listing all problems found.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { ScaleFormat } from '../numerics/block-quant.js';

export type { ScaleFormat };

export interface YarnConfig {
  factor: number;
  originalMaxPositionEmbeddings: number;
  betaFast: number;
  betaSlow: number;
  mscale: number;
  mscaleAllDim: number;
}

export interface Fp8QuantConfig {
  /** [rows, cols] of a weight block: [128, 128] in every DeepSeek checkpoint. */
  weightBlockSize: [number, number];
  /** Scale rule of activation quantization: plain amax/448, or rounded up to a power of two. */
  scaleFormat: ScaleFormat;
}

export interface ModelConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  moeIntermediateSize: number;
  numLayers: number;
  firstKDenseReplace: number;
  numHeads: number;
  nRoutedExperts: number;
  nSharedExperts: number;
  numExpertsPerTok: number;
  nGroup: number;
  topkGroup: number;
  routedScalingFactor: number;
  scoringFunc: 'sigmoid' | 'softmax';
  topkMethod: 'noaux_tc' | 'greedy' | 'group_limited_greedy';
  normTopkProb: boolean;
  qLoraRank: number;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  ropeTheta: number;
  /** YaRN parameters, or null for plain RoPE. */
  yarn: YarnConfig | null;
  maxPositionEmbeddings: number;
  rmsNormEps: number;
  indexNHeads: number;
  indexHeadDim: number;
  indexTopk: number;
  /** Pair layout of the indexer's RoPE: false = half-split (NeoX, the corrected reference). */
  indexerRopeInterleave: boolean;
  /** FP8 block quantization of the checkpoint's linear weights, or null for bf16/f32 weights. */
  quant: Fp8QuantConfig | null;
  /** Scale rule of the indexer's q/k FP8 quantization (the reference uses the checkpoint's scale_fmt, 'none' without one). */
  indexerScaleFormat: ScaleFormat;
  eosTokenId: number | null;
  bosTokenId: number | null;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file}: ${problems.length === 1 ? problems[0] : `invalid config:\n  - ${problems.join('\n  - ')}`}`);
    this.name = 'ConfigError';
  }
}

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const posNum = z.number().positive();

const ropeScalingSchema = z
  .object({
    type: z.string().optional(),
    rope_type: z.string().optional(),
    factor: posNum,
    original_max_position_embeddings: posInt,
    beta_fast: posNum.default(32),
    beta_slow: posNum.default(1),
    mscale: z.number().default(1),
    mscale_all_dim: z.number().default(0),
  })
  .loose();

const quantSchema = z
  .object({
    quant_method: z.literal('fp8'),
    fmt: z.literal('e4m3').default('e4m3'),
    weight_block_size: z.tuple([posInt, posInt]).default([128, 128]),
    scale_fmt: z.enum(['ue8m0']).nullable().optional(),
  })
  .loose();

const configSchema = z
  .object({
    model_type: z.string(),
    vocab_size: posInt,
    hidden_size: posInt,
    intermediate_size: posInt,
    moe_intermediate_size: posInt,
    num_hidden_layers: posInt,
    first_k_dense_replace: nonNegInt,
    num_attention_heads: posInt,
    n_routed_experts: posInt,
    n_shared_experts: nonNegInt,
    num_experts_per_tok: posInt,
    n_group: posInt.default(1),
    topk_group: posInt.default(1),
    routed_scaling_factor: posNum.default(1),
    scoring_func: z.enum(['sigmoid', 'softmax']).default('sigmoid'),
    topk_method: z.enum(['noaux_tc', 'greedy', 'group_limited_greedy']).default('noaux_tc'),
    norm_topk_prob: z.boolean().default(true),
    q_lora_rank: posInt,
    kv_lora_rank: posInt,
    qk_nope_head_dim: posInt,
    qk_rope_head_dim: posInt,
    v_head_dim: posInt,
    rope_theta: posNum.default(10000),
    rope_scaling: ropeScalingSchema.nullable().optional(),
    max_position_embeddings: posInt,
    rms_norm_eps: posNum.default(1e-6),
    index_n_heads: posInt,
    index_head_dim: posInt,
    index_topk: posInt,
    indexer_rope_interleave: z.boolean().optional(),
    quantization_config: quantSchema.nullable().optional(),
    tie_word_embeddings: z.boolean().default(false),
    moe_layer_freq: posInt.default(1),
    eos_token_id: z.number().int().nullable().optional(),
    bos_token_id: z.number().int().nullable().optional(),
  })
  .loose();

type RawConfig = z.infer<typeof configSchema>;

/** Parses an already-loaded config object; `file` names it in errors. */
export function parseConfig(raw: unknown, file = 'config.json'): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, ['expected a JSON object']);
  }
  const modelType = (raw as Record<string, unknown>).model_type;
  if (modelType !== 'deepseek_v32') {
    const seen = modelType === undefined ? 'missing' : `'${String(modelType)}'`;
    throw new ConfigError(file, [`model_type is ${seen}: only 'deepseek_v32' (DeepSeek-V3.2) is supported`]);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(file, parsed.error.issues.map(describeIssue));
  }
  const c = parsed.data;
  const problems = consistencyProblems(c);
  if (problems.length > 0) throw new ConfigError(file, problems);
  return toModelConfig(c);
}

/** Reads and validates DIR/config.json. */
export function loadConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(dir)) throw new ConfigError(dir, ['model directory not found']);
  if (!statSync(dir).isDirectory()) throw new ConfigError(dir, ['not a directory (expected a model directory with config.json and safetensors)']);
  if (!existsSync(file)) throw new ConfigError(file, ['file not found (a model directory needs a config.json)']);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(file, [`not valid JSON (${(e as Error).message})`]);
  }
  return parseConfig(raw, file);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.length > 0 ? issue.path.join('.') : '(root)';
  if (issue.code === 'invalid_type' && issue.message.includes('received undefined')) {
    return `${key}: missing (required)`;
  }
  return `${key}: ${issue.message}`;
}

function consistencyProblems(c: RawConfig): string[] {
  const p: string[] = [];
  if (c.first_k_dense_replace > c.num_hidden_layers) {
    p.push(`first_k_dense_replace (${c.first_k_dense_replace}) exceeds num_hidden_layers (${c.num_hidden_layers})`);
  }
  if (c.n_routed_experts % c.n_group !== 0) {
    p.push(`n_routed_experts (${c.n_routed_experts}) is not divisible by n_group (${c.n_group})`);
  }
  if (c.topk_group > c.n_group) p.push(`topk_group (${c.topk_group}) exceeds n_group (${c.n_group})`);
  const perGroup = c.n_routed_experts / c.n_group;
  if (c.num_experts_per_tok > c.topk_group * perGroup) {
    p.push(
      `num_experts_per_tok (${c.num_experts_per_tok}) exceeds the experts in the kept groups ` +
        `(topk_group ${c.topk_group} × ${perGroup} experts per group)`,
    );
  }
  if (c.topk_method === 'noaux_tc' && c.n_group > 1 && perGroup < 2) {
    p.push(`topk_method 'noaux_tc' scores a group by its top-2 experts, but groups have ${perGroup} expert`);
  }
  if (c.qk_rope_head_dim % 2 !== 0) p.push(`qk_rope_head_dim (${c.qk_rope_head_dim}) must be even`);
  if (c.qk_rope_head_dim > c.index_head_dim) {
    p.push(`qk_rope_head_dim (${c.qk_rope_head_dim}) exceeds index_head_dim (${c.index_head_dim})`);
  }
  if ((c.index_head_dim & (c.index_head_dim - 1)) !== 0) {
    p.push(`index_head_dim (${c.index_head_dim}) must be a power of two (the indexer's Hadamard transform)`);
  }
  if (c.moe_layer_freq !== 1) p.push(`moe_layer_freq ${c.moe_layer_freq} is not supported (DeepSeek-V3.2 uses 1)`);
  if (c.tie_word_embeddings) p.push('tie_word_embeddings true is not supported (DeepSeek-V3.2 has a separate lm_head)');
  const rs = c.rope_scaling;
  if (rs) {
    const kind = rs.type ?? rs.rope_type;
    if (kind !== 'yarn') p.push(`rope_scaling.type '${String(kind)}' is not supported (expected 'yarn')`);
  }
  for (const [key, value] of [
    ['vocab_size', c.vocab_size],
    ['max_position_embeddings', c.max_position_embeddings],
  ] as const) {
    if (value > 2 ** 31 - 1) p.push(`${key} (${value}) is too large`);
  }
  return p;
}

function toModelConfig(c: RawConfig): ModelConfig {
  const rs = c.rope_scaling;
  const q = c.quantization_config;
  const quant: Fp8QuantConfig | null = q
    ? { weightBlockSize: [q.weight_block_size[0], q.weight_block_size[1]], scaleFormat: q.scale_fmt === 'ue8m0' ? 'ue8m0' : 'none' }
    : null;
  return {
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    moeIntermediateSize: c.moe_intermediate_size,
    numLayers: c.num_hidden_layers,
    firstKDenseReplace: c.first_k_dense_replace,
    numHeads: c.num_attention_heads,
    nRoutedExperts: c.n_routed_experts,
    nSharedExperts: c.n_shared_experts,
    numExpertsPerTok: c.num_experts_per_tok,
    nGroup: c.n_group,
    topkGroup: c.topk_group,
    routedScalingFactor: c.routed_scaling_factor,
    scoringFunc: c.scoring_func,
    topkMethod: c.topk_method,
    normTopkProb: c.norm_topk_prob,
    qLoraRank: c.q_lora_rank,
    kvLoraRank: c.kv_lora_rank,
    qkNopeHeadDim: c.qk_nope_head_dim,
    qkRopeHeadDim: c.qk_rope_head_dim,
    vHeadDim: c.v_head_dim,
    ropeTheta: c.rope_theta,
    yarn: rs
      ? {
          factor: rs.factor,
          originalMaxPositionEmbeddings: rs.original_max_position_embeddings,
          betaFast: rs.beta_fast,
          betaSlow: rs.beta_slow,
          mscale: rs.mscale,
          mscaleAllDim: rs.mscale_all_dim,
        }
      : null,
    maxPositionEmbeddings: c.max_position_embeddings,
    rmsNormEps: c.rms_norm_eps,
    indexNHeads: c.index_n_heads,
    indexHeadDim: c.index_head_dim,
    indexTopk: c.index_topk,
    indexerRopeInterleave: c.indexer_rope_interleave ?? false,
    quant,
    indexerScaleFormat: quant ? quant.scaleFormat : 'none',
    eosTokenId: c.eos_token_id ?? null,
    bosTokenId: c.bos_token_id ?? null,
  };
}

/** Layers 0..firstKDenseReplace-1 use a dense MLP; the rest are MoE. */
export function isMoeLayer(cfg: ModelConfig, layer: number): boolean {
  return layer >= cfg.firstKDenseReplace;
}
