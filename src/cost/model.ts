/**
 * The per-token cost model behind `dsa cost`: the FLOPs and bytes that processing ONE token at
 * position t costs, summed over all layers, in prefill and in decode, for a dense-MLA model
 * (DeepSeek-V3.1-Terminus) or a DSA model (DeepSeek-V3.2-Exp); then time from a roofline over a
 * hardware profile and $ per million tokens from a price per GPU-hour. Every formula of the model
 * is stated once, here, where it is computed; docs/cost-model.md explains and discusses them.
 */
import { DEEPSEEK_V32_CONFIG } from '../bench/attention-layer.js';
import { parseConfig, type ModelConfig } from '../model/config.js';

export type Phase = 'prefill' | 'decode';

/** Kernel classes: each has its own achievable fraction of peak (per phase) in a hardware profile. */
export const KERNELS = ['gemm', 'dense-attention', 'sparse-attention', 'indexer', 'topk'] as const;
export type Kernel = (typeof KERNELS)[number];

/** Work of one op for one query token: FLOPs per execution unit and bytes moved to or from HBM. */
export interface Work {
  /** Tensor-core FLOPs on bf16 operands. */
  bf16: number;
  /** Tensor-core FLOPs on FP8 operands. */
  fp8: number;
  /** CUDA-core (non-tensor, fp32) FLOPs. */
  vector: number;
  bytes: number;
}

export interface Op {
  name: string;
  kernel: Kernel;
  work: Work;
}

/** A model to price: its config, whether it runs DSA, and how its MLA cache stores a token. */
export interface CostModelSpec {
  name: string;
  cfg: ModelConfig;
  dsa: boolean;
  /** Bytes of one cached MLA entry [c_kv | k_rope] read by attention. */
  latentBytes: number;
}

/** How the service runs the model: batching, expert parallelism, multi-token prediction, the prefill mode switch. */
export interface Deployment {
  /** Sequences decoded per GPU per step; all their query tokens share one read of the replicated weights. */
  batch: number;
  /** Prompt tokens per GPU per prefill step; they share one read of the replicated weights. */
  prefillTokens: number;
  /** GPUs the routed experts are spread over: each expert is read once per step for the tokens of all of them. */
  expertParallel: number;
  /** Query tokens per sequence per decode step: 1 + the multi-token-prediction (MTP) draft tokens. */
  mtpTokens: number;
  /** Probability that an MTP draft token is accepted. */
  mtpAcceptance: number;
  /**
   * DSA prefill at positions below this runs the masked dense (MHA) mode; null = whichever of the
   * two modes is cheaper at each position (what an engine that picks its kernel by cost does).
   */
  prefillDenseBelow: number | null;
}

/** Prices time per token on some hardware. */
export interface TimeModel {
  /** Seconds that `op` takes for one query token at position t. */
  opSeconds(op: Op, phase: Phase, t: number): number;
}

/** Bytes of a cached MLA entry: bf16 2(r_kv + d_r); FlashMLA's FP8 layout r_kv + 4 r_kv/128 (fp32 scales) + 2 d_r. */
export function latentEntryBytes(cfg: ModelConfig, format: 'bf16' | 'fp8'): number {
  return format === 'bf16' ? 2 * (cfg.kvLoraRank + cfg.qkRopeHeadDim) : cfg.kvLoraRank + 4 * Math.ceil(cfg.kvLoraRank / 128) + 2 * cfg.qkRopeHeadDim;
}

/** The full-size DeepSeek-V3.2 config (DeepSeek-V3.1-Terminus has the same architecture without using the indexer). */
export function deepseekV32Config(): ModelConfig {
  return parseConfig({ ...DEEPSEEK_V32_CONFIG }, 'built-in DeepSeek-V3.2 config');
}

/** V3.1-Terminus: dense MLA, bf16 latent cache (FlashMLA's dense decode kernel). */
export function v31Spec(): CostModelSpec {
  const cfg = deepseekV32Config();
  return { name: 'v3.1', cfg, dsa: false, latentBytes: latentEntryBytes(cfg, 'bf16') };
}

