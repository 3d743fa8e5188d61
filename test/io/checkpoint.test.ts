import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Checkpoint, loadJsonFile } from '../../src/io/checkpoint.js';
import { SafetensorsError } from '../../src/io/safetensors.js';
import { writeSafetensors } from '../../src/io/safetensors-writer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsa-ckpt-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const fixtures = fileURLToPath(new URL('../../../shared/fixtures/', import.meta.url));

let dirCount = 0;
/** A fresh directory with two shards; `index` (if given) is written as model.safetensors.index.json. */
function shardedDir(index?: unknown): string {
  const dir = path.join(tmp, `ckpt${dirCount++}`);
  fs.mkdirSync(dir);
  writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), {
    'a.weight': { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    'b.bias': { dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f80, 0xc000]) },
  });
  writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), {
    'c.ids': { dtype: 'I64', shape: [3], data: new BigInt64Array([5n, 6n, 7n]) },
  });
  if (index !== undefined) {
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), typeof index === 'string' ? index : JSON.stringify(index));
  }
  return dir;
}

const goodIndex = {
  metadata: { total_size: 32 },
  weight_map: {
    'a.weight': 'model-00001-of-00002.safetensors',
    'b.bias': 'model-00001-of-00002.safetensors',
    'c.ids': 'model-00002-of-00002.safetensors',
  },
};

/** Assert `fn` throws a SafetensorsError whose message matches every pattern. */
function throwsWith(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, String(e));
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test('sharded checkpoint with index reads tensors from both shards', () => {
  const dir = shardedDir(goodIndex);
  const ck = Checkpoint.open(dir);
  try {
    assert.equal(ck.dir, dir);
    assert.deepEqual(ck.names(), ['a.weight', 'b.bias', 'c.ids']);
    assert.ok(ck.has('c.ids') && !ck.has('zzz'));
    assert.deepEqual([...ck.readF32('a.weight')], [1, 2, 3, 4]);
    assert.deepEqual([...ck.readF32('b.bias')], [1, -2]);
    assert.deepEqual([...ck.readInt32('c.ids')], [5, 6, 7]);
    assert.deepEqual([...(ck.read('c.ids') as BigInt64Array)], [5n, 6n, 7n]);
    assert.equal(ck.readBytes('b.bias').length, 4);
    assert.equal(ck.info('c.ids').file, path.join(dir, 'model-00002-of-00002.safetensors'));
    assert.equal(ck.totalBytes(), 16 + 4 + 24);
    throwsWith(() => ck.info('zzz'), /'zzz'/, new RegExp(dir.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')));
  } finally {
    ck.close();
  }
  throwsWith(() => ck.read('a.weight'), /closed/);
});

test('unindexed directory uses every *.safetensors file', () => {
  const dir = shardedDir();
  const ck = Checkpoint.open(dir);
  assert.deepEqual(ck.names(), ['a.weight', 'b.bias', 'c.ids']);
  assert.deepEqual([...ck.readInt32('c.ids')], [5, 6, 7]);
  ck.close();
});

test('model.safetensors is preferred when there is no index', () => {
  const dir = shardedDir();
  writeSafetensors(path.join(dir, 'model.safetensors'), { 'a.weight': { dtype: 'F32', shape: [1], data: new Float32Array([9]) } });
  const ck = Checkpoint.open(dir);
  assert.deepEqual(ck.names(), ['a.weight']);
  assert.deepEqual([...ck.readF32('a.weight')], [9]);
  ck.close();
});

test('index pointing at a missing shard names the shard and the index', () => {
  const dir = shardedDir({ weight_map: { ...goodIndex.weight_map, 'd.x': 'model-00003-of-00003.safetensors' } });
  throwsWith(() => Checkpoint.open(dir), /model\.safetensors\.index\.json/, /model-00003-of-00003\.safetensors/, /missing/);
});

test('index listing a tensor absent from its shard names tensor and shard', () => {
  const dir = shardedDir({ weight_map: { ...goodIndex.weight_map, 'ghost.weight': 'model-00002-of-00002.safetensors' } });
  throwsWith(() => Checkpoint.open(dir), /'ghost\.weight'/, /model-00002-of-00002\.safetensors/);
});

test('malformed index files', () => {
  throwsWith(() => Checkpoint.open(shardedDir('{not json')), /index\.json: not valid JSON/);
  throwsWith(() => Checkpoint.open(shardedDir({ metadata: {} })), /index\.json: index has no "weight_map" object/);
  throwsWith(() => Checkpoint.open(shardedDir([1])), /index is not a JSON object/);
  throwsWith(() => Checkpoint.open(shardedDir({ weight_map: { x: 3 } })), /'x'.*not a file name/);
  throwsWith(() => Checkpoint.open(shardedDir({ weight_map: { x: '../evil.safetensors' } })), /outside the checkpoint directory/);
});

test('duplicate tensor names across unindexed shards', () => {
  const dir = shardedDir();
  writeSafetensors(path.join(dir, 'extra.safetensors'), { 'b.bias': { dtype: 'U8', shape: [1], data: new Uint8Array([1]) } });
  throwsWith(() => Checkpoint.open(dir), /'b\.bias'/, /extra\.safetensors/, /model-00001-of-00002\.safetensors/);
});

test('a bad shard header fails at open', () => {
  const dir = shardedDir();
  fs.writeFileSync(path.join(dir, 'broken.safetensors'), Buffer.from([1, 2, 3]));
  throwsWith(() => Checkpoint.open(dir), /broken\.safetensors: file is too short/);
});

test('empty or missing directory', () => {
  const dir = path.join(tmp, 'empty');
  fs.mkdirSync(dir);
  throwsWith(() => Checkpoint.open(dir), new RegExp(`^${dir.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}: no safetensors files`));
  throwsWith(() => Checkpoint.open(path.join(tmp, 'nope')), /nope: checkpoint directory not found/);
});

test('the tiny-bf16 fixture directory opens as a checkpoint', () => {
  const ck = Checkpoint.open(path.join(fixtures, 'tiny-bf16'));
  try {
    assert.ok(ck.has('model.embed_tokens.weight'));
    assert.ok(!ck.has('prefill_topk_all')); // model.safetensors only, not expected.safetensors
    assert.deepEqual(ck.info('lm_head.weight').shape, [1024, 256]);
    assert.equal(ck.readF32('lm_head.weight').length, 1024 * 256);
  } finally {
    ck.close();
  }
});

test('loadJsonFile reports missing files and bad JSON with the path', () => {
  const good = path.join(tmp, 'config.json');
  fs.writeFileSync(good, '{"a": [1, 2]}');
  assert.deepEqual(loadJsonFile(good, 'model config'), { a: [1, 2] });
  const bad = path.join(tmp, 'bad-config.json');
  fs.writeFileSync(bad, '{"a": }');
  throwsWith(() => loadJsonFile(bad, 'model config'), /bad-config\.json: not valid JSON \(/);
  throwsWith(() => loadJsonFile(path.join(tmp, 'absent.json'), 'model config'), /absent\.json: file not found/);
});
