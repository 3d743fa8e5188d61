import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { SafetensorsError, SafetensorsFile } from '../../src/io/safetensors.js';
import { SafetensorsStreamWriter } from '../../src/io/safetensors-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'dsa-stream-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('tensors written in pieces, out of order, read back whole', () => {
  const path = join(dir, 'a.safetensors');
  const w = new SafetensorsStreamWriter(path, [
    ['logits', { dtype: 'F32', shape: [3, 4] }],
    ['ids', { dtype: 'I32', shape: [3] }],
  ]);
  w.write('logits', Float32Array.of(9, 10, 11, 12), 8);
  w.writeTensor('ids', Int32Array.of(7, 8, 9));
  w.write('logits', Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8), 0);
  assert.equal(existsSync(path), false, 'the file appears only on close');
  w.close();
  const f = SafetensorsFile.open(path);
  assert.deepEqual(Array.from(f.readF32('logits')), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.deepEqual(Array.from(f.readInt32('ids')), [7, 8, 9]);
  f.close();
});

test('writes outside a tensor, unknown tensors and wrong whole sizes are errors naming the tensor', () => {
  const path = join(dir, 'b.safetensors');
  const w = new SafetensorsStreamWriter(path, [['x', { dtype: 'F32', shape: [2, 2] }]]);
  assert.throws(() => w.write('x', new Float32Array(2), 3), (e: Error) => e instanceof SafetensorsError && /'x'.*does not fit/.test(e.message));
  assert.throws(() => w.write('y', new Float32Array(1)), /tensor 'y' is not in this file/);
  assert.throws(() => w.writeTensor('x', new Float32Array(3)), /'x': data has 12 bytes but shape \[2,2\] of F32 needs 16 bytes/);
  w.abort();
  assert.equal(existsSync(path), false);
  assert.equal(existsSync(`${path}.tmp`), false);
  assert.throws(() => w.write('x', new Float32Array(1)), /closed/);
});
