/**
 * Bad inputs through the CLI (`main`) and through Model.load: each gives one clear `dsa: ...` line
 * (exit code 1) naming the file and the problem; nothing throws uncaught, nothing allocates huge memory.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { Model } from '../../src/model/model.js';
import { CpuBackend } from '../../src/backend/cpu.js';
import { writeRandomModel, tinyConfigJson } from '../../src/model/random-model.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors-writer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsa-malformed-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const good = path.join(tmp, 'good');
const goodFp8 = path.join(tmp, 'good-fp8');
const promptFile = path.join(tmp, 'prompt.json');
const prompt = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38];
const VOCAB = 512;
let refOut = '';

before(async () => {
  writeRandomModel(good, { seed: 11 });
  writeRandomModel(goodFp8, { seed: 12, fp8: true, config: { hidden_size: 256, q_lora_rank: 128, kv_lora_rank: 128, index_head_dim: 128 } });
  fs.writeFileSync(promptFile, JSON.stringify(prompt));
  refOut = path.join(tmp, 'ref.safetensors');
  const r = await cli(['logits', '--model', good, '--prompt-ids', promptFile, '--decode', '2', '--out', refOut]);
  assert.equal(r.code, 0, r.stderr);
});

/** The CLI fails with exit code 1 and exactly one line `dsa: ...` containing every phrase. */
async function cliFails(argv: string[], ...phrases: Array<string | RegExp>): Promise<string> {
  const r = await cli(argv);
  assert.equal(r.code, 1, `exit code of ${argv.join(' ')}: stderr ${r.stderr}`);
  assert.equal(r.stdout, '');
  const lines = r.stderr.split('\n');
  assert.equal(lines.at(-1), '', `stderr ends with a newline: ${JSON.stringify(r.stderr)}`);
  assert.equal(lines.length, 2, `exactly one line on stderr: ${JSON.stringify(r.stderr)}`);
  const line = lines[0]!;
  assert.ok(line.startsWith('dsa: '), line);
  assert.doesNotMatch(line, /\n|\s+at .*\(.*:\d+:\d+\)/);
  for (const p of phrases) {
    if (typeof p === 'string') assert.ok(line.includes(p), `${JSON.stringify(p)} not in: ${line}`);
    else assert.match(line, p);
  }
  return line;
}

/** Model.load fails with an Error whose message contains every phrase. */
function loadFails(dir: string, ...phrases: Array<string | RegExp>): string {
  let caught: unknown;
  try {
    Model.load(dir, new CpuBackend());
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `Model.load(${dir}) should throw, got ${String(caught)}`);
  const msg = caught.message;
  assert.ok(!msg.includes('\n'), msg);
  for (const p of phrases) {
    if (typeof p === 'string') assert.ok(msg.includes(p), `${JSON.stringify(p)} not in: ${msg}`);
    else assert.match(msg, p);
  }
  return msg;
}

/** Both the CLI (`logits` and `generate`) and Model.load reject the model in `dir`. */
async function modelFails(dir: string, ...phrases: Array<string | RegExp>): Promise<void> {
  const out = path.join(tmp, 'never-written.safetensors');
  await cliFails(['logits', '--model', dir, '--prompt-ids', promptFile, '--out', out], ...phrases);
  assert.ok(!fs.existsSync(out));
  await cliFails(['generate', '--model', dir, '--prompt-ids', promptFile, '--max-new-tokens', '2'], ...phrases);
  loadFails(dir, ...phrases);
}

let copies = 0;
/** A copy of a model directory. */
function copyModel(src = good): string {
  const dir = path.join(tmp, `case-${++copies}`);
  fs.cpSync(src, dir, { recursive: true });
  return dir;
}

