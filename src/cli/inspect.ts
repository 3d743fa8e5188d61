/** `dsa inspect DIR`: config summary, parameter counts, tensor dtypes and the memory the model needs. */
import { LATENT_FORMATS, latentRowBytes, type LatentFormat } from '../backend/backend.js';
import { Checkpoint } from '../io/checkpoint.js';
import { needsPrefillLatent } from '../model/cache.js';
import { loadConfig, type ModelConfig } from '../model/config.js';

export interface InspectReport {
  dir: string;
  config: ModelConfig;
  parameters: { total: number; mainModel: number; mtpLayers: number; activatedPerToken: number };
  dtypes: Record<string, { tensors: number; bytes: number }>;
  memory: {
    weightsBytes: number;
    runtimeExtraBytes: number;
    /** Cache bytes per token over all layers, per latent format (null: fp8 needs kv_lora_rank % 128 = 0). */
    cacheBytesPerToken: PerFormat;
    /**
     * Per token and layer: the latent row in each format, whether a second latent (the prefill copy,
     * kept for FP8 kv_b_proj in the same format; not needed by an fp8 latent with ue8m0 activation
     * scales) is stored, and the FP8 indexer key with its scale.
     */
    cacheBytesPerTokenLayer: { latent: PerFormat; prefillCopy: Record<LatentFormat, boolean>; indexerKeys: number };
    cacheBytesAtMaxContext: PerFormat;
  };
}

export type PerFormat = Record<LatentFormat, number | null>;

function perFormat(f: (format: LatentFormat) => number | null): PerFormat {
  return Object.fromEntries(LATENT_FORMATS.map((format) => [format, f(format)])) as PerFormat;
}

const MTP_LAYER = /^model\.layers\.(\d+)\./;