/** V3.2-Exp: DSA, FP8 latent cache (FlashMLA's sparse decode kernel requires it). */
export function v32Spec(): CostModelSpec {
  const cfg = deepseekV32Config();
  return { name: 'v3.2', cfg, dsa: true, latentBytes: latentEntryBytes(cfg, 'fp8') };
}

/**
 * A spec from a config.json object: DSA when it has index_topk (FP8 cache), else dense (bf16 cache).
 * A dense config (e.g. DeepSeek-V3, model_type 'deepseek_v3') gets placeholder indexer keys so it parses.
 */
export function specFromConfig(raw: Record<string, unknown>, name: string, file: string): CostModelSpec {
  const dsa = raw.index_topk !== undefined;
  const filled = dsa
    ? raw
    : {
        ...raw,
        index_n_heads: raw.index_n_heads ?? 64,
        index_head_dim: raw.index_head_dim ?? 128,
        index_topk: 2048,
        model_type: raw.model_type === 'deepseek_v3' ? 'deepseek_v32' : raw.model_type,
      };
  const cfg = parseConfig(filled, file);
  return { name, cfg, dsa, latentBytes: latentEntryBytes(cfg, dsa ? 'fp8' : 'bf16') };
}

const work = (w: Partial<Work>): Work => ({ bf16: w.bf16 ?? 0, fp8: w.fp8 ?? 0, vector: w.vector ?? 0, bytes: w.bytes ?? 0 });

/** Generated tokens per sequence per decode step: a = 1 + (mtpTokens − 1) · mtpAcceptance. */
export function acceptedPerStep(d: Deployment): number {
  return 1 + (d.mtpTokens - 1) * d.mtpAcceptance;
}

/** Parameters (weights) of one layer's attention projections: q_a, q_b, kv_a, kv_b (W_UK and W_UV), o_proj. */
export function mlaProjectionParams(c: ModelConfig): number {
  const H = c.numHeads;
  return (
    c.hiddenSize * c.qLoraRank +
    c.qLoraRank * H * (c.qkNopeHeadDim + c.qkRopeHeadDim) +
    c.hiddenSize * (c.kvLoraRank + c.qkRopeHeadDim) +
    c.kvLoraRank * H * (c.qkNopeHeadDim + c.vHeadDim) +
    H * c.vHeadDim * c.hiddenSize
  );
}

/**
 * The ops of one query token at position t (it attends N = t + 1 keys), summed over all layers.
 *
 * Linear layers (kernel 'gemm'): 2 FLOPs per weight per token, on FP8 tensor cores when the
 * checkpoint is FP8 (1 byte per weight, block scales ignored) else bf16 (2 bytes); each weight is
 * read once per step and shared by the tokens of the step: S = batch · mtpTokens in decode,
 * prefillTokens in prefill. Replicated per GPU (data-parallel attention): attention projections,
 * indexer projections, shared experts, dense FFN layers, the gate (bf16), lm_head (bf16, decode only:
 * a prompt token needs no logits). Routed experts are spread over `expertParallel` GPUs: a step routes
 * R = S · expertParallel tokens, hits E · (1 − (1 − k_e/E)^R) of the E experts in expectation, and
 * reads each hit expert once. The embedding is a row gather (2d bytes).
 *
 * Attention, per layer (H heads, latent r_kv, rope d_r, head dims d_n, d_v):
 * - dense prefill, MHA mode (per-head keys and values): N · (2H(d_n + d_r) + 2H d_v) bf16 FLOPs;
 * - MQA (absorbed) mode, dense decode and all sparse attention: n · (2H(r_kv + d_r) + 2H r_kv) bf16
 *   FLOPs over the n entries attended (n = N dense, n = min(N, k) sparse);
 * - decode reads n cached entries of `latentBytes`; a dense (or indexer) read is shared by the
 *   mtpTokens query tokens of the step, a sparse gather is not (each query has its own selection);
 *   sparse prefill gathers its n entries in bf16 (2(r_kv + d_r) bytes each), the form FlashMLA's
 *   sparse prefill kernel reads. Dense prefill attention and the prefill indexer are compute-bound:
 *   the keys are shared by a whole block of queries on chip, so their HBM bytes are not counted.
 * - indexer (DSA, when N > k): N · 2 H_I d_I FP8 FLOPs plus an epilogue of N · 3 H_I CUDA-core FLOPs
 *   (ReLU, multiply-add by the head weight); decode reads N keys of d_I + 4 bytes (FP8 + scale).
 * - top-k (DSA, when N > k): N · 8 bytes (the fp32 score written by the indexer, read by the selection).
 * - DSA prefill below `prefillDenseBelow` runs dense MHA over all N keys (with the indexer and
 *   top-k only when N > k, to build the mask); DSA decode always uses the sparse kernel over min(N, k).
 */