/** Rewrites a safetensors header in place, keeping its length (space padded). */
function rewriteHeader(file: string, mutate: (h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void): void {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  mutate(header);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  assert.ok(json.length <= n, 'the rewritten header fits in place');
  Buffer.concat([json, Buffer.alloc(n - json.length, 0x20)]).copy(buf, 8);
  fs.writeFileSync(file, buf);
}

/** Writes DIR/model.safetensors from `src`'s tensors, edited by `edit` (delete or replace entries). */
function rewriteTensors(src: string, dir: string, edit: (t: Map<string, TensorToWrite>) => void): void {
  const f = SafetensorsFile.open(path.join(src, 'model.safetensors'));
  const tensors = new Map<string, TensorToWrite>();
  try {
    for (const [name, info] of f.tensors) tensors.set(name, { dtype: info.dtype, shape: info.shape, data: f.readBytes(name) });
  } finally {
    f.close();
  }
  edit(tensors);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
}

test('the good models load and run', async () => {
  const m = Model.load(good, new CpuBackend());
  assert.equal(m.config.vocabSize, VOCAB);
  const m8 = Model.load(goodFp8, new CpuBackend());
  assert.deepEqual(m8.config.quant, { weightBlockSize: [128, 128], scaleFormat: 'ue8m0' });
  const r = await cli(['generate', '--model', good, '--prompt-ids', promptFile, '--max-new-tokens', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\d+ \d+\n$/);
  assert.equal(r.stderr, '');
});

test('(a) model.safetensors truncated in the data section', async () => {
  const dir = copyModel();
  const file = path.join(dir, 'model.safetensors');
  const size = fs.statSync(file).size;
  fs.truncateSync(file, size - 1000);
  await modelFails(dir, file, /truncated|unexpected end|beyond/);
  await cliFails(['inspect', dir], file, /truncated|unexpected end|beyond/);

  // Cut just after the header: every tensor is beyond the data.
  const dir2 = copyModel();
  const file2 = path.join(dir2, 'model.safetensors');
  const n = Number(fs.readFileSync(file2).readBigUInt64LE(0));
  fs.truncateSync(file2, 8 + n + 10);
  await modelFails(dir2, file2, /beyond the data section/);

  // Cut inside the 8-byte prefix.
  const dir3 = copyModel();
  const file3 = path.join(dir3, 'model.safetensors');
  fs.truncateSync(file3, 5);
  await modelFails(dir3, file3, /too short/);
});

test('(b) header length beyond the file size', async () => {
  const dir = copyModel();
  const file = path.join(dir, 'model.safetensors');
  const buf = fs.readFileSync(file);
  buf.writeBigUInt64LE(BigInt(buf.length + 1));
  fs.writeFileSync(file, buf);
  await modelFails(dir, file, 'header length', /exceeds the file size/);

  // A huge length fails before anything is allocated.
  buf.writeBigUInt64LE(2n ** 62n);
  fs.writeFileSync(file, buf);
  await modelFails(dir, file, 'header length', /exceeds the format limit/);
});

test('(c) overlapping tensors', async () => {
  const dir = copyModel();
  const file = path.join(dir, 'model.safetensors');
  const a = 'model.layers.0.input_layernorm.weight';
  const b = 'model.layers.0.post_attention_layernorm.weight';
  rewriteHeader(file, (h) => {
    assert.deepEqual(h[a]!.shape, h[b]!.shape);
    h[b]!.data_offsets = [...h[a]!.data_offsets];
  });
  await modelFails(dir, file, 'overlap', a, b);
});

test('(d) dtype/shape mismatches', async () => {
  // safetensors level: the dtype no longer matches the byte range.
  const dir = copyModel();
  const file = path.join(dir, 'model.safetensors');
  const name = 'model.layers.1.self_attn.q_b_proj.weight';
  rewriteHeader(file, (h) => {
    assert.equal(h[name]!.dtype, 'BF16');
    h[name]!.dtype = 'F32';
  });
  await modelFails(dir, file, name, /size mismatch/, 'F32');

  // A shape so large it would need terabytes: rejected from the header alone.
  const dirHuge = copyModel();
  const fileHuge = path.join(dirHuge, 'model.safetensors');
  rewriteHeader(fileHuge, (h) => {
    delete (h as Record<string, unknown>).__metadata__; // room for the longer shape
    h['model.embed_tokens.weight']!.shape = [2 ** 30, 4096];
  });
  await modelFails(dirHuge, fileHuge, 'model.embed_tokens.weight', /size mismatch/);

  // Valid safetensors, wrong shape for the config.
  const dir2 = path.join(tmp, 'bad-q-a');
  const qa = 'model.layers.0.self_attn.q_a_proj.weight';
  rewriteTensors(good, dir2, (t) => {
    assert.deepEqual(t.get(qa)!.shape, [64, 128]);
    t.set(qa, { dtype: 'BF16', shape: [48, 128], data: new Uint16Array(48 * 128) });
  });
  await modelFails(dir2, path.join(dir2, 'model.safetensors'), qa, '[48, 128]', '[64, 128]');

  // The config disagrees with every weight: the first tensor checked is named with both shapes.
  const dir3 = copyModel();
  fs.writeFileSync(path.join(dir3, 'config.json'), JSON.stringify(tinyConfigJson({ kv_lora_rank: 32 })));
  await modelFails(dir3, path.join(dir3, 'model.safetensors'), "tensor 'model.layers.0.self_attn.kv_b_proj.weight'", 'has shape [256, 64], the config implies [256, 32]');

  // A vocabulary the config claims to be huge: a shape error, not a huge allocation.
  const dir4 = copyModel();
  fs.writeFileSync(path.join(dir4, 'config.json'), JSON.stringify(tinyConfigJson({ vocab_size: 2 ** 31 - 1 })));
  await cliFails(['logits', '--model', dir4, '--prompt-ids', promptFile, '--out', path.join(tmp, 'x.safetensors')], 'model.embed_tokens.weight', '[512, 128]', '[2147483647, 128]');

  // A weight in an integer dtype.
  const dir5 = path.join(tmp, 'int-weight');
  const wk = 'model.layers.2.self_attn.indexer.wk.weight';
  rewriteTensors(good, dir5, (t) => {
    const s = t.get(wk)!.shape;
    t.set(wk, { dtype: 'I16', shape: s, data: new Int16Array(s[0]! * s[1]!) });
  });
  await modelFails(dir5, path.join(dir5, 'model.safetensors'), wk, 'dtype I16');
});

test('(e) a missing tensor', async () => {
  const dir = path.join(tmp, 'missing-wk');
  const name = 'model.layers.1.self_attn.indexer.wk.weight';
  rewriteTensors(good, dir, (t) => assert.ok(t.delete(name)));
  await modelFails(dir, dir, name, /no tensor named/);

  const dir2 = path.join(tmp, 'missing-lm-head');
  rewriteTensors(good, dir2, (t) => assert.ok(t.delete('lm_head.weight')));
  await modelFails(dir2, dir2, "'lm_head.weight'");
});

test('(f) a wrong config', async () => {
  const dir = copyModel();
  const config = path.join(dir, 'config.json');
  fs.writeFileSync(config, JSON.stringify(tinyConfigJson({ model_type: 'llama' })));
  await modelFails(dir, config, 'model_type', "'llama'", 'deepseek_v32');
  await cliFails(['inspect', dir], config, 'model_type');

  const noTopk = tinyConfigJson();
  delete noTopk.index_topk;
  fs.writeFileSync(config, JSON.stringify(noTopk));
  await modelFails(dir, config, 'index_topk', 'missing');

  fs.writeFileSync(config, JSON.stringify(tinyConfigJson({ hidden_size: '128' })));
  await modelFails(dir, config, 'hidden_size', /expected number/);

  fs.writeFileSync(config, '{ not json');
  await modelFails(dir, config, 'not valid JSON');

  fs.rmSync(config);
  await modelFails(dir, config, 'file not found');
});

test('(g) an FP8 model missing a block-scale tensor', async () => {
  const dir = path.join(tmp, 'fp8-no-scale');
  const name = 'model.layers.0.self_attn.q_a_proj.weight_scale_inv';
  rewriteTensors(goodFp8, dir, (t) => {
    assert.equal(t.get('model.layers.0.self_attn.q_a_proj.weight')!.dtype, 'F8_E4M3');
    assert.ok(t.delete(name));
  });
  await modelFails(dir, path.join(dir, 'model.safetensors'), name, 'model.layers.0.self_attn.q_a_proj.weight', /no block scales/);

  const dir2 = path.join(tmp, 'fp8-bad-scale');
  const kvb = 'model.layers.2.self_attn.kv_b_proj.weight_scale_inv';
  rewriteTensors(goodFp8, dir2, (t) => {
    t.set(kvb, { dtype: 'F32', shape: [3, 3], data: new Float32Array(9) });
  });
  await modelFails(dir2, path.join(dir2, 'model.safetensors'), kvb, '[3, 3]');
});

test('(h) prompt-ids file problems, for logits and generate', async () => {
  const file = (name: string, text: string) => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, text);
    return p;
  };
  const cases: Array<[string, Array<string | RegExp>]> = [
    [path.join(tmp, 'no-such-prompt.json'), [/file not found/]],
    [file('not-json.json', '[1, 2,'), [/not valid JSON/]],
    [file('object.json', '{"ids": [1, 2]}'), [/JSON array of token ids/]],
    [file('number.json', '42'), [/JSON array of token ids/]],
    [file('empty.json', '[]'), [/non-empty JSON array/]],
    [file('negative.json', '[1, 2, -1]'), ['element 2', '(-1)', 'not a token id']],
    [file('fraction.json', '[1.5, 2]'), ['element 0', '(1.5)', 'not a token id']],
    [file('string.json', '[1, "2"]'), ['element 1', 'not a token id']],
    [file('huge.json', '[1, 1e300]'), ['element 1', 'not a token id']],
    [file('vocab.json', `[1, 2, ${VOCAB}]`), [`token id ${VOCAB}`, 'index 2', /outside the vocabulary \(0\.\.511\)/]],
  ];
  for (const [p, phrases] of cases) {
    await cliFails(['logits', '--model', good, '--prompt-ids', p, '--out', path.join(tmp, 'x.safetensors')], p, ...phrases);
    await cliFails(['generate', '--model', good, '--prompt-ids', p, '--max-new-tokens', '1'], p, ...phrases);
  }
  // A directory where the file should be.
  await cliFails(['logits', '--model', good, '--prompt-ids', tmp, '--out', path.join(tmp, 'x.safetensors')], `${tmp}: is a directory`);
});

