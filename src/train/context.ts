/** What one layer's training forward needs: the tape, the config, its parameters, positions and RoPE tables. */
import type { RopeTables } from '../autograd/ops/rope.js';
import type { Tape, Var } from '../autograd/var.js';
import type { ModelConfig } from '../model/config.js';

export interface LayerContext {
  g: Tape;
  cfg: ModelConfig;
  /** The layer's parameter by its name under `model.layers.{i}.self_attn.` (or `model.layers.{i}.` for names starting with '../'). */
  p: (name: string) => Var;
  /** Position of each row in its sequence. */
  positions: Int32Array;
  rope: RopeTables;
}
