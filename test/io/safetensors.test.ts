import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DTYPE_BYTES, SafetensorsFile, SafetensorsError, readSafetensorsHeader, decodeE5m2, type SafeDType } from '../../src/io/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors-writer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsa-st-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const fixtures = fileURLToPath(new URL('../../../shared/fixtures/', import.meta.url));

/** Tensors of every dtype, with float32 / int32 values the readers should produce. */
const cases: Record<string, TensorToWrite & { f32: number[]; i32?: number[] }> = {
  f64: { dtype: 'F64', shape: [2, 2], data: new Float64Array([1.5, -2, 1e300, 0.1]), f32: [1.5, -2, Infinity, Math.fround(0.1)] },
  f32: { dtype: 'F32', shape: [3], data: new Float32Array([1, -0.25, 3e38]), f32: [1, -0.25, Math.fround(3e38)] },
  f16: { dtype: 'F16', shape: [4], data: new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7c00]), f32: [1, -2, 0.5, Infinity] },
  bf16: { dtype: 'BF16', shape: [2, 2], data: new Uint16Array([0x3f80, 0xc000, 0x3f00, 0x0000]), f32: [1, -2, 0.5, 0] },
  e4m3: { dtype: 'F8_E4M3', shape: [3], data: new Uint8Array([0x38, 0xc0, 0x30]), f32: [1, -2, 0.5] },
  e5m2: { dtype: 'F8_E5M2', shape: [5], data: new Uint8Array([0x3c, 0xc0, 0x38, 0x7c, 0x01]), f32: [1, -2, 0.5, Infinity, 2 ** -16] },
  i64: { dtype: 'I64', shape: [3], data: new BigInt64Array([-5n, 0n, 2147483647n]), f32: [-5, 0, 2147483648], i32: [-5, 0, 2147483647] },
  i32: { dtype: 'I32', shape: [1, 3], data: new Int32Array([-7, 8, -2147483648]), f32: [-7, 8, -2147483648], i32: [-7, 8, -2147483648] },
  i16: { dtype: 'I16', shape: [2], data: new Int16Array([-32768, 32767]), f32: [-32768, 32767], i32: [-32768, 32767] },
  i8: { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]), f32: [-128, 127], i32: [-128, 127] },
  u8: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]), f32: [0, 255], i32: [0, 255] },
  u16: { dtype: 'U16', shape: [2], data: new Uint16Array([1, 65535]), f32: [1, 65535], i32: [1, 65535] },
  u32: { dtype: 'U32', shape: [2], data: new Uint32Array([3, 2147483647]), f32: [3, 2147483648], i32: [3, 2147483647] },
  u64: { dtype: 'U64', shape: [1], data: new BigUint64Array([42n]), f32: [42], i32: [42] },
  bool: { dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]), f32: [1, 0, 1], i32: [1, 0, 1] },
  scalar: { dtype: 'F32', shape: [], data: new Float32Array([7.5]), f32: [7.5] },
  empty: { dtype: 'BF16', shape: [0, 4], data: new Uint16Array(0), f32: [] },
  'empty-i32': { dtype: 'I32', shape: [3, 0], data: new Int32Array(0), f32: [], i32: [] },
};

const expectedCtor: Record<SafeDType, Function> = {
  F64: Float64Array, F32: Float32Array, F16: Uint16Array, BF16: Uint16Array, F8_E4M3: Uint8Array, F8_E5M2: Uint8Array,
  I64: BigInt64Array, I32: Int32Array, I16: Int16Array, I8: Int8Array, U8: Uint8Array, U16: Uint16Array,
  U32: Uint32Array, U64: BigUint64Array, BOOL: Uint8Array,
};

test('round trip of every dtype, scalar and zero-size tensors', () => {
  const file = path.join(tmp, 'all.safetensors');
  writeSafetensors(file, cases, { format: 'pt', note: 'héllo "quoted"' });
  assert.equal(fs.existsSync(file + '.tmp'), false);
  const f = SafetensorsFile.open(file);
  try {
    assert.deepEqual(f.metadata, { format: 'pt', note: 'héllo "quoted"' });
    assert.deepEqual([...f.tensors.keys()], Object.keys(cases));
    for (const [name, c] of Object.entries(cases)) {
      const info = f.info(name);
      assert.equal(info.dtype, c.dtype);
      assert.deepEqual(info.shape, c.shape);
      assert.equal(info.numel, c.shape.reduce((a, d) => a * d, 1));
      assert.equal(info.byteLength, info.numel * DTYPE_BYTES[c.dtype]);
      assert.equal(info.file, file);
      const arr = f.read(name);
      assert.equal(arr.constructor, expectedCtor[c.dtype], name);
      assert.equal(arr.byteOffset, 0);
      assert.deepEqual(Array.from(arr as ArrayLike<unknown>), Array.from(c.data as unknown as ArrayLike<unknown>), name);
      const bytes = f.readBytes(name);
      assert.deepEqual(bytes, new Uint8Array(c.data.buffer, c.data.byteOffset, c.data.byteLength));
      assert.deepEqual([...f.readF32(name)], c.f32, `${name} readF32`);
      if (c.i32) assert.deepEqual([...f.readInt32(name)], c.i32, `${name} readInt32`);
      else assert.throws(() => f.readInt32(name), (e: unknown) => e instanceof SafetensorsError && e.message.includes(name));
    }
    assert.equal(f.has('f32'), true);
    assert.equal(f.has('nope'), false);
  } finally {
    f.close();
  }
});

