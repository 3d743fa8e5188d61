import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ByteTokenizer,
  loadTokenizer,
  openTokenSource,
  readTokenFileHeader,
  TokenFileWriter,
  writeTokenFile,
  MemoryTokens,
  TokenBatchLoader,
  splitRange,
  validationBatches,
  checkBatchVocab,
} from '../../src/train/data/index.js';
import { writeSafetensors } from '../../src/io/safetensors-writer.js';
import { tempDir, tinyTokenizerJson } from './helpers.js';

const dir = tempDir('dsa-traindata-');

test('token files: uint16 and uint32 ids round-trip through the llm.c format', () => {
  const small = Int32Array.from({ length: 1000 }, (_, i) => (i * 7919) % 50257);
  const f16 = path.join(dir, 'small.bin');
  writeTokenFile(f16, small, 50257);
  assert.deepEqual(readTokenFileHeader(f16), { version: 1, dtype: 'U16', tokens: 1000, vocabSize: 50257 });
  assert.equal(fs.statSync(f16).size, 1024 + 2000);
  const src = openTokenSource(f16);
  assert.equal(src.length, 1000);
  assert.equal(src.vocabSize, 50257);
  assert.deepEqual(src.read(0, 1000), small);
  assert.deepEqual(src.read(990, 10), small.subarray(990));
  assert.throws(() => src.read(995, 10), /cannot read tokens \[995, 1005\) of 1000/);
  src.close();

  const big = Int32Array.from([0, 65535, 65536, 129279]);
  const f32 = path.join(dir, 'big.bin');
  const w = new TokenFileWriter(f32, 129280);
  w.write(big.subarray(0, 2));
  w.write(big.subarray(2));
  w.close();
  assert.equal(readTokenFileHeader(f32)!.dtype, 'U32');
  assert.deepEqual(openTokenSource(f32).read(0, 4), big);
  assert.ok(!fs.existsSync(`${f32}.tmp`));
});

test('token files: bad ids, truncation and headerless files give clear errors', () => {
  assert.throws(() => writeTokenFile(path.join(dir, 'bad.bin'), [1, 300], 259), /token id 300 is outside the vocabulary \(0\.\.258\)/);
  assert.ok(!fs.existsSync(path.join(dir, 'bad.bin')) && !fs.existsSync(path.join(dir, 'bad.bin.tmp')));

  const f = path.join(dir, 'trunc.bin');
  writeTokenFile(f, [1, 2, 3, 4], 259);
  fs.truncateSync(f, 1024 + 5);
  assert.throws(() => openTokenSource(f), /header says 4 tokens \(1032 bytes\) but the file has 1029 bytes; file truncated\?/);

  // nanoGPT's train.bin: raw uint16, no header.
  const raw = path.join(dir, 'raw.bin');
  fs.writeFileSync(raw, new Uint8Array(new Uint16Array([5, 6, 65535]).buffer));
  assert.throws(() => openTokenSource(raw), /no token file header .* give its dtype/);
  assert.deepEqual(openTokenSource(raw, { dtype: 'U16' }).read(0, 3), Int32Array.from([5, 6, 65535]));
  assert.throws(() => openTokenSource(raw, { dtype: 'U32' }), /6 bytes is not a whole number of U32 ids/);
  const neg = path.join(dir, 'neg.bin');
  fs.writeFileSync(neg, new Uint8Array(new Int32Array([3, -1]).buffer));
  assert.throws(() => openTokenSource(neg, { dtype: 'I32' }).read(0, 2), /token id -1 at index 1 is not a valid id/);
  assert.throws(() => openTokenSource(path.join(dir, 'missing.bin')), /missing\.bin: file not found/);
  assert.throws(() => openTokenSource(dir), /: is a directory, not a file/);
});

test('token sources: safetensors, JSON ids, text and JSON lines', () => {
  const st = path.join(dir, 'ids.safetensors');
  writeSafetensors(st, { tokens: { dtype: 'I64', shape: [2, 3], data: new BigInt64Array([1n, 2n, 3n, 4n, 5n, 6n]) } }, { vocab_size: '10' });
  const s = openTokenSource(st);
  assert.deepEqual([s.length, s.vocabSize], [6, 10]);
  assert.deepEqual(s.read(2, 3), Int32Array.from([3, 4, 5]));
  const fl = path.join(dir, 'floats.safetensors');
  writeSafetensors(fl, { tokens: { dtype: 'F32', shape: [2], data: new Float32Array(2) } });
  assert.throws(() => openTokenSource(fl), /dtype F32; token ids need an integer dtype/);

  const js = path.join(dir, 'ids.json');
  fs.writeFileSync(js, '[4, 5, 6]');
  assert.deepEqual(openTokenSource(js).read(0, 3), Int32Array.from([4, 5, 6]));
  fs.writeFileSync(js, '{"input_ids": [7, 8]}');
  assert.deepEqual(openTokenSource(js).read(0, 2), Int32Array.from([7, 8]));
  fs.writeFileSync(js, '[4, -5]');
  assert.throws(() => openTokenSource(js), /element 1 \(-5\) is not a token id/);

  const txt = path.join(dir, 'a.txt');
  fs.writeFileSync(txt, 'héllo');
  const t = openTokenSource(txt);
  assert.equal(t.vocabSize, 259);
  assert.deepEqual(Array.from(t.read(0, t.length)), [104, 0xc3, 0xa9, 108, 108, 111, ByteTokenizer.EOS]);

  const jl = path.join(dir, 'docs.jsonl');
  fs.writeFileSync(jl, '{"text": "ab"}\n\n"c"\n');
  assert.deepEqual(Array.from(openTokenSource(jl).read(0, 5)), [97, 98, 257, 99, 257]);
  fs.writeFileSync(jl, '{"text": "ab"}\n{"txt": 1}\n');
  assert.throws(() => openTokenSource(jl), /docs\.jsonl:2: expected \{"text": "\.\.\."\}/);
});