export function inspectModel(dir: string): InspectReport {
  const cfg = loadConfig(dir);
  const ckpt = Checkpoint.open(dir);
  try {
    const dtypes: Record<string, { tensors: number; bytes: number }> = {};
    let total = 0;
    let main = 0;
    let weightsBytes = 0;
    let routedPerLayer = 0;
    let fp8KvB = false;
    for (const name of ckpt.names()) {
      const info = ckpt.info(name);
      const d = (dtypes[info.dtype] ??= { tensors: 0, bytes: 0 });
      d.tensors++;
      d.bytes += info.byteLength;
      const layer = MTP_LAYER.exec(name);
      const isMain = !layer || Number(layer[1]) < cfg.numLayers;
      if (isMain) weightsBytes += info.byteLength;
      if (name.endsWith('_scale_inv')) continue;
      total += info.numel;
      if (!isMain) continue;
      main += info.numel;
      if (name.startsWith(`model.layers.${cfg.firstKDenseReplace}.mlp.experts.`)) routedPerLayer += info.numel;
      if (name.endsWith('self_attn.kv_b_proj.weight') && info.dtype === 'F8_E4M3') fp8KvB = true;
    }
    const moeLayers = cfg.numLayers - cfg.firstKDenseReplace;
    const inactive = moeLayers * routedPerLayer * (1 - cfg.numExpertsPerTok / cfg.nRoutedExperts);
    const { numHeads: h, qkNopeHeadDim: dn, vHeadDim: dv, kvLoraRank: r, qkRopeHeadDim: dr } = cfg;
    const latent = perFormat((f) => (f === 'fp8' && r % 128 !== 0 ? null : latentRowBytes(f, r, dr)));
    const indexerKeys = cfg.indexHeadDim + 4;
    const prefillCopy = Object.fromEntries(LATENT_FORMATS.map((f) => [f, needsPrefillLatent(fp8KvB, f)])) as Record<LatentFormat, boolean>;
    const perToken = perFormat((f) => (latent[f] === null ? null : (latent[f]! * (prefillCopy[f] ? 2 : 1) + indexerKeys) * cfg.numLayers));
    return {
      dir,
      config: cfg,
      parameters: { total, mainModel: main, mtpLayers: total - main, activatedPerToken: Math.round(main - inactive) },
      dtypes,
      memory: {
        weightsBytes,
        // kv_b_proj is also kept dequantized in float32 for the absorbed attention.
        runtimeExtraBytes: cfg.numLayers * h * (dn + dv) * r * 4,
        cacheBytesPerToken: perToken,
        cacheBytesPerTokenLayer: { latent, prefillCopy, indexerKeys },
        cacheBytesAtMaxContext: perFormat((f) => (perToken[f] === null ? null : perToken[f]! * cfg.maxPositionEmbeddings)),
      },
    };
  } finally {
    ckpt.close();
  }
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 2)} ${units[u]}`;
}

function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

export function runInspect(dir: string, json: boolean): string {
  const r = inspectModel(dir);
  if (json) return `${JSON.stringify(r, null, 2)}\n`;
  const c = r.config;
  const lines = [
    `model        ${dir} (deepseek_v32)`,
    `layers       ${c.numLayers} (${c.firstKDenseReplace} dense, ${c.numLayers - c.firstKDenseReplace} MoE), hidden ${c.hiddenSize}, vocab ${c.vocabSize}`,
    `attention    MLA: ${c.numHeads} heads, q_lora ${c.qLoraRank}, kv_lora ${c.kvLoraRank}, d_nope ${c.qkNopeHeadDim}, d_rope ${c.qkRopeHeadDim}, d_v ${c.vHeadDim}`,
    `indexer      ${c.indexNHeads} heads × ${c.indexHeadDim}, top-k ${c.indexTopk}, RoPE ${c.indexerRopeInterleave ? 'interleaved' : 'half-split'}, FP8 scales ${c.indexerScaleFormat}`,
    `experts      ${c.nRoutedExperts} routed (${c.numExpertsPerTok} active, ${c.nGroup} groups, ${c.topkGroup} kept, scale ${c.routedScalingFactor}), ${c.nSharedExperts} shared, ${c.scoringFunc}/${c.topkMethod}`,
    `context      ${c.maxPositionEmbeddings} positions, RoPE theta ${c.ropeTheta}${c.yarn ? `, YaRN ×${c.yarn.factor} over ${c.yarn.originalMaxPositionEmbeddings}` : ''}`,
    `weights      ${c.quant ? `FP8 e4m3 blocks ${c.quant.weightBlockSize.join('×')}, scales ${c.quant.scaleFormat}` : 'unquantized'}`,
    `parameters   ${count(r.parameters.mainModel)} (activated per token ${count(r.parameters.activatedPerToken)})` +
      (r.parameters.mtpLayers > 0 ? `, plus ${count(r.parameters.mtpLayers)} in MTP layers` : ''),
    'dtypes       ' +
      Object.entries(r.dtypes)
        .map(([d, v]) => `${d}: ${v.tensors} tensors, ${human(v.bytes)}`)
        .join('; '),
    `memory       weights ${human(r.memory.weightsBytes)} + ${human(r.memory.runtimeExtraBytes)} dequantized kv_b_proj (CPU backend)`,
    ...LATENT_FORMATS.map((f, i) => {
      const m = r.memory;
      const head = i === 0 ? 'cache        ' : '             ';
      const latent = m.cacheBytesPerTokenLayer.latent[f];
      if (latent === null || m.cacheBytesPerToken[f] === null) return `${head}${f.padEnd(5)} n/a (needs kv_lora_rank a multiple of 128)`;
      return (
        `${head}${f.padEnd(5)} ${human(m.cacheBytesPerToken[f]!)} per token (per layer ${latent} B latent` +
        (m.cacheBytesPerTokenLayer.prefillCopy[f] ? ` + ${latent} B prefill copy` : '') +
        ` + ${m.cacheBytesPerTokenLayer.indexerKeys} B FP8 indexer key); ${human(m.cacheBytesAtMaxContext[f]!)} at ${c.maxPositionEmbeddings} tokens`
      );
    }),
  ];
  return `${lines.join('\n')}\n`;
}
