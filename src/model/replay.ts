/**
 * Forcing from a reference file (a fixture's expected.safetensors, or the output of `dsa logits`):
 * its top-k selections, expert routes and decode tokens replace the model's own.
 */
import { SafetensorsFile } from '../io/safetensors.js';
import type { ModelConfig } from './config.js';
import type { Forcing } from './step.js';

export class ReplayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplayError';
  }
}

export class Replay implements Forcing {
  readonly decodeInputIds: Int32Array;
  private readonly prefill: { data: Int32Array; k: number };
  private readonly decode: { data: Int32Array; k: number } | null;
  private readonly routes: { data: Int32Array; tokens: number } | null;

  /** Reads and checks REF against the run: P prompt tokens, N decode steps. */
  constructor(
    readonly path: string,
    private readonly cfg: ModelConfig,
    private readonly prompt: Int32Array,
    private readonly steps: number,
  ) {
    const file = SafetensorsFile.open(path);
    try {
      const l = cfg.numLayers;
      const p = prompt.length;
      const need = (name: string, rank: number, check: (shape: number[]) => string | null): { data: Int32Array; shape: number[] } => {
        if (!file.has(name)) throw new ReplayError(`${path}: tensor '${name}' is missing (needed to replay ${name.replace(/_/g, ' ')})`);
        const shape = file.info(name).shape;
        const problem = shape.length !== rank ? `has rank ${shape.length}, expected ${rank}` : check(shape);
        if (problem) throw new ReplayError(`${path}: tensor '${name}' [${shape.join(', ')}] ${problem}`);
        return { data: file.readInt32(name), shape };
      };
      if (file.has('prompt_ids')) {
        const ref = file.readInt32('prompt_ids');
        if (ref.length !== p || ref.some((v, i) => v !== prompt[i])) {
          throw new ReplayError(`${path}: its prompt_ids (${ref.length} tokens) differ from the prompt given (${p} tokens)`);
        }
      }
      const pre = need('prefill_topk_all', 3, ([a, b]) =>
        a !== l ? `has ${a} layers, the model ${l}` : b !== p ? `covers ${b} prompt positions, the prompt has ${p}` : null,
      );
      this.prefill = { data: pre.data, k: pre.shape[2]! };
      if (steps > 0) {
        const ids = need('decode_input_ids', 1, ([n]) => (n! < steps ? `has ${n} decode tokens, ${steps} requested` : null));
        this.decodeInputIds = ids.data.subarray(0, steps);
        const dec = need('decode_topk', 3, ([n, b]) =>
          n! < steps ? `has ${n} decode steps, ${steps} requested` : b !== l ? `has ${b} layers, the model ${l}` : null,
        );
        this.decode = { data: dec.data, k: dec.shape[2]! };
      } else {
        this.decodeInputIds = new Int32Array(0);
        this.decode = null;
      }
      const moeLayers = l - cfg.firstKDenseReplace;
      if (moeLayers > 0) {
        const r = need('moe_experts', 3, ([a, b, c]) =>
          a !== moeLayers
            ? `has ${a} MoE layers, the model ${moeLayers}`
            : b! < p + steps
              ? `covers ${b} tokens, the run has ${p + steps}`
              : c !== cfg.numExpertsPerTok
                ? `has ${c} experts per token, the model ${cfg.numExpertsPerTok}`
                : null,
        );
        this.routes = { data: r.data, tokens: r.shape[1]! };
      } else {
        this.routes = null;
      }
    } finally {
      file.close();
    }
  }

  topk(layer: number, positions: Int32Array): Int32Array {
    const p = this.prompt.length;
    const l = this.cfg.numLayers;
    const first = positions[0]!;
    const k = first < p ? this.prefill.k : this.decode!.k;
    const out = new Int32Array(positions.length * k);
    positions.forEach((pos, r) => {
      const decodeRow = pos >= p;
      if (decodeRow !== first >= p) throw new ReplayError('a step mixes prompt and decode positions');
      const src = decodeRow ? this.decode!.data.subarray(((pos - p) * l + layer) * k, ((pos - p) * l + layer + 1) * k)
        : this.prefill.data.subarray((layer * p + pos) * k, (layer * p + pos + 1) * k);
      for (const v of src) {
        if (v > pos) throw new ReplayError(`${this.path}: layer ${layer} position ${pos} selects future position ${v}`);
      }
      out.set(src, r * k);
    });
    return out;
  }

  experts(moeIndex: number, positions: Int32Array): Int32Array | null {
    if (!this.routes) return null;
    const k = this.cfg.numExpertsPerTok;
    const out = new Int32Array(positions.length * k);
    positions.forEach((pos, r) => {
      const off = (moeIndex * this.routes!.tokens + pos) * k;
      out.set(this.routes!.data.subarray(off, off + k), r * k);
    });
    return out;
  }
}