test('tokenizers: byte-level fallback and a tokenizer.json', () => {
  const b = new ByteTokenizer();
  assert.equal(b.decode(b.encode('naïve ✓')), 'naïve ✓');
  assert.equal(b.decode([104, 105, 257]), 'hi');
  assert.throws(() => b.decode([259]), /id 259 is outside the vocabulary/);

  const tdir = path.join(dir, 'tok');
  fs.mkdirSync(tdir);
  fs.writeFileSync(path.join(tdir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
  const tok = loadTokenizer(tdir);
  assert.equal(tok.vocabSize, 261);
  assert.equal(tok.eosId, 0);
  assert.deepEqual(tok.encode('hello'), [260]);
  const text = 'hello, world — hello again\n';
  assert.equal(tok.decode(tok.encode(text)), text);

  const txt = path.join(dir, 'hello.txt');
  fs.writeFileSync(txt, 'hello');
  const s = openTokenSource(txt, { tokenizer: path.join(tdir, 'tokenizer.json') });
  assert.deepEqual(Array.from(s.read(0, s.length)), [260, 0]);
  assert.equal(s.vocabSize, 261);

  // tokenizer_config.json beside it names the specials: here BOS is the byte 'h' (id 105), EOS none.
  fs.writeFileSync(path.join(tdir, 'tokenizer_config.json'), JSON.stringify({ bos_token: { content: 'h' }, eos_token: '<missing>' }));
  const configured = loadTokenizer(tdir);
  assert.deepEqual([configured.bosId, configured.eosId], [105, null]);
  fs.writeFileSync(txt, 'hello');
  assert.deepEqual(Array.from(openTokenSource(txt, { tokenizer: configured }).read(0, 2)), [105, 260]);

  fs.writeFileSync(path.join(dir, 'notatok.json'), '{"vocab": {}}');
  assert.throws(() => loadTokenizer(path.join(dir, 'notatok.json')), /not a tokenizer\.json \(no "model" key\)/);
});

test('batch loader: windows are consecutive tokens, deterministic from the seed, and resume exactly', () => {
  const ids = Int32Array.from({ length: 5000 }, (_, i) => i);
  const src = new MemoryTokens(ids, 'count');
  const split = splitRange(ids.length, 0.1);
  assert.deepEqual(split, { train: { begin: 0, end: 4500 }, val: { begin: 4500, end: 5000 } });
  const opts = { seqLen: 16, batchSize: 4, seed: 7, range: split.train };
  const a = new TokenBatchLoader(src, opts);
  const first = Array.from({ length: 20 }, () => a.next());
  for (const bt of first) {
    assert.equal(bt.mask, null);
    for (let r = 0; r < 4; r++) {
      const start = bt.inputs[r * 16]!;
      assert.ok(start >= 0 && start + 16 < 4500, `window at ${start} leaves the training range`);
      for (let t = 0; t < 16; t++) {
        assert.equal(bt.inputs[r * 16 + t], start + t);
        assert.equal(bt.targets[r * 16 + t], start + t + 1);
      }
    }
  }
  // Not the same window over and over.
  assert.ok(new Set(first.map((bt) => bt.inputs[0])).size > 15);

  // A second loader with the same seed, restored from the first's state after 7 batches, continues identically.
  const b = new TokenBatchLoader(src, opts);
  const saved = JSON.parse(JSON.stringify({ ...a.state(), index: 7 }));
  b.restore(saved);
  for (let i = 7; i < 20; i++) assert.deepEqual(b.next(), first[i]);
  assert.deepEqual(a.batchAt(3), first[3]);

  const other = new TokenBatchLoader(src, { ...opts, seed: 8 });
  assert.notDeepEqual(other.batchAt(0).inputs, first[0]!.inputs);
  assert.throws(() => other.restore(a.state()), /its seed is 8 but the saved state's is 7/);
  assert.throws(() => new TokenBatchLoader(src, { ...opts, seqLen: 32 }).restore(a.state()), /seqLen is 32 but the saved state's is 16/);
  assert.throws(() => new TokenBatchLoader(src, { ...opts, range: { begin: 0, end: 10 } }), /10 training tokens cannot fill one window of seq_len \+ 1 = 17/);
});

test('validation batches tile the held-out tail, the same at every call', () => {
  const src = new MemoryTokens(Int32Array.from({ length: 1000 }, (_, i) => i % 300), 'mod');
  const { val } = splitRange(1000, 0.1);
  const batches = validationBatches(src, val, { seqLen: 20, batchSize: 2 });
  // 100 tokens: windows of 21 at stride 20 → 4 windows, two batches of 2.
  assert.deepEqual(batches.map((b) => b.batchSize), [2, 2]);
  assert.deepEqual(Array.from(batches[0]!.inputs.subarray(0, 3)), [900 % 300, 901 % 300, 902 % 300]);
  assert.equal(batches[1]!.targets.at(-1), 980 % 300);
  assert.deepEqual(validationBatches(src, val, { seqLen: 20, batchSize: 3, maxBatches: 1 }).map((b) => b.batchSize), [3]);
  assert.throws(() => validationBatches(src, { begin: 990, end: 1000 }, { seqLen: 20, batchSize: 2 }), /10 validation tokens cannot fill one window/);
  checkBatchVocab(batches[0]!, 300);
  assert.throws(() => checkBatchVocab(batches[0]!, 30), /token id 30 is outside the model's vocabulary \(0\.\.29\)/);
  assert.deepEqual(validationBatches(src, val, { seqLen: 20, batchSize: 2 }), batches);
});