test('(i) --force REF that does not fit the run', async () => {
  const f = SafetensorsFile.open(refOut);
  const all = new Map<string, TensorToWrite>();
  try {
    for (const [name, info] of f.tensors) all.set(name, { dtype: info.dtype, shape: info.shape, data: f.readBytes(name) });
  } finally {
    f.close();
  }
  const variant = (name: string, edit: (t: Map<string, TensorToWrite>) => void): string => {
    const t = new Map(all);
    edit(t);
    const p = path.join(tmp, name);
    writeSafetensors(p, t);
    return p;
  };
  const logits = (ref: string, promptPath = promptFile, decode = '2') =>
    cliFails(['logits', '--model', good, '--prompt-ids', promptPath, '--decode', decode, '--out', path.join(tmp, 'x.safetensors'), '--force', ref]);

  // The good REF replays fine.
  const ok = await cli(['logits', '--model', good, '--prompt-ids', promptFile, '--decode', '2', '--out', path.join(tmp, 'replayed.safetensors'), '--force', refOut]);
  assert.equal(ok.code, 0, ok.stderr);

  const noTopk = variant('ref-no-topk.safetensors', (t) => t.delete('prefill_topk_all'));
  assert.ok((await logits(noTopk)).includes(`${noTopk}: tensor 'prefill_topk_all' is missing`));

  // A shorter prompt than the REF covers.
  const shortPrompt = path.join(tmp, 'short-prompt.json');
  fs.writeFileSync(shortPrompt, JSON.stringify(prompt.slice(0, 6)));
  const withIds = await logits(refOut, shortPrompt);
  assert.ok(withIds.includes(refOut) && withIds.includes('prompt_ids'), withIds);
  const noIds = variant('ref-no-ids.safetensors', (t) => t.delete('prompt_ids'));
  const line = await logits(noIds, shortPrompt);
  assert.ok(line.includes(noIds) && line.includes("'prefill_topk_all'") && line.includes(`covers ${prompt.length} prompt positions, the prompt has 6`), line);

  // More decode steps than the REF recorded.
  const steps = await logits(refOut, promptFile, '4');
  assert.ok(steps.includes(refOut) && steps.includes('decode_input_ids') && steps.includes('2 decode tokens, 4 requested'), steps);

  // A REF that is missing or not safetensors at all.
  const gone = path.join(tmp, 'no-such-ref.safetensors');
  assert.ok((await logits(gone)).includes(`${gone}: file not found`));
  assert.ok((await logits(promptFile)).includes(promptFile));

  // A REF selecting a future position.
  const future = variant('ref-future.safetensors', (t) => {
    const e = t.get('prefill_topk_all')!;
    const data = new Int32Array(new Uint8Array(e.data.buffer as ArrayBuffer, e.data.byteOffset, e.data.byteLength).slice().buffer);
    data[0] = 5; // layer 0, position 0 selects position 5
    t.set('prefill_topk_all', { ...e, data });
  });
  const fut = await logits(future);
  assert.ok(fut.includes(future) && fut.includes('future position 5'), fut);
});

