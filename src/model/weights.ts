/**
 * Loads a DeepSeek-V3.2 checkpoint's tensors (Hugging Face names) into backend weights, checking
 * every shape against the config. FP8 weights stay FP8 (with their block scales); kv_b_proj is also
 * dequantized once and split per head for the absorbed (MQA) attention, as the reference's decode does.
 */
import type { Backend, HostWeight, Tensor, Weight } from '../backend/backend.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { dequantBlockWeight } from '../numerics/block-quant.js';
import { decodeBf16 } from '../numerics/bf16.js';
import { isMoeLayer, type ModelConfig } from './config.js';

export class WeightError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WeightError';
  }
}

export interface Mlp {
  gate: Weight;
  up: Weight;
  down: Weight;
}

export interface IndexerWeights {
  wqB: Weight;
  wk: Weight;
  kNormWeight: Tensor;
  kNormBias: Tensor;
  weightsProj: Weight;
}

export interface AttentionWeights {
  qA: Weight;
  qANorm: Tensor;
  qB: Weight;
  kvA: Weight;
  kvANorm: Tensor;
  /** W_UK per head [H, d_n, r] and W_UV per head [H, d_v, r], float32 (dequantized). */
  wUK: Tensor;
  wUV: Tensor;
  /** Whether kv_b_proj is FP8 (then prefill attends over the act-quantized latent, as the reference's MHA path does). */
  kvBIsFp8: boolean;
  o: Weight;
  indexer: IndexerWeights;
}

export interface MoeWeights {
  gate: Weight;
  bias: Tensor | null;
  experts: { gate: Weight[]; up: Weight[]; down: Weight[] };
  shared: Mlp | null;
}

export interface LayerWeights {
  inputNorm: Tensor;
  postAttnNorm: Tensor;
  attn: AttentionWeights;
  mlp: Mlp | null;
  moe: MoeWeights | null;
}

export interface ModelWeights {
  embed: Weight;
  layers: LayerWeights[];
  norm: Tensor;
  lmHead: Weight;
}

/** Reads checkpoint tensors into host weights with shape checks. */
class Reader {
  constructor(
    private readonly ckpt: Checkpoint,
    private readonly cfg: ModelConfig,
  ) {}

  private shapeOf(name: string, shape: number[]): void {
    const info = this.ckpt.info(name);
    const ok = info.shape.length === shape.length && info.shape.every((d, i) => d === shape[i]);
    if (!ok) {
      throw new WeightError(`${info.file}: tensor '${name}' has shape [${info.shape.join(', ')}], the config implies [${shape.join(', ')}]`);
    }
  }

  vector(name: string, n: number): Float32Array {
    this.shapeOf(name, [n]);
    return this.ckpt.readF32(name);
  }

  /** A linear weight [outDim, inDim] named `${prefix}.weight` (plus `.weight_scale_inv` when FP8). */
  host(prefix: string, outDim: number, inDim: number): HostWeight {
    const name = `${prefix}.weight`;
    this.shapeOf(name, [outDim, inDim]);
    const info = this.ckpt.info(name);
    if (info.dtype === 'F8_E4M3') {
      const block = this.cfg.quant?.weightBlockSize ?? [128, 128];
      const scaleName = `${name}_scale_inv`;
      if (!this.ckpt.has(scaleName)) {
        throw new WeightError(`${info.file}: FP8 tensor '${name}' has no block scales '${scaleName}'`);
      }
      this.shapeOf(scaleName, [Math.ceil(outDim / block[0]), Math.ceil(inDim / block[1])]);
      const data = this.ckpt.read(name) as Uint8Array;
      return { format: 'fp8', outDim, inDim, data, scaleInv: this.ckpt.readF32(scaleName), block: [block[0], block[1]] };
    }
    if (info.dtype === 'BF16') return { format: 'bf16', outDim, inDim, data: this.ckpt.read(name) as Uint16Array };
    if (info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'F64') {
      return { format: 'f32', outDim, inDim, data: this.ckpt.readF32(name) };
    }
    throw new WeightError(`${info.file}: tensor '${name}' has dtype ${info.dtype}, expected F8_E4M3, BF16, F16 or F32`);
  }
}

/** The real (dequantized) float32 value of a host weight. */
export function hostToF32(w: HostWeight): Float32Array {
  if (w.format === 'f32') return w.data;
  if (w.format === 'bf16') return decodeBf16(w.data);
  if (w.block[0] !== w.block[1]) throw new WeightError(`non-square FP8 weight blocks [${w.block.join(', ')}] are not supported`);
  return dequantBlockWeight(w.data, w.scaleInv, w.outDim, w.inDim, w.block[0]);
}

