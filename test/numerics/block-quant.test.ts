/** Tests of the block FP8 quantization helpers (ue8m0 scales, act_quant, block weights). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  E4M3_TABLE,
  FP8_INV_MAX,
  ue8m0Ceil,
  blockScale,
  actQuantRow,
  actQuant,
  dequantBlockWeight,
  quantizeBlockWeight,
  f32ToE4m3,
  type ScaleFormat,
} from '../../src/numerics/index.js';
import { seededUniform } from '../../src/generate/sampler.js';

import { bitsToF32, f32Bits } from '../helpers/bits.js';

const rng = seededUniform;

/** Spacing of the e4m3 grid at magnitude y (|y| <= 448). */
function e4m3Step(y: number): number {
  const a = Math.abs(y);
  if (a < 2 ** -6) {
    return 2 ** -9;
  }
  return 2 ** (Math.floor(Math.log2(a)) - 3);
}

test('FP8_INV_MAX is float32(1/448) and 448 * it is exactly 1 in float32', () => {
  assert.equal(FP8_INV_MAX, Math.fround(1 / 448));
  assert.equal(Math.fround(448 * FP8_INV_MAX), 1);
});

test('ue8m0Ceil: hand cases', () => {
  assert.equal(ue8m0Ceil(1), 1);
  assert.equal(ue8m0Ceil(2), 2);
  assert.equal(ue8m0Ceil(0.5), 0.5);
  assert.equal(ue8m0Ceil(2 ** -20), 2 ** -20);
  assert.equal(ue8m0Ceil(2 ** 127), 2 ** 127);
  assert.equal(ue8m0Ceil(bitsToF32(0x3f800001)), 2, '1 + ulp -> 2');
  assert.equal(ue8m0Ceil(bitsToF32(0x3f7fffff)), 1, '1 - ulp -> 1');
  assert.equal(ue8m0Ceil(3), 4);
  assert.equal(ue8m0Ceil(0.75), 1);
  assert.equal(ue8m0Ceil(300 / 448), 1);
  assert.equal(ue8m0Ceil(bitsToF32(0x7f7fffff)), Infinity, 'max float32 -> 2^128 = Inf');
  // Subnormals.
  assert.equal(ue8m0Ceil(2 ** -149), 2 ** -149);
  assert.equal(ue8m0Ceil(3 * 2 ** -149), 4 * 2 ** -149);
  assert.equal(ue8m0Ceil(2 ** -130), 2 ** -130);
  assert.equal(ue8m0Ceil(bitsToF32(0x00400001)), 2 ** -126, 'just above 2^-127 -> 2^-126');
  assert.equal(ue8m0Ceil(bitsToF32(0x007fffff)), 2 ** -126, 'largest subnormal -> 2^-126');
  assert.equal(ue8m0Ceil(2 ** -126), 2 ** -126);
  assert.equal(ue8m0Ceil(bitsToF32(0x00800001)), 2 ** -125);
  assert.equal(ue8m0Ceil(0), 0);
  assert.throws(() => ue8m0Ceil(-1), /positive/);
});

test('ue8m0Ceil: random float32 values give the smallest power of two >= s', () => {
  const next = rng(11);
  for (let i = 0; i < 100_000; i++) {
    const bits = Math.floor(next() * 0x7f800000); // positive finite (incl. subnormal)
    const s = bitsToF32(bits);
    if (s === 0) {
      continue;
    }
    const r = ue8m0Ceil(s);
    if (bits >= 0x7f000001) {
      assert.equal(r, Infinity);
      continue;
    }
    // r is a power of two: only one bit set in the float32 pattern (or exponent only).
    const rb = f32Bits(r);
    assert.ok((rb & 0x7fffff) === 0 || (rb >>> 23 === 0 && (rb & (rb - 1)) === 0), `not a power of 2: ${r}`);
    assert.ok(r >= s && r / 2 < s, `s=${s} r=${r}`);
  }
});

test('blockScale: minimum amax and exact powers of two', () => {
  const sMin = Math.fround(Math.fround(1e-4) * FP8_INV_MAX);
  assert.equal(blockScale(0, 'none'), sMin);
  assert.equal(blockScale(1e-7, 'none'), sMin);
  assert.equal(blockScale(Math.fround(1e-4), 'none'), sMin);
  assert.equal(blockScale(0, 'ue8m0'), 2 ** -22);
  for (let e = -20; e <= 20; e++) {
    const amax = 448 * 2 ** e;
    assert.equal(blockScale(amax, 'none'), 2 ** e, `amax 448*2^${e}`);
    assert.equal(blockScale(amax, 'ue8m0'), 2 ** e, `amax 448*2^${e} (ue8m0)`);
  }
  // A float32 multiply by float32(1/448), not a division by 448.
  const amax = Math.fround(300.123);
  assert.equal(blockScale(amax, 'none'), Math.fround(amax * Math.fround(1 / 448)));
  assert.equal(blockScale(300, 'ue8m0'), 1);
  assert.equal(blockScale(449, 'ue8m0'), 2);
});

