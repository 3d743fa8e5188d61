import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile, SafetensorsError } from '../../src/io/safetensors.js';
import { writeSafetensors } from '../../src/io/safetensors-writer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsa-st-bad-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Write a file from a header (string or raw bytes), `dataBytes` zero bytes of data and an optional length override. */
function raw(name: string, header: string | Uint8Array, dataBytes = 0, lengthOverride?: bigint): string {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthOverride ?? BigInt(h.length));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([prefix, h, Buffer.alloc(dataBytes)]));
  return file;
}

/** Assert that opening `file` fails with a SafetensorsError naming the file and matching `phrase`. */
function rejects(file: string, phrase: RegExp): void {
  assert.throws(() => SafetensorsFile.open(file), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.ok(e.message.startsWith(file + ': '), e.message);
    assert.equal(e.file, file);
    assert.match(e.message, phrase);
    return true;
  });
}

const entry = (dtype: string, shape: unknown, offsets: unknown) =>
  ({ dtype, shape, data_offsets: offsets });
const hdr = (o: Record<string, unknown>) => JSON.stringify(o);

test('empty and too-short files', () => {
  rejects(raw('len0.safetensors', ''), /header length is 0/);
  const empty = path.join(tmp, 'zero-bytes.safetensors');
  fs.writeFileSync(empty, '');
  rejects(empty, /too short.*0 bytes/);
  const five = path.join(tmp, 'five.safetensors');
  fs.writeFileSync(five, Buffer.from([1, 2, 3, 4, 5]));
  rejects(five, /too short.*5 bytes/);
});

test('missing file', () => {
  rejects(path.join(tmp, 'does-not-exist.safetensors'), /file not found/);
});

test('header length beyond the file', () => {
  rejects(raw('long.safetensors', '{}', 0, 1000n), /header length 1000 exceeds the file size \(10 bytes\)/);
});

test('header length 2^60 fails before any allocation', () => {
  rejects(raw('huge.safetensors', '{}', 0, 2n ** 60n), /header length 1152921504606846976 exceeds the format limit/);
  rejects(raw('max.safetensors', '{}', 0, 2n ** 64n - 1n), /exceeds the format limit/);
});

test('header not UTF-8, not JSON, not an object', () => {
  rejects(raw('utf8.safetensors', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /not valid UTF-8/);
  rejects(raw('notjson.safetensors', '{"a": '), /not valid JSON/);
  rejects(raw('array.safetensors', '[1, 2]'), /not a JSON object \(got an array\)/);
  rejects(raw('string.safetensors', '"hi"'), /not a JSON object/);
});

test('bad __metadata__', () => {
  rejects(raw('meta1.safetensors', hdr({ __metadata__: { a: 1 } })), /__metadata__ is not a string-to-string map/);
  rejects(raw('meta2.safetensors', hdr({ __metadata__: ['x'] })), /__metadata__ is not a string-to-string map/);
});

test('bad entries: not an object, wrong keys, unknown dtype', () => {
  rejects(raw('e1.safetensors', hdr({ w: 5 })), /tensor 'w': entry is not an object/);
  rejects(raw('e2.safetensors', hdr({ w: { dtype: 'F32', shape: [1] } }), 4), /tensor 'w': entry must have exactly the keys/);
  rejects(raw('e3.safetensors', hdr({ w: { ...entry('F32', [1], [0, 4]), extra: 1 } }), 4), /tensor 'w'.*exactly the keys/);
  rejects(raw('dtype.safetensors', hdr({ w: entry('F128', [1], [0, 16]) }), 16), /tensor 'w': unknown dtype "F128"/);
});

test('bad shapes', () => {
  rejects(raw('neg.safetensors', hdr({ w: entry('F32', [-1, 2], [0, 0]) })), /tensor 'w': bad shape \[-1,2\]/);
  rejects(raw('frac.safetensors', hdr({ w: entry('F32', [1.5], [0, 6]) }), 6), /tensor 'w': bad shape \[1.5\]/);
  rejects(raw('str.safetensors', hdr({ w: entry('F32', '3', [0, 12]) }), 12), /tensor 'w': bad shape/);
  rejects(raw('big.safetensors', hdr({ w: entry('F32', [2 ** 40, 2 ** 40], [0, 4]) }), 4), /tensor 'w'.*too large/);
});

test('bad data_offsets', () => {
  rejects(raw('off1.safetensors', hdr({ w: entry('U8', [2], [2, 0]) }), 2), /tensor 'w': bad data_offsets \[2,0\]/);
  rejects(raw('off2.safetensors', hdr({ w: entry('U8', [2], [0]) }), 2), /tensor 'w': bad data_offsets/);
  rejects(raw('off3.safetensors', hdr({ w: entry('U8', [2], [-1, 1]) }), 2), /tensor 'w': bad data_offsets/);
});

test('data_offsets size mismatch names both sizes', () => {
  rejects(raw('mismatch.safetensors', hdr({ w: entry('F32', [2, 3], [0, 20]) }), 24),
    /tensor 'w'.*span 20 bytes.*needs 24 bytes \(size mismatch\)/);
});

test('offsets beyond the data section', () => {
  rejects(raw('beyond.safetensors', hdr({ w: entry('F32', [4], [0, 16]) }), 8), /tensor 'w'.*end 16 is beyond the data section \(8 bytes\)/);
  // Huge claimed sizes are rejected before any allocation.
  rejects(raw('beyond-huge.safetensors', hdr({ w: entry('U8', [2 ** 50], [0, 2 ** 50]) }), 8), /beyond the data section/);
});

test('overlapping tensors are named', () => {
  rejects(raw('overlap.safetensors', hdr({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) }), 12),
    /tensors 'a' and 'b' overlap/);
  // Zero-size tensors never overlap.
  const ok = raw('zero-ok.safetensors', hdr({ a: entry('F32', [2], [0, 8]), z: entry('F32', [0], [4, 4]) }), 8);
  SafetensorsFile.open(ok).close();
});