/** Splits kv_b_proj [H·(d_n + d_v), r] into W_UK [H, d_n, r] and W_UV [H, d_v, r]. */
export function splitKvB(kvB: Float32Array, cfg: ModelConfig): { uk: Float32Array; uv: Float32Array } {
  const { numHeads: h, qkNopeHeadDim: dn, vHeadDim: dv, kvLoraRank: r } = cfg;
  const uk = new Float32Array(h * dn * r);
  const uv = new Float32Array(h * dv * r);
  for (let head = 0; head < h; head++) {
    const base = head * (dn + dv) * r;
    uk.set(kvB.subarray(base, base + dn * r), head * dn * r);
    uv.set(kvB.subarray(base + dn * r, base + (dn + dv) * r), head * dv * r);
  }
  return { uk, uv };
}

export interface LoadProgress {
  (done: number, total: number): void;
}

export function loadWeights(ckpt: Checkpoint, cfg: ModelConfig, backend: Backend, progress?: LoadProgress): ModelWeights {
  const steps = weightSteps(ckpt, cfg, backend, progress);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** loadWeights giving the event loop a turn after each layer (a server answers /health meanwhile). */
export async function loadWeightsAsync(ckpt: Checkpoint, cfg: ModelConfig, backend: Backend, progress?: LoadProgress): Promise<ModelWeights> {
  const steps = weightSteps(ckpt, cfg, backend, progress);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** The loading, one layer per step. */
function* weightSteps(ckpt: Checkpoint, cfg: ModelConfig, backend: Backend, progress?: LoadProgress): Generator<void, ModelWeights> {
  const rd = new Reader(ckpt, cfg);
  const d = cfg.hiddenSize;
  const vec = (name: string, n: number) => backend.upload(rd.vector(name, n), [n]);
  const lin = (prefix: string, outDim: number, inDim: number) => backend.uploadWeight(rd.host(prefix, outDim, inDim));
  const mlp = (prefix: string, inter: number): Mlp => ({
    gate: lin(`${prefix}.gate_proj`, inter, d),
    up: lin(`${prefix}.up_proj`, inter, d),
    down: lin(`${prefix}.down_proj`, d, inter),
  });

  const { numHeads: h, qkNopeHeadDim: dn, qkRopeHeadDim: dr, vHeadDim: dv, kvLoraRank: r, qLoraRank: rq } = cfg;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}`;
    const a = `${p}.self_attn`;
    const kvBHost = rd.host(`${a}.kv_b_proj`, h * (dn + dv), r);
    const { uk, uv } = splitKvB(hostToF32(kvBHost), cfg);
    const attn: AttentionWeights = {
      qA: lin(`${a}.q_a_proj`, rq, d),
      qANorm: vec(`${a}.q_a_layernorm.weight`, rq),
      qB: lin(`${a}.q_b_proj`, h * (dn + dr), rq),
      kvA: lin(`${a}.kv_a_proj_with_mqa`, r + dr, d),
      kvANorm: vec(`${a}.kv_a_layernorm.weight`, r),
      wUK: backend.upload(uk, [h, dn, r]),
      wUV: backend.upload(uv, [h, dv, r]),
      kvBIsFp8: kvBHost.format === 'fp8',
      o: lin(`${a}.o_proj`, d, h * dv),
      indexer: {
        wqB: lin(`${a}.indexer.wq_b`, cfg.indexNHeads * cfg.indexHeadDim, rq),
        wk: lin(`${a}.indexer.wk`, cfg.indexHeadDim, d),
        kNormWeight: vec(`${a}.indexer.k_norm.weight`, cfg.indexHeadDim),
        kNormBias: vec(`${a}.indexer.k_norm.bias`, cfg.indexHeadDim),
        weightsProj: lin(`${a}.indexer.weights_proj`, cfg.indexNHeads, d),
      },
    };
    let moe: MoeWeights | null = null;
    if (isMoeLayer(cfg, i)) {
      const e = cfg.nRoutedExperts;
      const experts = { gate: [] as Weight[], up: [] as Weight[], down: [] as Weight[] };
      for (let j = 0; j < e; j++) {
        const m = mlp(`${p}.mlp.experts.${j}`, cfg.moeIntermediateSize);
        experts.gate.push(m.gate);
        experts.up.push(m.up);
        experts.down.push(m.down);
      }
      const biasName = `${p}.mlp.gate.e_score_correction_bias`;
      moe = {
        gate: lin(`${p}.mlp.gate`, e, d),
        bias: cfg.topkMethod === 'noaux_tc' ? vec(biasName, e) : null,
        experts,
        shared: cfg.nSharedExperts > 0 ? mlp(`${p}.mlp.shared_experts`, cfg.nSharedExperts * cfg.moeIntermediateSize) : null,
      };
    }
    layers.push({
      inputNorm: vec(`${p}.input_layernorm.weight`, d),
      postAttnNorm: vec(`${p}.post_attention_layernorm.weight`, d),
      attn,
      mlp: moe ? null : mlp(`${p}.mlp`, cfg.intermediateSize),
      moe,
    });
    progress?.(i + 1, cfg.numLayers);
    yield;
  }
  return {
    embed: lin('model.embed_tokens', cfg.vocabSize, d),
    layers,
    norm: vec('model.norm.weight', d),
    lmHead: lin('lm_head', cfg.vocabSize, d),
  };
}
