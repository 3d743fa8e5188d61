/** End to end through `main`: logits (and --force replay), generate, inspect on small random models. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { writeRandomModel } from '../../src/model/random-model.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsa-cli-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const model = path.join(tmp, 'model');
const fp8Model = path.join(tmp, 'model-fp8');
const promptFile = path.join(tmp, 'prompt.json');
const out = path.join(tmp, 'logits.safetensors');
const forcedOut = path.join(tmp, 'forced.safetensors');
const P = 40;
const N = 5;
const K = 16;
const prompt = Array.from({ length: P }, (_, i) => (i * 131 + 7) % 509);
let V = 0;
let L = 0;
let firstDense = 0;
let expertsPerTok = 0;
let nExperts = 0;

async function ok(argv: string[]): Promise<string> {
  const r = await cli(argv);
  assert.equal(r.code, 0, `${argv.join(' ')} failed: ${r.stderr}`);
  assert.equal(r.stderr, '');
  return r.stdout;
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

/** Every tensor of a safetensors file: dtype, shape and raw bytes. */
function readAll(file: string): Map<string, { dtype: string; shape: number[]; bytes: Buffer }> {
  const f = SafetensorsFile.open(file);
  try {
    const m = new Map<string, { dtype: string; shape: number[]; bytes: Buffer }>();
    for (const [name, info] of f.tensors) m.set(name, { dtype: info.dtype, shape: info.shape, bytes: Buffer.from(f.readBytes(name)) });
    return m;
  } finally {
    f.close();
  }
}

before(async () => {
  const json = writeRandomModel(model, { seed: 5, config: { index_topk: K } });
  V = json.vocab_size as number;
  L = json.num_hidden_layers as number;
  firstDense = json.first_k_dense_replace as number;
  expertsPerTok = json.num_experts_per_tok as number;
  nExperts = json.n_routed_experts as number;
  assert.ok(P > K && firstDense >= 1 && L > firstDense);
  fs.writeFileSync(promptFile, JSON.stringify(prompt));
  await ok(['logits', '--model', model, '--prompt-ids', promptFile, '--decode', String(N), '--out', out]);
});

test('logits writes exactly the expected tensors', () => {
  const f = SafetensorsFile.open(out);
  try {
    const expected: Record<string, [string, number[]]> = {
      prompt_ids: ['I32', [P]],
      prefill_logits: ['F32', [P, V]],
      decode_input_ids: ['I32', [N]],
      decode_logits: ['F32', [N, V]],
      prefill_topk_all: ['I32', [L, P, K]],
      decode_topk: ['I32', [N, L, K]],
      moe_experts: ['I32', [L - firstDense, P + N, expertsPerTok]],
    };
    assert.deepEqual(f.names().sort(), Object.keys(expected).sort());
    for (const [name, [dtype, shape]] of Object.entries(expected)) {
      assert.equal(f.info(name).dtype, dtype, name);
      assert.deepEqual(f.info(name).shape, shape, name);
    }
    assert.deepEqual([...f.readInt32('prompt_ids')], prompt);
    for (const name of ['prefill_logits', 'decode_logits']) {
      assert.ok(f.readF32(name).every(Number.isFinite), `${name} is finite`);
    }
  } finally {
    f.close();
  }
});

test('decode_input_ids are the greedy chain', () => {
  const f = SafetensorsFile.open(out);
  try {
    const pre = f.readF32('prefill_logits');
    const dec = f.readF32('decode_logits');
    const ids = f.readInt32('decode_input_ids');
    assert.equal(ids[0], argmax(pre.subarray((P - 1) * V, P * V)));
    for (let i = 1; i < N; i++) assert.equal(ids[i], argmax(dec.subarray((i - 1) * V, i * V)), `decode step ${i}`);
  } finally {
    f.close();
  }
});

test('prefill_topk_all: ascending valid positions then -1; short rows select everything; long rows are sparse', () => {
  const f = SafetensorsFile.open(out);
  try {
    const t = f.readInt32('prefill_topk_all');
    let notWindow = 0;
    for (let l = 0; l < L; l++) {
      for (let i = 0; i < P; i++) {
        const row = [...t.subarray((l * P + i) * K, (l * P + i + 1) * K)];
        const valid = row.filter((v) => v !== -1);
        const n = Math.min(K, i + 1);
        assert.equal(valid.length, n, `layer ${l} row ${i}: ${row}`);
        assert.deepEqual(row.slice(n), new Array(K - n).fill(-1), `layer ${l} row ${i}: padding at the end`);
        for (let j = 0; j < n; j++) {
          assert.ok(valid[j]! >= 0 && valid[j]! <= i, `layer ${l} row ${i}: ${row}`);
          if (j > 0) assert.ok(valid[j]! > valid[j - 1]!, `layer ${l} row ${i} ascending: ${row}`);
        }
        if (i < K) assert.deepEqual(valid, Array.from({ length: i + 1 }, (_, j) => j), `layer ${l} row ${i}`);
        else if (valid.some((v, j) => v !== i - K + 1 + j)) notWindow++;
      }
    }
    // The indexer chooses: its picks are not merely the most recent K positions.
    assert.ok(notWindow > 0);
  } finally {
    f.close();
  }
});

