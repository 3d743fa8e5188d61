/**
 * Training checkpoints: DIR/config.json + DIR/model.safetensors (the model, loadable by inference),
 * DIR/optimizer.safetensors (AdamW moments, float32), DIR/trainer_state.json (stage, options, step,
 * optimizer step count and the batch source's state). Resuming restores all of it, so the resumed
 * run's losses equal those of an uninterrupted run bit for bit.
 */
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadJsonFile } from '../io/checkpoint.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors-writer.js';
import type { TrainBackend } from '../autograd/backend.js';
import type { BatchSource, LoaderState } from './data/batches.js';
import { TrainModel } from './model.js';
import { STAGES } from './stages.js';
import { Trainer, type TrainOptions } from './trainer.js';

export const STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';

interface TrainerState {
  format: 'dsa-train-1';
  options: TrainOptions;
  step: number;
  optimizerStep: number;
  data: LoaderState;
}

export function saveTrainer(trainer: Trainer, dir: string): void {
  trainer.model.save(dir);
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, m] of trainer.optimizer.m) {
    tensors.set(`${name}.exp_avg`, { dtype: 'F32', shape: [m.length], data: m });
    tensors.set(`${name}.exp_avg_sq`, { dtype: 'F32', shape: [m.length], data: trainer.optimizer.v.get(name)! });
  }
  writeSafetensors(join(dir, OPTIMIZER_FILE), tensors, { format: 'dsa-adamw' });
  const state: TrainerState = { format: 'dsa-train-1', options: trainer.opts, step: trainer.step, optimizerStep: trainer.optimizer.t, data: trainer.data.state() };
  const path = join(dir, STATE_FILE);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

function checkState(raw: unknown, path: string): TrainerState {
  const s = raw as Partial<TrainerState> | null;
  const bad = (why: string): never => {
    throw new Error(`${path}: ${why}`);
  };
  if (!s || typeof s !== 'object' || s.format !== 'dsa-train-1') bad("not a dsa trainer state (format 'dsa-train-1' expected)");
  if (!Number.isInteger(s!.step) || s!.step! < 0) bad('step must be a non-negative integer');
  if (!Number.isInteger(s!.optimizerStep) || s!.optimizerStep! < 0) bad('optimizerStep must be a non-negative integer');
  const o = s!.options;
  if (!o || typeof o !== 'object' || !STAGES.includes(o.stage)) bad('options.stage missing or unknown');
  return s as TrainerState;
}

/** Whether DIR holds a resumable training checkpoint. */
export function isTrainerCheckpoint(dir: string): boolean {
  return existsSync(join(dir, STATE_FILE));
}

/**
 * Resumes from DIR: model, optimizer moments, step and the data source's state. `override` may
 * change options that do not affect the past (e.g. raise `steps`).
 */
export function loadTrainer(dir: string, backend: TrainBackend, data: BatchSource, override: Partial<TrainOptions> = {}): Trainer {
  const path = join(dir, STATE_FILE);
  const state = checkState(loadJsonFile(path, 'the trainer state'), path);
  const model = TrainModel.load(dir);
  const trainer = new Trainer(model, backend, data, { ...state.options, ...override });
  trainer.step = state.step;
  trainer.optimizer.t = state.optimizerStep;
  const file = SafetensorsFile.open(join(dir, OPTIMIZER_FILE));
  try {
    for (const name of file.names()) {
      const m = /^(.*)\.(exp_avg|exp_avg_sq)$/.exec(name);
      if (!m || !model.params.has(m[1]!)) throw new Error(`${file.path}: unexpected tensor '${name}'`);
      const values = file.readF32(name);
      if (values.length !== model.get(m[1]!).length) throw new Error(`${file.path}: '${name}' has ${values.length} values, the parameter ${model.get(m[1]!).length}`);
      (m[2] === 'exp_avg' ? trainer.optimizer.m : trainer.optimizer.v).set(m[1]!, values);
    }
  } finally {
    file.close();
  }
  data.restore(state.data);
  return trainer;
}