test('header is padded with spaces to a multiple of 8 and data is contiguous', () => {
  const file = path.join(tmp, 'pad.safetensors');
  writeSafetensors(file, new Map([['a', { dtype: 'U8' as const, shape: [3], data: new Uint8Array([1, 2, 3]) }]]));
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  assert.equal(n % 8, 0);
  const text = buf.subarray(8, 8 + n).toString('utf8');
  assert.equal(text.trimEnd(), '{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}');
  assert.match(text, /^\{.*\} *$/);
  assert.equal(buf.length, 8 + n + 3);
  const h = readSafetensorsHeader(file);
  assert.equal(h.headerLength, n);
  assert.equal(h.dataStart, 8 + n);
  assert.deepEqual(h.metadata, {});
});

test('writer keeps insertion order, including integer-like names, and puts __metadata__ first', () => {
  const file = path.join(tmp, 'order.safetensors');
  const m = new Map<string, TensorToWrite>([
    ['z', { dtype: 'F32', shape: [1], data: new Float32Array([1]) }],
    ['10', { dtype: 'F32', shape: [1], data: new Float32Array([2]) }],
    ['a', { dtype: 'F32', shape: [1], data: new Float32Array([3]) }],
  ]);
  writeSafetensors(file, m, { k: 'v' });
  const text = fs.readFileSync(file).subarray(8).toString('utf8');
  assert.ok(text.startsWith('{"__metadata__":{"k":"v"},"z":'));
  const f = SafetensorsFile.open(file);
  assert.deepEqual([...f.tensors.keys()], ['z', '10', 'a']);
  assert.deepEqual([...f.readF32('a')], [3]);
  f.close();
});

test('writer rejects data whose size does not match the shape, naming the tensor', () => {
  const file = path.join(tmp, 'bad-write.safetensors');
  assert.throws(
    () => writeSafetensors(file, { w: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }),
    (e: unknown) => e instanceof SafetensorsError && /'w'/.test(e.message) && /12 bytes/.test(e.message) && /16 bytes/.test(e.message),
  );
  assert.equal(fs.existsSync(file), false);
  assert.equal(fs.existsSync(file + '.tmp'), false);
});

test('writer accepts subarray views (non-zero byteOffset)', () => {
  const file = path.join(tmp, 'view.safetensors');
  const big = new Float32Array([9, 1, 2, 3, 9]);
  writeSafetensors(file, { v: { dtype: 'F32', shape: [3], data: big.subarray(1, 4) } });
  const f = SafetensorsFile.open(file);
  assert.deepEqual([...f.readF32('v')], [1, 2, 3]);
  f.close();
});

test('decodeE5m2 handles subnormals, inf and NaN', () => {
  const out = decodeE5m2(new Uint8Array([0x00, 0x80, 0x03, 0x04, 0x7b, 0xfc, 0x7f, 0xfe]));
  assert.equal(out[0], 0);
  assert.ok(Object.is(out[1], -0));
  assert.equal(out[2], 3 * 2 ** -16);
  assert.equal(out[3], 2 ** -14);
  assert.equal(out[4], 57344);
  assert.equal(out[5], -Infinity);
  assert.ok(Number.isNaN(out[6]));
  assert.ok(Number.isNaN(out[7]));
});

test('reads the tiny-bf16 fixtures', () => {
  const model = SafetensorsFile.open(path.join(fixtures, 'tiny-bf16/model.safetensors'));
  const expected = SafetensorsFile.open(path.join(fixtures, 'tiny-bf16/expected.safetensors'));
  try {
    assert.ok(model.tensors.size > 50);
    assert.equal(model.metadata.format, 'pt');
    const emb = model.info('model.embed_tokens.weight');
    assert.equal(emb.dtype, 'BF16');
    assert.deepEqual(emb.shape, [1024, 256]);
    const raw = model.read('model.embed_tokens.weight');
    assert.ok(raw instanceof Uint16Array);
    assert.equal(raw.length, 1024 * 256);
    const f = model.readF32('model.embed_tokens.weight');
    assert.equal(f.length, 1024 * 256);
    for (let i = 0; i < 64; i++) assert.equal(f[i], new Float32Array(new Uint32Array([raw[i]! << 16]).buffer)[0]);
    assert.ok(f.some((v) => v !== 0) && f.every(Number.isFinite));

    const topk = expected.info('prefill_topk_all');
    assert.equal(topk.dtype, 'I16');
    assert.deepEqual(topk.shape, [3, 300, 64]);
    const idx = expected.read('prefill_topk_all');
    assert.ok(idx instanceof Int16Array);
    assert.equal(idx.length, 3 * 300 * 64);
    const i32 = expected.readInt32('prefill_topk_all');
    assert.deepEqual([...i32.subarray(0, 100)], [...idx.subarray(0, 100)]);
    assert.ok(i32.every((v) => v >= -1 && v < 300));
    assert.deepEqual([...expected.readInt32('prompt_ids')].length, 300);
    assert.ok('selfcheck' in expected.metadata);
  } finally {
    model.close();
    expected.close();
  }
});