export function tokenOps(m: CostModelSpec, phase: Phase, t: number, d: Deployment): Op[] {
  const c = m.cfg;
  const L = c.numLayers;
  const moeLayers = L - c.firstKDenseReplace;
  const H = c.numHeads;
  const d_ = c.hiddenSize;
  const N = t + 1;
  const k = c.indexTopk;
  const fp8 = c.quant !== null;
  const wb = fp8 ? 1 : 2;
  const S = phase === 'decode' ? d.batch * d.mtpTokens : d.prefillTokens;
  const lin = (params: number, layers: number, bytesPerWeight = wb, onFp8 = fp8): Work =>
    work({ [onFp8 ? 'fp8' : 'bf16']: 2 * params * layers, bytes: (params * layers * bytesPerWeight) / S });

  const ops: Op[] = [{ name: 'embedding', kernel: 'gemm', work: work({ bytes: 2 * d_ }) }];
  ops.push({ name: 'attention projections', kernel: 'gemm', work: lin(mlaProjectionParams(c), L) });
  if (m.dsa) {
    const fp8Params = c.qLoraRank * c.indexNHeads * c.indexHeadDim + d_ * c.indexHeadDim; // wq_b, wk
    const a = lin(fp8Params, L);
    const b = lin(d_ * c.indexNHeads, L, 2, false); // weights_proj (bf16)
    ops.push({ name: 'indexer projections', kernel: 'gemm', work: work({ fp8: a.fp8, bf16: a.bf16 + b.bf16, bytes: a.bytes + b.bytes }) });
  }
  if (c.firstKDenseReplace > 0) ops.push({ name: 'dense FFN', kernel: 'gemm', work: lin(3 * d_ * c.intermediateSize, c.firstKDenseReplace) });
  if (moeLayers > 0) {
    const expert = 3 * d_ * c.moeIntermediateSize;
    const E = c.nRoutedExperts;
    const R = S * d.expertParallel;
    const hit = E * (1 - (1 - c.numExpertsPerTok / E) ** R);
    const shared = lin(c.nSharedExperts * expert, moeLayers);
    const gate = lin(d_ * E, moeLayers, 2, false);
    const routedFlops = 2 * c.numExpertsPerTok * expert * moeLayers;
    ops.push({
      name: 'MoE FFN',
      kernel: 'gemm',
      work: work({
        fp8: fp8 ? shared.fp8 + routedFlops : 0,
        bf16: gate.bf16 + (fp8 ? 0 : shared.bf16 + routedFlops),
        bytes: shared.bytes + gate.bytes + (hit * expert * wb * moeLayers) / R,
      }),
    });
  }
  if (phase === 'decode') ops.push({ name: 'lm_head', kernel: 'gemm', work: lin(d_ * c.vocabSize, 1, 2, false) });

  const mhaFlops = (n: number) => L * n * (2 * H * (c.qkNopeHeadDim + c.qkRopeHeadDim) + 2 * H * c.vHeadDim);
  const mqaFlops = (n: number) => L * n * (2 * H * (c.kvLoraRank + c.qkRopeHeadDim) + 2 * H * c.kvLoraRank);
  const share = phase === 'decode' ? d.mtpTokens : 1;
  const selects = m.dsa && N > k;
  const denseBelow = d.prefillDenseBelow ?? k;
  if (!m.dsa || (phase === 'prefill' && (t < denseBelow || N <= k))) {
    ops.push(
      phase === 'prefill'
        ? { name: 'dense attention', kernel: 'dense-attention', work: work({ bf16: mhaFlops(N) }) }
        : { name: 'dense attention', kernel: 'dense-attention', work: work({ bf16: mqaFlops(N), bytes: (L * N * m.latentBytes) / share }) },
    );
  } else {
    const n = Math.min(N, k);
    const gathered = phase === 'decode' ? m.latentBytes : 2 * (c.kvLoraRank + c.qkRopeHeadDim);
    ops.push({ name: 'sparse attention', kernel: 'sparse-attention', work: work({ bf16: mqaFlops(n), bytes: L * n * gathered }) });
  }
  if (selects) {
    const keyBytes = phase === 'decode' ? (L * N * (c.indexHeadDim + 4)) / share : 0;
    ops.push({
      name: 'indexer',
      kernel: 'indexer',
      work: work({ fp8: L * N * 2 * c.indexNHeads * c.indexHeadDim, vector: L * N * 3 * c.indexNHeads, bytes: keyBytes }),
    });
    ops.push({ name: 'top-k', kernel: 'topk', work: work({ bytes: L * N * 8 }) });
  }
  return ops;
}

