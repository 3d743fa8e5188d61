/**
 * One DeepSeek-V3.2 attention layer for benchmarks, made in memory: the real config, seeded random
 * weights (FP8 block-quantized as the checkpoint stores them), and a cache filled directly with
 * random but realistic content (no prefill through the model).
 */
import { latentRowBytes, LATENT_FORMATS, type Backend, type HostWeight, type LatentFormat, type SeqPages, type Tensor } from '../backend/backend.js';
import { Rng } from '../generate/sampler.js';
import { encodeBf16 } from '../numerics/bf16.js';
import { quantizeBlockWeight } from '../numerics/block-quant.js';
import type { KVCache, LayerCache } from '../model/cache.js';
import type { ModelConfig } from '../model/config.js';
import { hostToF32, splitKvB, type AttentionWeights } from '../model/weights.js';

/** The attention-relevant config.json of DeepSeek-V3.2 (the real checkpoint's values). */
export const DEEPSEEK_V32_CONFIG: Readonly<Record<string, unknown>> = {
  architectures: ['DeepseekV32ForCausalLM'],
  model_type: 'deepseek_v32',
  vocab_size: 129280,
  hidden_size: 7168,
  intermediate_size: 18432,
  moe_intermediate_size: 2048,
  num_hidden_layers: 61,
  first_k_dense_replace: 3,
  num_attention_heads: 128,
  n_routed_experts: 256,
  n_shared_experts: 1,
  num_experts_per_tok: 8,
  n_group: 8,
  topk_group: 4,
  routed_scaling_factor: 2.5,
  scoring_func: 'sigmoid',
  topk_method: 'noaux_tc',
  norm_topk_prob: true,
  q_lora_rank: 1536,
  kv_lora_rank: 512,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  v_head_dim: 128,
  rope_theta: 10000,
  rope_scaling: { type: 'yarn', factor: 40, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1, mscale: 1.0, mscale_all_dim: 1.0 },
  max_position_embeddings: 163840,
  rms_norm_eps: 1e-6,
  index_n_heads: 64,
  index_head_dim: 128,
  index_topk: 2048,
  quantization_config: { activation_scheme: 'dynamic', fmt: 'e4m3', quant_method: 'fp8', scale_fmt: 'ue8m0', weight_block_size: [128, 128] },
  bos_token_id: 0,
  eos_token_id: 1,
  tie_word_embeddings: false,
};

/**
 * Normal numbers for benchmark data, fast enough for hundreds of millions of weights: a table of
 * 65536 seeded N(0, 1) draws (Box–Muller), read at random indices (two per 32 random bits).
 */
export class Gaussian {
  private readonly table = new Float32Array(65536);
  constructor(private readonly rng: Rng) {
    for (let i = 0; i < this.table.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(Math.max(rng.next(), 1e-300)));
      const a = 2 * Math.PI * rng.next();
      this.table[i] = r * Math.cos(a);
      this.table[i + 1] = r * Math.sin(a);
    }
  }
  fill(n: number, std: number, mean = 0): Float32Array {
    const out = new Float32Array(n);
    const t = this.table;
    for (let i = 0; i < n; i += 2) {
      const u = this.rng.nextU32();
      out[i] = mean + std * t[u & 0xffff]!;
      if (i + 1 < n) out[i + 1] = mean + std * t[u >>> 16]!;
    }
    return out;
  }
  /** `rows` vectors of length n with root-mean-square 1 (what an RMSNorm outputs). */
  normalizedRows(rows: number, n: number): Float32Array {
    const out = this.fill(rows * n, 1);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let i = r * n; i < (r + 1) * n; i++) ss += out[i]! * out[i]!;
      const k = 1 / Math.sqrt(ss / n);
      for (let i = r * n; i < (r + 1) * n; i++) out[i]! *= k;
    }
    return out;
  }
}

/** A random linear weight: FP8 e4m3 in the config's blocks (quantized strip by strip) when `fp8`, else bf16. */
function randomLinear(g: Gaussian, cfg: ModelConfig, outDim: number, inDim: number, std: number, fp8: boolean): HostWeight {
  const q = cfg.quant;
  if (!fp8 || !q) return { format: 'bf16', outDim, inDim, data: encodeBf16(g.fill(outDim * inDim, std)) };
  const [bo, bi] = q.weightBlockSize;
  if (bo !== bi) throw new Error(`non-square FP8 weight blocks [${bo}, ${bi}] are not supported`);
  const colBlocks = Math.ceil(inDim / bi);
  const data = new Uint8Array(outDim * inDim);
  const scaleInv = new Float32Array(Math.ceil(outDim / bo) * colBlocks);
  for (let r0 = 0; r0 < outDim; r0 += bo) {
    const rows = Math.min(bo, outDim - r0);
    const { w8, scaleInv: s } = quantizeBlockWeight(g.fill(rows * inDim, std), rows, inDim, q.scaleFormat, bo);
    data.set(w8, r0 * inDim);
    scaleInv.set(s, (r0 / bo) * colBlocks);
  }
  return { format: 'fp8', outDim, inDim, data, scaleInv, block: [bo, bi] };
}

/**
 * One layer's attention weights, seeded, with the random-model recipe's scales (N(0, std) per
 * projection, norms 1 + 0.05·N(0, 1)). Projections are FP8 when the config has quantization_config
 * (weights_proj stays bf16, as in the checkpoint); kv_b_proj is dequantized and split per head.
 */
