/**
 * A Hugging Face model directory: one or more safetensors shards, optionally
 * described by `model.safetensors.index.json`. All shard headers are validated
 * at open; tensor data is read on demand.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { SafetensorsError, SafetensorsFile, type TensorArray, type TensorInfo } from './safetensors.js';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

/** Read and parse a JSON file; errors start with the path (`config.json: not valid JSON (...)`). */
export function loadJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new SafetensorsError(path, `file not found (${what})`);
    throw new SafetensorsError(path, `cannot read ${what} (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(path, `not valid JSON (${(e as Error).message})`);
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** A set of safetensors shards addressed by tensor name. */
export class Checkpoint {
  readonly dir: string;
  /** The shard files, in the order they were opened. */
  readonly files: readonly SafetensorsFile[];
  private readonly byName: Map<string, SafetensorsFile>;

  private constructor(dir: string, files: SafetensorsFile[], byName: Map<string, SafetensorsFile>) {
    this.dir = dir;
    this.files = files;
    this.byName = byName;
  }

  /** Open a model directory (index.json, else model.safetensors, else every *.safetensors). */
  static open(dir: string): Checkpoint {
    let st: fs.Stats;
    try {
      st = fs.statSync(dir);
    } catch {
      throw new SafetensorsError(dir, 'checkpoint directory not found');
    }
    if (!st.isDirectory()) throw new SafetensorsError(dir, 'checkpoint path is not a directory');

    const opened: SafetensorsFile[] = [];
    const openShard = (file: string): SafetensorsFile => {
      const f = SafetensorsFile.open(nodePath.join(dir, file));
      opened.push(f);
      return f;
    };
    try {
      const indexPath = nodePath.join(dir, INDEX_FILE);
      if (fs.existsSync(indexPath)) {
        return Checkpoint.fromIndex(dir, indexPath, openShard, opened);
      }
      const byName = new Map<string, SafetensorsFile>();
      const files = fs.existsSync(nodePath.join(dir, SINGLE_FILE))
        ? [SINGLE_FILE]
        : fs.readdirSync(dir, { withFileTypes: true })
            .filter((e) => e.isFile() && e.name.endsWith('.safetensors'))
            .map((e) => e.name)
            .sort();
      if (files.length === 0) throw new SafetensorsError(dir, 'no safetensors files found in the checkpoint directory');
      for (const file of files) {
        const f = openShard(file);
        for (const name of f.tensors.keys()) {
          const prev = byName.get(name);
          if (prev) throw new SafetensorsError(dir, `tensor '${name}' appears in both ${prev.path} and ${f.path}`);
          byName.set(name, f);
        }
      }
      return new Checkpoint(dir, opened, byName);
    } catch (e) {
      for (const f of opened) f.close();
      throw e;
    }
  }

  private static fromIndex(
    dir: string,
    indexPath: string,
    openShard: (file: string) => SafetensorsFile,
    opened: SafetensorsFile[],
  ): Checkpoint {
    const fail = (problem: string): never => { throw new SafetensorsError(indexPath, problem); };
    const index = loadJsonFile(indexPath, 'checkpoint index');
    if (!isPlainObject(index)) fail('index is not a JSON object');
    const weightMap = (index as Record<string, unknown>).weight_map;
    if (!isPlainObject(weightMap)) fail('index has no "weight_map" object');

    const shards = new Map<string, SafetensorsFile>();
    const byName = new Map<string, SafetensorsFile>();
    for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard === '') fail(`weight_map entry for tensor '${name}' is not a file name`);
      const file = shard as string;
      if (nodePath.isAbsolute(file) || file.split(/[\\/]/).includes('..')) {
        fail(`weight_map entry for tensor '${name}' points outside the checkpoint directory (${file})`);
      }
      let f = shards.get(file);
      if (!f) {
        if (!fs.existsSync(nodePath.join(dir, file))) fail(`shard ${file} (for tensor '${name}') is missing`);
        f = openShard(file);
        shards.set(file, f);
      }
      if (!f.has(name)) fail(`tensor '${name}' is listed in shard ${file} but that shard has no such tensor`);
      byName.set(name, f);
    }
    return new Checkpoint(dir, opened, byName);
  }

  /** All tensor names (index order, or file order for unindexed directories). */
  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private shard(name: string): SafetensorsFile {
    const f = this.byName.get(name);
    if (!f) throw new SafetensorsError(this.dir, `no tensor named '${name}' in the checkpoint`);
    return f;
  }

  info(name: string): TensorInfo {
    return this.shard(name).info(name);
  }

  read(name: string): TensorArray {
    return this.shard(name).read(name);
  }

  readF32(name: string): Float32Array {
    return this.shard(name).readF32(name);
  }

  readInt32(name: string): Int32Array {
    return this.shard(name).readInt32(name);
  }

  readBytes(name: string): Uint8Array {
    return this.shard(name).readBytes(name);
  }

  /** Total bytes of all tensors addressed by this checkpoint. */
  totalBytes(): number {
    let s = 0;
    for (const name of this.byName.keys()) s += this.info(name).byteLength;
    return s;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}