test('decode_topk and moe_experts are valid', () => {
  const f = SafetensorsFile.open(out);
  try {
    const d = f.readInt32('decode_topk');
    for (let s = 0; s < N; s++) {
      for (let l = 0; l < L; l++) {
        const row = [...d.subarray((s * L + l) * K, (s * L + l + 1) * K)];
        for (let j = 0; j < K; j++) {
          assert.ok(row[j]! >= 0 && row[j]! <= P + s, `step ${s} layer ${l}: ${row}`);
          if (j > 0) assert.ok(row[j]! > row[j - 1]!, `step ${s} layer ${l} ascending: ${row}`);
        }
      }
    }
    const m = f.readInt32('moe_experts');
    for (let r = 0; r < m.length / expertsPerTok; r++) {
      const e = [...m.subarray(r * expertsPerTok, (r + 1) * expertsPerTok)];
      assert.ok(e.every((x) => x >= 0 && x < nExperts), `${e}`);
      assert.equal(new Set(e).size, expertsPerTok, `${e} distinct`);
    }
  } finally {
    f.close();
  }
});

test('logits --force with its own output reproduces it bit for bit', async () => {
  await ok(['logits', '--model', model, '--prompt-ids', promptFile, '--decode', String(N), '--out', forcedOut, '--force', out]);
  const a = readAll(out);
  const b = readAll(forcedOut);
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [name, t] of a) {
    const u = b.get(name)!;
    assert.equal(u.dtype, t.dtype, name);
    assert.deepEqual(u.shape, t.shape, name);
    assert.ok(u.bytes.equals(t.bytes), `${name} is bit-identical`);
  }
  const f = SafetensorsFile.open(forcedOut);
  try {
    assert.equal(f.metadata.forced, 'true');
  } finally {
    f.close();
  }
});

test('generate (greedy) prints the logits run decode chain (same f32 cache)', async () => {
  const f = SafetensorsFile.open(out);
  const ids = [...f.readInt32('decode_input_ids')];
  f.close();
  const stdout = await ok(['generate', '--model', model, '--prompt-ids', promptFile, '--max-new-tokens', String(N), '--cache', 'f32']);
  assert.equal(stdout, `${ids.join(' ')}\n`);
});

test('--verbose says where attention takes the dense path (context ≤ index_topk)', async () => {
  const r = await cli(['generate', '--model', model, '--prompt-ids', promptFile, '--max-new-tokens', '2', '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`dense path for positions 0\\.\\.${K - 1} \\(context ≤ index_topk\\), DSA top-${K} selection from position ${K} on`));
  const short = path.join(tmp, 'short-prompt.json');
  fs.writeFileSync(short, '[1, 2, 3]');
  const s = await cli(['generate', '--model', model, '--prompt-ids', short, '--max-new-tokens', '2', '-v']);
  assert.match(s.stderr, /dense path for all 5 positions/);
});

test('generate uses a bf16 cache by default: its chain is that of logits --cache bf16', async () => {
  const bf16Out = path.join(tmp, 'logits-bf16.safetensors');
  await ok(['logits', '--model', model, '--prompt-ids', promptFile, '--decode', String(N), '--out', bf16Out, '--cache', 'bf16']);
  const f = SafetensorsFile.open(bf16Out);
  const ids = [...f.readInt32('decode_input_ids')];
  assert.equal(f.metadata.cache, 'bf16');
  // The bf16 cache changes the logits a little, never wholesale.
  const a = f.readF32('prefill_logits');
  f.close();
  const g = SafetensorsFile.open(out);
  const ref = g.readF32('prefill_logits');
  g.close();
  let maxAbs = 0;
  let refMax = 0;
  for (let i = 0; i < a.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i]! - ref[i]!));
    refMax = Math.max(refMax, Math.abs(ref[i]!));
  }
  assert.ok(maxAbs > 0 && maxAbs / refMax < 0.05, `bf16 vs f32 cache: prefill logits rel ${maxAbs / refMax}`);
  const stdout = await ok(['generate', '--model', model, '--prompt-ids', promptFile, '--max-new-tokens', String(N)]);
  assert.equal(stdout, `${ids.join(' ')}\n`);
});

test('--cache: fp8 needs kv_lora_rank a multiple of 128; unknown formats are usage errors', async () => {
  const r = await cli(['logits', '--model', model, '--prompt-ids', promptFile, '--out', path.join(tmp, 'x.safetensors'), '--cache', 'fp8']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^dsa: .*fp8 latent cache needs kv_lora_rank to be a multiple of 128, got 64\n$/);
  const u = await cli(['generate', '--model', model, '--prompt-ids', promptFile, '--max-new-tokens', '1', '--cache', 'fp4']);
  assert.notEqual(u.code, 0);
  assert.match(u.stderr, /--cache must be one of f32, bf16, fp8/);
});