export function randomAttentionWeights(b: Backend, cfg: ModelConfig, seed: number): AttentionWeights {
  const g = new Gaussian(new Rng(seed));
  const fp8 = cfg.quant !== null;
  const { hiddenSize: d, numHeads: h, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv, kvLoraRank: r, qLoraRank: rq } = cfg;
  const lin = (outDim: number, inDim: number, std: number, quantized = true) => b.uploadWeight(randomLinear(g, cfg, outDim, inDim, std, quantized && fp8));
  const vec = (n: number, std: number, mean: number) => b.upload(g.fill(n, std, mean), [n]);
  const { uk, uv } = splitKvB(hostToF32(randomLinear(g, cfg, h * (dn + dv), r, 0.02, fp8)), cfg);
  return {
    qA: lin(rq, d, 0.02),
    qANorm: vec(rq, 0.05, 1),
    qB: lin(h * (dn + dr), rq, 0.05),
    kvA: lin(r + dr, d, 0.05),
    kvANorm: vec(r, 0.05, 1),
    wUK: b.upload(uk, [h, dn, r]),
    wUV: b.upload(uv, [h, dv, r]),
    kvBIsFp8: fp8,
    o: lin(d, h * dv, 0.02),
    indexer: {
      wqB: lin(cfg.indexNHeads * cfg.indexHeadDim, rq, 0.02),
      wk: lin(cfg.indexHeadDim, d, 0.02),
      kNormWeight: vec(cfg.indexHeadDim, 0.05, 1),
      kNormBias: vec(cfg.indexHeadDim, 0.05, 0),
      weightsProj: lin(cfg.indexNHeads, d, 0.02, false),
    },
  };
}

export interface Rope {
  cos: Tensor;
  sin: Tensor;
}

/**
 * Writes positions 0..n-1 of a layer cache directly: RMS-normalized random c_kv and random k_rope
 * rotated at its position (f32, packed into the cache's latent format), the prefill copy of c_kv
 * (act-quantized) when the cache keeps one, and FP8 indexer keys (random vectors quantized with one
 * scale each, as the indexer stores them).
 */
export function fillCache(b: Backend, cfg: ModelConfig, layer: LayerCache, pages: SeqPages, n: number, g: Gaussian, rope: Rope): void {
  const { kvLoraRank: r, qkRopeHeadDim: dr, indexHeadDim: di } = cfg;
  const aq = cfg.quant ? cfg.quant.scaleFormat : 'none';
  const chunk = 2048;
  for (let s = 0; s < n; s += chunk) {
    const t = Math.min(chunk, n - s);
    b.scope(() => {
      const pos = b.upload(Int32Array.from({ length: t }, (_, i) => s + i), [t]);
      const ckv = b.upload(g.normalizedRows(t, r), [t, r]);
      const kPe = b.reshape(b.rope(b.upload(g.fill(t * dr, 1), [t, 1, dr]), pos, rope.cos, rope.sin, 0, true), [t, dr]);
      b.writeRows(layer.latent, pages, pos, b.packLatent(ckv, kPe, layer.format), 0);
      if (layer.latentPrefill) {
        const { q, s: scales } = b.quantFp8(ckv, 128, aq);
        b.writeRows(layer.latentPrefill, pages, pos, b.packLatent(b.dequantFp8(q, scales, 128), kPe, layer.format), 0);
      }
      const fp8 = b.quantFp8(b.upload(g.fill(t * di, 1), [t, di]), di, cfg.indexerScaleFormat);
      const keys = layer.indexFormat === 'int8' ? b.requantInt8(fp8.q, fp8.s) : fp8;
      b.writeRows(layer.indexKeys, pages, pos, keys.q, 0);
      b.writeRows(layer.indexScales, pages, pos, keys.s, 0);
    });
  }
}

/** Cache bytes per token and layer: what this run's cache stores, and every latent layout. */
export interface CacheBytes {
  /** Layout of the latent in this run. */
  format: LatentFormat;
  /** Bytes per token of this run's cache (latent, prefill copy if kept, indexer key). */
  used: number;
  parts: string;
  /** Latent + indexer key per layout (no prefill copy). */
  layouts: Record<LatentFormat, number>;
}

export function cacheBytes(cfg: ModelConfig, cache: KVCache): CacheBytes {
  const { kvLoraRank: r, qkRopeHeadDim: dr, indexHeadDim: di } = cfg;
  const key = di + 4;
  const format = cache.latentFormat;
  const latent = latentRowBytes(format, r, dr);
  const prefill = cache.layers[0]?.latentPrefill != null;
  const copy = prefill ? ` + ${format} prefill copy of the latent ${latent} B (kept because kv_b_proj is FP8)` : '';
  const layouts = {} as Record<LatentFormat, number>;
  for (const f of LATENT_FORMATS) {
    try {
      layouts[f] = latentRowBytes(f, r, dr) + key;
    } catch {
      layouts[f] = NaN; // fp8 needs kv_lora_rank % 128 = 0
    }
  }
  return { format, used: cache.bytesPerTokenLayer(), parts: `${format} latent ${latent} B${copy} + FP8 indexer key ${key} B`, layouts };
}
