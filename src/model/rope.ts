/**
 * Rotary position tables (YaRN-corrected, as the DeepSeek-V3.2 reference computes them) and the
 * MLA softmax scale. Frequencies and angles are float32: f_i = float32(1 / theta^(2i/d_r)), angle =
 * float32(position · f_i).
 */
import type { ModelConfig } from './config.js';

const f = Math.fround;

/** YaRN is on when the model's capacity exceeds the original context (the reference's gate). */
export function yarnActive(cfg: ModelConfig): boolean {
  return cfg.yarn !== null && cfg.maxPositionEmbeddings > cfg.yarn.originalMaxPositionEmbeddings;
}

/** yarn_get_mscale: 0.1 · m · ln(factor) + 1 for factor > 1. */
function yarnMscale(factor: number, m: number): number {
  return factor <= 1 ? 1 : 0.1 * m * Math.log(factor) + 1;
}

/** The d_r/2 rotary frequencies, YaRN-corrected when active. */
export function ropeFrequencies(cfg: ModelConfig): Float32Array {
  const dim = cfg.qkRopeHeadDim;
  const half = dim / 2;
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) freqs[i] = f(1 / f(Math.pow(cfg.ropeTheta, f((2 * i) / dim))));
  if (!yarnActive(cfg)) return freqs;
  const y = cfg.yarn!;
  const correctionDim = (rotations: number) =>
    (dim * Math.log(y.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(cfg.ropeTheta));
  const low = Math.max(Math.floor(correctionDim(y.betaFast)), 0);
  let high = Math.min(Math.ceil(correctionDim(y.betaSlow)), dim - 1);
  if (low === high) high += 0.001;
  for (let i = 0; i < half; i++) {
    const ramp = Math.min(Math.max(f(f(i - low) / f(high - low)), 0), 1);
    const smooth = f(1 - ramp);
    freqs[i] = f(f(f(freqs[i] / y.factor) * f(1 - smooth)) + f(freqs[i] * smooth));
  }
  return freqs;
}

/** cos and sin tables [positions, d_r/2] for positions 0..positions-1. */
export function ropeTables(cfg: ModelConfig, positions: number): { cos: Float32Array; sin: Float32Array; half: number } {
  const freqs = ropeFrequencies(cfg);
  const half = freqs.length;
  // YaRN's attention factor on cos/sin (1 when mscale == mscale_all_dim, as in every DeepSeek config).
  const y = cfg.yarn;
  const attn = y && yarnActive(cfg) ? yarnMscale(y.factor, y.mscale) / yarnMscale(y.factor, y.mscaleAllDim) : 1;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f(p * freqs[i]);
      cos[p * half + i] = Math.cos(angle) * attn;
      sin[p * half + i] = Math.sin(angle) * attn;
    }
  }
  return { cos, sin, half };
}

/** (d_n + d_r)^-0.5, times mscale² with mscale = 0.1 · mscale_all_dim · ln(factor) + 1 under YaRN. */
export function softmaxScale(cfg: ModelConfig): number {
  let scale = Math.pow(cfg.qkNopeHeadDim + cfg.qkRopeHeadDim, -0.5);
  if (yarnActive(cfg)) {
    const m = yarnMscale(cfg.yarn!.factor, cfg.yarn!.mscaleAllDim);
    scale = scale * m * m;
  }
  return scale;
}
