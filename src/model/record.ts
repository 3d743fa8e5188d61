/**
 * Records a run's discrete choices in the layouts of the golden fixtures' expected.safetensors:
 * prefill_topk_all [L, P, K], decode_topk [N, L, Kd] (selected positions ascending, −1 padded) and
 * moe_experts [MoE layers, P + N, experts per token]. K = min(index_topk, P); Kd = min(index_topk, P + N),
 * which equals K whenever the prompt is at least index_topk long.
 */
import type { Backend, Tensor } from '../backend/backend.js';
import type { ModelConfig } from './config.js';
import type { Observer } from './step.js';

export class ChoiceRecorder implements Observer {
  readonly k: number;
  readonly kDecode: number;
  readonly prefillTopk: Int32Array;
  readonly decodeTopk: Int32Array;
  readonly moeExperts: Int32Array;
  readonly moeLayers: number;
  private readonly pending: Promise<void>[] = [];

  constructor(
    private readonly backend: Backend,
    private readonly cfg: ModelConfig,
    readonly promptLen: number,
    readonly decodeSteps: number,
  ) {
    const l = cfg.numLayers;
    this.k = Math.min(cfg.indexTopk, promptLen);
    this.kDecode = Math.min(cfg.indexTopk, promptLen + decodeSteps);
    this.prefillTopk = new Int32Array(l * promptLen * this.k).fill(-1);
    this.decodeTopk = new Int32Array(decodeSteps * l * this.kDecode).fill(-1);
    this.moeLayers = l - cfg.firstKDenseReplace;
    this.moeExperts = new Int32Array(this.moeLayers * (promptLen + decodeSteps) * cfg.numExpertsPerTok);
  }

  /** Where row `pos` of `layer` goes, and its width. */
  private topkRow(layer: number, pos: number): { off: number; width: number } {
    const l = this.cfg.numLayers;
    if (pos < this.promptLen) return { off: (layer * this.promptLen + pos) * this.k, width: this.k };
    const step = pos - this.promptLen;
    if (step >= this.decodeSteps) throw new RangeError(`position ${pos} is beyond the recorded ${this.decodeSteps} decode steps`);
    return { off: (step * l + layer) * this.kDecode, width: this.kDecode };
  }

  topk(layer: number, positions: Int32Array, own: Tensor | null): void {
    if (own === null) {
      for (const pos of positions) {
        const { off, width } = this.topkRow(layer, pos);
        const table = pos < this.promptLen ? this.prefillTopk : this.decodeTopk;
        for (let j = 0; j <= pos && j < width; j++) table[off + j] = j;
      }
      return;
    }
    const w = own.shape[1]!;
    this.pending.push(
      this.backend.read(own).then((data) => {
        positions.forEach((pos, r) => {
          const { off, width } = this.topkRow(layer, pos);
          const table = pos < this.promptLen ? this.prefillTopk : this.decodeTopk;
          if (w > width) throw new RangeError(`layer ${layer} position ${pos}: ${w} selected entries do not fit ${width}`);
          table.set(data.subarray(r * w, (r + 1) * w), off);
        });
      }),
    );
  }

  experts(moeIndex: number, positions: Int32Array, chosen: Tensor): void {
    const k = this.cfg.numExpertsPerTok;
    const tokens = this.promptLen + this.decodeSteps;
    this.pending.push(
      this.backend.read(chosen).then((data) => {
        positions.forEach((pos, r) => {
          this.moeExperts.set(data.subarray(r * k, (r + 1) * k), (moeIndex * tokens + pos) * k);
        });
      }),
    );
  }

  /** Waits for every pending read. */
  async flush(): Promise<void> {
    await Promise.all(this.pending.splice(0));
  }
}