test('(j) a directory without safetensors, or no directory', async () => {
  const dir = path.join(tmp, 'config-only');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(good, 'config.json'), path.join(dir, 'config.json'));
  await modelFails(dir, dir, /no safetensors files/);
  await cliFails(['inspect', dir], dir, /no safetensors files/);

  const missing = path.join(tmp, 'no-such-model');
  await modelFails(missing, missing, /not found/);
});

test('(k) CLI usage errors: commander reports them', async () => {
  const usage = async (argv: string[], phrase: RegExp) => {
    const r = await cli(argv);
    assert.notEqual(r.code, 0, argv.join(' '));
    assert.match(r.stderr, phrase);
    assert.ok(!r.stderr.includes('    at '), r.stderr);
  };
  await usage(['logits', '--model', good, '--prompt-ids', promptFile, '--out', path.join(tmp, 'x.safetensors'), '--bogus'], /unknown option '--bogus'/);
  await usage(['logits', '--model', good, '--out', path.join(tmp, 'x.safetensors')], /required option '--prompt-ids <file>' not specified/);
  await usage(['generate', '--model', good, '--prompt-ids', promptFile], /required option '--max-new-tokens <n>' not specified/);
  await usage(['generate', '--model', good, '--prompt-ids', promptFile, '--max-new-tokens', '0'], /--max-new-tokens must be an integer ≥ 1/);
  await usage(['logits', '--model', good, '--prompt-ids', promptFile, '--out', path.join(tmp, 'x.safetensors'), '--decode', 'two'], /--decode must be an integer/);
  await usage(['generate', '--model', good, '--prompt-ids', promptFile, '--max-new-tokens', '1', '--temperature', '-1'], /--temperature must be a number ≥ 0/);
  await usage(['inspect'], /missing required argument 'dir'/);
  await usage(['frobnicate'], /unknown command 'frobnicate'/);
  await usage([], /Usage: dsa/);

  // An unknown backend is an ordinary one-line error.
  await cliFails(['generate', '--model', good, '--prompt-ids', promptFile, '--max-new-tokens', '1', '--backend', 'tpu'], /unknown backend 'tpu'/);
});