/** Seconds per token at position t: Σ over the ops; in decode per GENERATED token, i.e. × mtpTokens / a. */
export function secondsPerToken(m: CostModelSpec, time: TimeModel, d: Deployment, phase: Phase, t: number): number {
  return breakdown(m, time, d, phase, t).reduce((s, x) => s + x.seconds, 0);
}

/** The ops of a token with their seconds (per generated token in decode). */
export function breakdown(m: CostModelSpec, time: TimeModel, d: Deployment, phase: Phase, t: number): { op: Op; seconds: number }[] {
  const perGenerated = phase === 'decode' ? d.mtpTokens / acceptedPerStep(d) : 1;
  const priced = (dd: Deployment) => tokenOps(m, phase, t, dd).map((op) => ({ op, seconds: time.opSeconds(op, phase, t) * perGenerated }));
  if (phase !== 'prefill' || !m.dsa || d.prefillDenseBelow !== null) return priced(d);
  // The cheaper of the masked dense mode and the sparse mode at this position.
  const dense = priced({ ...d, prefillDenseBelow: Infinity });
  const sparse = priced({ ...d, prefillDenseBelow: 0 });
  const total = (ops: { seconds: number }[]) => ops.reduce((a, x) => a + x.seconds, 0);
  return total(dense) <= total(sparse) ? dense : sparse;
}

/** $ per million tokens = seconds per token · 10⁶ · price per GPU-hour / 3600. */
export function dollarsPerMillion(seconds: number, pricePerGpuHour: number): number {
  return (seconds * 1e6 * pricePerGpuHour) / 3600;
}

/** Peak rates of a GPU: FLOP/s per execution unit and HBM bytes/s. */
export interface Peaks {
  bf16: number;
  fp8: number;
  vector: number;
  bandwidth: number;
}

/** Achievable fractions: of compute per phase and kernel class, and of memory bandwidth. */
export interface Efficiency {
  compute: Record<Phase, Record<Kernel, number>>;
  memory: number;
}

/**
 * The roofline of one op: max(compute time, memory time), where the compute time adds up its
 * execution units (a kernel runs its tensor-core and CUDA-core parts one after the other):
 * (bf16/P_bf16 + fp8/P_fp8 + vector/P_vector) / u_compute, and memory time = bytes / (B · u_memory).
 */
export function rooflineSeconds(w: Work, p: Peaks, computeFraction: number, memoryFraction: number): number {
  const compute = (w.bf16 / p.bf16 + w.fp8 / p.fp8 + w.vector / p.vector) / computeFraction;
  const memory = w.bytes / (p.bandwidth * memoryFraction);
  return Math.max(compute, memory);
}