test('actQuant: partial last block, scales per block, codes within half a step', () => {
  const rows = 3;
  const cols = 300; // blocks of 128, 128, 44
  const next = rng(3);
  const x = new Float32Array(rows * cols);
  for (let i = 0; i < x.length; i++) {
    x[i] = (next() * 2 - 1) * 2 ** Math.floor(next() * 8 - 4);
  }
  // Row 1: last block holds an exact 448*4 so its scale is exactly 4; everything else small.
  x[cols + 299] = -448 * 4;
  for (let j = 256; j < 299; j++) {
    x[cols + j] = 4 * E4M3_TABLE[j - 256]; // exact grid values times the scale
  }
  // Row 2: all zeros in the last block.
  for (let j = 256; j < cols; j++) {
    x[2 * cols + j] = 0;
  }
  for (const fmt of ['none', 'ue8m0'] as ScaleFormat[]) {
    const { q, s } = actQuant(x, rows, cols, 128, fmt);
    assert.equal(q.length, rows * cols);
    assert.equal(s.length, rows * 3);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < 3; b++) {
        let amax = 0;
        for (let j = b * 128; j < Math.min(cols, (b + 1) * 128); j++) {
          amax = Math.max(amax, Math.abs(x[r * cols + j]));
        }
        assert.equal(s[r * 3 + b], blockScale(amax, fmt), `row ${r} block ${b}`);
      }
      for (let j = 0; j < cols; j++) {
        const scale = s[r * 3 + Math.floor(j / 128)];
        const y = x[r * cols + j] / scale;
        const got = E4M3_TABLE[q[r * cols + j]];
        assert.ok(Math.abs(y) <= 448 * (1 + 1e-6));
        assert.ok(Math.abs(got - y) <= e4m3Step(y) / 2 + 1e-6 * Math.abs(y), `r${r} j${j}: ${got} vs ${y}`);
        assert.equal(q[r * cols + j], f32ToE4m3(Math.fround(x[r * cols + j] / scale)));
      }
    }
    assert.equal(s[1 * 3 + 2], 4);
    assert.equal(q[cols + 299], 0xfe);
    for (let j = 256; j < 299; j++) {
      assert.equal(q[cols + j], j - 256, 'exact grid values keep their codes');
    }
    const zeroScale = fmt === 'none' ? Math.fround(Math.fround(1e-4) * FP8_INV_MAX) : 2 ** -22;
    assert.equal(s[2 * 3 + 2], zeroScale);
    for (let j = 256; j < cols; j++) {
      assert.equal(q[2 * cols + j], 0);
    }
  }
});

test('actQuantRow: honours offsets and does not write outside its range', () => {
  const x = new Float32Array([9, 9, 1, -2, 3, 9]);
  const q = new Uint8Array(8).fill(0xaa);
  const s = new Float32Array(4).fill(-1);
  actQuantRow(x, 2, 3, 2, 'none', q, 3, s, 1);
  assert.deepEqual(Array.from(q.subarray(0, 3)), [0xaa, 0xaa, 0xaa]);
  assert.deepEqual(Array.from(q.subarray(6)), [0xaa, 0xaa]);
  assert.equal(s[0], -1);
  assert.equal(s[3], -1);
  assert.equal(s[1], blockScale(2, 'none'));
  assert.equal(s[2], blockScale(3, 'none'));
  assert.equal(q[4], 0xfe, '-2 is the block max -> -448');
  assert.equal(q[5], 0x7e, '3 alone in its block -> 448');
});

test('quantizeBlockWeight / dequantBlockWeight round trip (partial blocks)', () => {
  const outDim = 200;
  const inDim = 300;
  const next = rng(5);
  const w = new Float32Array(outDim * inDim);
  for (let i = 0; i < w.length; i++) {
    w[i] = (next() * 2 - 1) * 0.05 * (1 + 3 * next());
  }
  for (const fmt of ['none', 'ue8m0'] as ScaleFormat[]) {
    const { w8, scaleInv } = quantizeBlockWeight(w, outDim, inDim, fmt);
    assert.equal(scaleInv.length, 2 * 3);
    const deq = dequantBlockWeight(w8, scaleInv, outDim, inDim);
    let maxRatio = 0;
    for (let i = 0; i < outDim; i++) {
      for (let j = 0; j < inDim; j++) {
        const k = i * inDim + j;
        const scale = scaleInv[Math.floor(i / 128) * 3 + Math.floor(j / 128)];
        assert.equal(deq[k], Math.fround(E4M3_TABLE[w8[k]] * scale), 'dequant is the rounded product');
        const y = w[k] / scale;
        const bound = (e4m3Step(y) / 2) * scale * (1 + 1e-6);
        const err = Math.abs(deq[k] - w[k]);
        assert.ok(err <= bound, `(${i},${j}) err ${err} > ${bound}`);
        maxRatio = Math.max(maxRatio, err / ((e4m3Step(y) / 2) * scale));
      }
    }
    // Each block's scale comes from its own amax.
    for (let bi = 0; bi < 2; bi++) {
      for (let bj = 0; bj < 3; bj++) {
        let amax = 0;
        for (let i = bi * 128; i < Math.min(outDim, (bi + 1) * 128); i++) {
          for (let j = bj * 128; j < Math.min(inDim, (bj + 1) * 128); j++) {
            amax = Math.max(amax, Math.abs(w[i * inDim + j]));
          }
        }
        assert.equal(scaleInv[bi * 3 + bj], blockScale(amax, fmt));
      }
    }
    assert.ok(maxRatio <= 1 + 1e-6);
  }
});

test('dequantBlockWeight: hand example with a custom block size', () => {
  // 3x3 weight, block 2 -> scales [2, 2].
  const w8 = new Uint8Array([0x38, 0x40, 0xb8, 0x30, 0x00, 0x7e, 0x01, 0x3c, 0x80]);
  const scaleInv = new Float32Array([1, 2, 0.5, 0.25]);
  const out = dequantBlockWeight(w8, scaleInv, 3, 3, 2);
  assert.deepEqual(Array.from(out), [1, 2, -2, 0.5, 0, 896, 2 ** -10, 0.75, -0]);
  assert.throws(() => dequantBlockWeight(w8, new Float32Array(3), 3, 3, 2), /scale_inv/);
});