test('generate with temperature is reproducible per seed', async () => {
  const sample = (seed: number) =>
    ok(['generate', '--model', model, '--prompt-ids', promptFile, '--max-new-tokens', String(N), '--temperature', '0.8', '--seed', String(seed)]);
  const a = await sample(3);
  const b = await sample(3);
  assert.equal(a, b);
  assert.match(a, /^\d+( \d+){4}\n$/);
  for (const s of [a, await sample(4)]) {
    const toks = s.trim().split(' ').map(Number);
    assert.equal(toks.length, N);
    assert.ok(toks.every((t) => Number.isInteger(t) && t >= 0 && t < V));
  }
});

/** Sum of numel of the non-scale tensors, and tensors/bytes per dtype. */
function census(dir: string): { numel: number; dtypes: Record<string, { tensors: number; bytes: number }> } {
  const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  try {
    let numel = 0;
    const dtypes: Record<string, { tensors: number; bytes: number }> = {};
    for (const [name, info] of f.tensors) {
      const d = (dtypes[info.dtype] ??= { tensors: 0, bytes: 0 });
      d.tensors++;
      d.bytes += info.byteLength;
      if (!name.endsWith('_scale_inv')) numel += info.numel;
    }
    return { numel, dtypes };
  } finally {
    f.close();
  }
}

test('inspect prints parameter counts and dtypes', async () => {
  const text = await ok(['inspect', model]);
  assert.match(text, /^parameters\s+\S+/m);
  assert.match(text, /^dtypes\s+.*BF16: \d+ tensors/m);
  assert.match(text, /^layers\s+3 \(1 dense, 2 MoE\)/m);
  assert.match(text, new RegExp(`top-k ${K}`));
  assert.match(text, /unquantized/);

  const r = JSON.parse(await ok(['inspect', model, '--json'])) as {
    parameters: { total: number; mainModel: number; mtpLayers: number; activatedPerToken: number };
    dtypes: Record<string, { tensors: number; bytes: number }>;
    config: { indexTopk: number };
  };
  const c = census(model);
  assert.equal(r.parameters.mainModel, c.numel);
  assert.equal(r.parameters.total, c.numel);
  assert.equal(r.parameters.mtpLayers, 0);
  assert.ok(r.parameters.activatedPerToken > 0 && r.parameters.activatedPerToken < r.parameters.mainModel);
  assert.deepEqual(r.dtypes, c.dtypes);
  assert.equal(r.config.indexTopk, K);
  // kv_lora_rank 64, rope 16, 3 layers, indexer keys 64 + 4 bytes: no fp8 latent (64 % 128 ≠ 0).
  assert.match(text, /^cache\s+f32\s.*320 B latent \+ 68 B FP8 indexer key/m);
  assert.match(text, /^\s+fp8\s+n\/a/m);
  const m = (JSON.parse(await ok(['inspect', model, '--json'])) as { memory: { cacheBytesPerToken: unknown; cacheBytesPerTokenLayer: unknown } }).memory;
  assert.deepEqual(m.cacheBytesPerTokenLayer, { latent: { f32: 320, bf16: 160, fp8: null }, prefillCopy: { f32: false, bf16: false, fp8: false }, indexerKeys: 68 });
  assert.deepEqual(m.cacheBytesPerToken, { f32: 3 * 388, bf16: 3 * 228, fp8: null });
});

test('inspect of an FP8 model leaves the block scales out of the parameter count', async () => {
  writeRandomModel(fp8Model, { seed: 6, fp8: true, config: { hidden_size: 256, q_lora_rank: 128, kv_lora_rank: 128, index_head_dim: 128 } });
  const text = await ok(['inspect', fp8Model]);
  assert.match(text, /F8_E4M3: \d+ tensors/);
  assert.match(text, /FP8 e4m3 blocks 128×128, scales ue8m0/);
  const r = JSON.parse(await ok(['inspect', fp8Model, '--json'])) as { parameters: { mainModel: number }; dtypes: Record<string, { tensors: number }> };
  const c = census(fp8Model);
  assert.equal(r.parameters.mainModel, c.numel);
  assert.ok(r.dtypes.F8_E4M3!.tensors > 0);
  assert.deepEqual(r.dtypes, c.dtypes);
  // kv_lora_rank 128, rope 16: fp8 rows of 128 + 4 + 32 bytes; FP8 kv_b_proj keeps a prefill copy
  // in the f32 (reference-numerics) cache only.
  const m = (JSON.parse(await ok(['inspect', fp8Model, '--json'])) as { memory: { cacheBytesPerTokenLayer: unknown } }).memory;
  assert.deepEqual(m.cacheBytesPerTokenLayer, { latent: { f32: 576, bf16: 288, fp8: 164 }, prefillCopy: { f32: true, bf16: false, fp8: false }, indexerKeys: 132 });
});
