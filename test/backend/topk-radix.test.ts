/**
 * The radix top-k selector against the quickselect reference: outputs must be identical, element
 * for element, on random rows of many lengths, with exact ties, ±Infinity, -0/+0 and causal limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topkRows } from '../../src/backend/cpu/kernels/topk.js';
import { orderKey, topkRowsRadix } from '../../src/backend/cpu/kernels/topk-radix.js';
import { seededUniform } from '../../src/generate/sampler.js';

const rng = seededUniform;

type Kind = 'normal' | 'ties' | 'masked' | 'signed-zero' | 'infinities' | 'constant' | 'wide-range';

function fillRow(out: Float32Array, off: number, n: number, kind: Kind, r: () => number): void {
  for (let i = 0; i < n; i++) {
    let v: number;
    switch (kind) {
      case 'normal':
        v = (r() - 0.5) * 20;
        break;
      case 'ties':
        v = Math.floor(r() * 7) - 3; // 7 distinct values: huge tie groups
        break;
      case 'masked':
        v = r() < 0.4 ? -Infinity : Math.floor(r() * 50) / 4;
        break;
      case 'signed-zero':
        v = r() < 0.3 ? -0 : r() < 0.5 ? 0 : (r() - 0.5) * 1e-3;
        break;
      case 'infinities':
        v = r() < 0.1 ? Infinity : r() < 0.2 ? -Infinity : (r() - 0.5) * 4;
        break;
      case 'constant':
        v = 1.5;
        break;
      case 'wide-range':
        v = (r() < 0.5 ? -1 : 1) * Math.exp((r() - 0.5) * 160); // includes float32 subnormals/overflow
        break;
    }
    out[off + i] = v;
  }
}

function check(rows: number, nKeys: number, k: number, kind: Kind, seed: number, causal: boolean): void {
  const r = rng(seed);
  const scores = new Float32Array(rows * nKeys);
  for (let t = 0; t < rows; t++) fillRow(scores, t * nKeys, nKeys, kind, r);
  const positions = new Int32Array(rows);
  for (let t = 0; t < rows; t++) positions[t] = causal ? Math.floor(r() * (nKeys + 4)) - 2 : nKeys - 1 + Math.floor(r() * 3);
  const want = topkRows(scores, rows, nKeys, k, positions);
  const got = topkRowsRadix(scores, rows, nKeys, k, positions);
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      assert.fail(`S=${nKeys} k=${k} ${kind} seed=${seed}: row ${Math.floor(i / Math.min(k, nKeys))} index ${i}: radix ${got[i]}, quickselect ${want[i]}`);
    }
  }
}

test('orderKey preserves the order of float32 values and equates -0 with +0', () => {
  const vals = [-Infinity, -3.4e38, -1, -1e-45, -0, 0, 1e-45, 1, 3.4e38, Infinity];
  const f = new Float32Array(vals);
  const u = new Int32Array(f.buffer);
  const keys = Array.from(u, (b) => orderKey(b));
  for (let i = 1; i < keys.length; i++) {
    if (f[i - 1] === f[i]) assert.equal(keys[i - 1], keys[i]);
    else assert.ok(keys[i - 1]! < keys[i]!, `${f[i - 1]} < ${f[i]}`);
  }
});

test('radix top-k equals quickselect top-k on random rows', () => {
  const kinds: Kind[] = ['normal', 'ties', 'masked', 'signed-zero', 'infinities', 'constant', 'wide-range'];
  const sizes = [1, 2, 3, 7, 64, 255, 1000, 4095, 4096, 5000, 20000, 50000];
  const ks = [1, 2, 5, 64, 512, 2048, 4096];
  let seed = 1;
  for (const nKeys of sizes) {
    for (const k of ks) {
      if (k > 4 * nKeys && k !== ks[0]) continue; // k far beyond S: one representative case is enough
      for (const kind of kinds) {
        const rows = nKeys > 10000 ? 2 : 4;
        check(rows, nKeys, k, kind, seed++, false);
        check(rows, nKeys, k, kind, seed++, true);
      }
    }
  }
});

test('radix top-k handles k ≥ S, rows with no valid keys and a subarray input', () => {
  const r = rng(99);
  const nKeys = 300;
  const rows = 5;
  const buf = new Float32Array(rows * nKeys + 3);
  for (let i = 0; i < buf.length; i++) buf[i] = Math.round(r() * 10);
  const scores = buf.subarray(3); // nonzero byteOffset
  const positions = Int32Array.from([-1, 0, 150, 299, 1000]);
  for (const k of [1, 100, 300, 301, 5000]) {
    assert.deepEqual(topkRowsRadix(scores, rows, nKeys, k, positions), topkRows(scores, rows, nKeys, k, positions));
  }
});

test('radix top-k picks the lowest positions among tied thresholds', () => {
  const scores = new Float32Array([0, 5, -0, 5, 0, 3, 0, -Infinity]);
  const positions = Int32Array.from([7]);
  assert.deepEqual(Array.from(topkRowsRadix(scores, 1, 8, 4, positions)), [0, 1, 3, 5]);
  assert.deepEqual(Array.from(topkRowsRadix(scores, 1, 8, 5, positions)), [0, 1, 2, 3, 5]);
});