test('truncated file (cut short in the data section)', () => {
  const file = path.join(tmp, 'trunc.safetensors');
  writeSafetensors(file, { a: { dtype: 'F32', shape: [4], data: new Float32Array(4) }, b: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
  fs.truncateSync(file, fs.statSync(file).size - 5);
  rejects(file, /tensor 'b'.*beyond the data section.*truncated/);
});

test('file truncated after open: read reports end of file', () => {
  const file = path.join(tmp, 'trunc-late.safetensors');
  writeSafetensors(file, { a: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
  const f = SafetensorsFile.open(file);
  fs.truncateSync(file, fs.statSync(file).size - 5);
  assert.throws(() => f.read('a'), (e: unknown) => e instanceof SafetensorsError && e.message.startsWith(file) && /unexpected end of file/.test(e.message));
  f.close();
});

test('missing tensor name on info()/read()', () => {
  const file = path.join(tmp, 'ok.safetensors');
  writeSafetensors(file, { a: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) } });
  const f = SafetensorsFile.open(file);
  for (const op of [() => f.info('nope'), () => f.read('nope'), () => f.readF32('nope')]) {
    assert.throws(op, (e: unknown) => e instanceof SafetensorsError && e.message.startsWith(file) && /no tensor named 'nope'/.test(e.message));
  }
  f.close();
});

test('read after close', () => {
  const file = path.join(tmp, 'closed.safetensors');
  writeSafetensors(file, { a: { dtype: 'U8', shape: [1], data: new Uint8Array([1]) } });
  const f = SafetensorsFile.open(file);
  f.close();
  f.close(); // idempotent
  assert.equal(f.info('a').dtype, 'U8'); // header stays available
  assert.throws(() => f.readBytes('a'), (e: unknown) => e instanceof SafetensorsError && e.message.startsWith(file) && /tensor 'a'.*closed/.test(e.message));
  assert.throws(() => f.read('a'), /closed/);
});

test('readInt32 rejects values that do not fit and float dtypes', () => {
  const file = path.join(tmp, 'int.safetensors');
  writeSafetensors(file, {
    big: { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, 2n ** 40n]) },
    neg: { dtype: 'I64', shape: [1], data: new BigInt64Array([-(2n ** 31n) - 1n]) },
    u32: { dtype: 'U32', shape: [1], data: new Uint32Array([2 ** 31]) },
    u64: { dtype: 'U64', shape: [1], data: new BigUint64Array([2n ** 63n]) },
    bf: { dtype: 'BF16', shape: [1], data: new Uint16Array([0x3f80]) },
  });
  const f = SafetensorsFile.open(file);
  for (const [name, re] of [['big', /'big'.*1099511627776 at index 1 does not fit/], ['neg', /'neg'.*does not fit/],
    ['u32', /'u32'.*2147483648.*does not fit/], ['u64', /'u64'.*does not fit/], ['bf', /'bf'.*BF16 is not an integer dtype/]] as const) {
    assert.throws(() => f.readInt32(name), (e: unknown) => e instanceof SafetensorsError && re.test(e.message) && e.message.startsWith(file));
  }
  f.close();
});
