/** Tests of the fast Walsh–Hadamard transform against an explicit Sylvester matrix product. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fwht, hadamardRows } from '../../src/numerics/index.js';
import { seededUniform } from '../../src/generate/sampler.js';

const rng = seededUniform;

/** Explicit Sylvester matrix built by the recursion H_2n = [[H, H], [H, -H]]. */
function sylvester(n: number): Int8Array[] {
  let h: Int8Array[] = [Int8Array.of(1)];
  for (let size = 1; size < n; size *= 2) {
    const next: Int8Array[] = [];
    for (let i = 0; i < 2 * size; i++) {
      const row = new Int8Array(2 * size);
      const src = h[i % size];
      for (let j = 0; j < size; j++) {
        row[j] = src[j];
        row[j + size] = i < size ? src[j] : -src[j];
      }
      next.push(row);
    }
    h = next;
  }
  return h;
}

test('fwht matches the explicit Sylvester product (float64), n = 1..256', () => {
  const next = rng(1);
  for (let n = 1; n <= 256; n *= 2) {
    const h = sylvester(n);
    for (const scale of [1, 1 / Math.sqrt(n), Math.fround(n ** -0.5)]) {
      const x = new Float32Array(n + 7);
      for (let i = 0; i < x.length; i++) {
        x[i] = next() * 2 - 1;
      }
      const offset = 3;
      const orig = x.slice();
      fwht(x, offset, n, scale);
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let j = 0; j < n; j++) {
          sum += h[i][j] * orig[offset + j];
        }
        assert.equal(x[offset + i], Math.fround(sum * scale), `n=${n} i=${i}`);
      }
      // Untouched outside the range.
      for (let i = 0; i < offset; i++) {
        assert.equal(x[i], orig[i]);
      }
      for (let i = offset + n; i < x.length; i++) {
        assert.equal(x[i], orig[i]);
      }
    }
  }
});

test('Sylvester matrix entries are (-1)^popcount(i & j)', () => {
  const h = sylvester(64);
  for (let i = 0; i < 64; i++) {
    for (let j = 0; j < 64; j++) {
      let p = i & j;
      let parity = 0;
      while (p !== 0) {
        parity ^= p & 1;
        p >>>= 1;
      }
      assert.equal(h[i][j], parity ? -1 : 1);
    }
  }
});

test('normalized transform is an involution (to 1e-6)', () => {
  const next = rng(2);
  for (let n = 1; n <= 1024; n *= 2) {
    const rows = 3;
    const x = new Float32Array(rows * n);
    for (let i = 0; i < x.length; i++) {
      x[i] = (next() * 2 - 1) * 4;
    }
    const orig = x.slice();
    hadamardRows(x, rows, n);
    hadamardRows(x, rows, n);
    for (let i = 0; i < x.length; i++) {
      assert.ok(Math.abs(x[i] - orig[i]) <= 1e-6 * 4, `n=${n} i=${i}: ${x[i]} vs ${orig[i]}`);
    }
  }
});

test('hadamardRows uses scale n^-0.5 per row', () => {
  const x = new Float32Array([1, 0, 0, 0, 0, 0, 0, 1]);
  hadamardRows(x, 2, 4);
  assert.deepEqual(Array.from(x), [0.5, 0.5, 0.5, 0.5, 0.5, -0.5, -0.5, 0.5]);
});

test('fwht grows its scratch buffer for large n', () => {
  const n = 4096;
  const x = new Float32Array(n);
  x[5] = 1;
  fwht(x, 0, n, 1);
  for (let i = 0; i < n; i++) {
    let p = i & 5;
    let parity = 0;
    while (p !== 0) {
      parity ^= p & 1;
      p >>>= 1;
    }
    assert.equal(x[i], parity ? -1 : 1);
  }
});

test('non-power-of-two lengths and bad ranges throw', () => {
  const x = new Float32Array(16);
  for (const n of [0, 3, 6, 12, -4, 2.5]) {
    assert.throws(() => fwht(x, 0, n, 1), /power of two/);
  }
  assert.throws(() => hadamardRows(x, 1, 12), /power of two/);
  assert.throws(() => fwht(x, 10, 8, 1), /outside/);
});
