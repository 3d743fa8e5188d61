/**
 * Exhaustive and reference-checked tests of the bf16, f16 and e4m3fn codecs.
 *
 * The reference rounding is computed differently from the implementation: it takes the sorted
 * table of representable magnitudes (from the decoders), finds the two neighbours of |x| by
 * binary search, and picks the nearer one, ties to the even code (= even mantissa).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16ToF32,
  f32ToBf16,
  decodeBf16,
  encodeBf16,
  f16ToF32,
  f32ToF16,
  decodeF16,
  encodeF16,
  E4M3_MAX,
  E4M3_TABLE,
  e4m3ToF32,
  f32ToE4m3,
  decodeE4m3,
  encodeE4m3,
} from '../../src/numerics/index.js';
import { Rng } from '../../src/generate/sampler.js';

import { bitsToF32, f32Bits } from '../helpers/bits.js';

/** Next float32 above a positive finite float32 (by bit pattern). */
function nextUp(x: number): number {
  return bitsToF32(f32Bits(x) + 1);
}

/** Next float32 below a positive non-zero float32. */
function nextDown(x: number): number {
  return bitsToF32(f32Bits(x) - 1);
}

/** Seeded uniform 32-bit integers. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.nextU32();
}

/** Description of a format for the reference rounding. */
interface Format {
  name: string;
  /** Magnitudes of codes 0..maxCode plus one virtual "next step" value past the max. */
  values: Float64Array;
  maxCode: number;
  signBit: number;
  /** Code returned for a magnitude that rounds past the max (and for Inf), without sign. */
  overflowCode: number;
  decode: (code: number) => number;
  encode: (x: number) => number;
  isNaNCode: (code: number) => boolean;
}

function makeFormat(
  name: string,
  maxCode: number,
  nextValue: number,
  signBit: number,
  overflowCode: number,
  decode: (code: number) => number,
  encode: (x: number) => number,
  isNaNCode: (code: number) => boolean,
): Format {
  const values = new Float64Array(maxCode + 2);
  for (let k = 0; k <= maxCode; k++) {
    values[k] = decode(k);
    if (k > 0) {
      assert.ok(values[k] > values[k - 1], `${name}: decode table not increasing at ${k}`);
    }
  }
  values[maxCode + 1] = nextValue;
  return { name, values, maxCode, signBit, overflowCode, decode, encode, isNaNCode };
}

/** Reference RNE rounding of a float32 value to a code (NaN handled by the caller). */
function refRound(fmt: Format, x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? fmt.signBit : 0;
  const a = Math.abs(x);
  const v = fmt.values;
  const last = fmt.maxCode + 1;
  if (a >= v[last]) {
    return sign | fmt.overflowCode;
  }
  // Largest k with v[k] <= a.
  let lo = 0;
  let hi = last;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (v[mid] <= a) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  let k = lo;
  if (v[k] !== a) {
    const below = a - v[k];
    const above = v[k + 1] - a;
    if (above < below || (above === below && (k & 1) === 1)) {
      k = k + 1;
    }
  }
  if (k === last) {
    return sign | fmt.overflowCode;
  }
  return sign | k;
}

const BF16 = makeFormat('bf16', 0x7f7f, 2 ** 128, 0x8000, 0x7f80, bf16ToF32, f32ToBf16, (c) => (c & 0x7fff) > 0x7f80);
const F16 = makeFormat('f16', 0x7bff, 65536, 0x8000, 0x7c00, f16ToF32, f32ToF16, (c) => (c & 0x7fff) > 0x7c00);
const E4M3_SAT = makeFormat('e4m3 sat', 0x7e, 480, 0x80, 0x7e, e4m3ToF32, (x) => f32ToE4m3(x, true), (c) => (c & 0x7f) === 0x7f);
const E4M3_NOSAT = makeFormat('e4m3 nosat', 0x7e, 480, 0x80, 0x7f, e4m3ToF32, (x) => f32ToE4m3(x, false), (c) => (c & 0x7f) === 0x7f);
const FORMATS = [BF16, F16, E4M3_SAT, E4M3_NOSAT];

/** Check one float32 input against the reference; returns an error message or null. */
function checkOne(fmt: Format, x: number): string | null {
  const got = fmt.encode(x);
  if (Number.isNaN(x)) {
    return fmt.isNaNCode(got) ? null : `${fmt.name}: NaN encoded to non-NaN 0x${got.toString(16)}`;
  }
  const want = refRound(fmt, x);
  if (got !== want) {
    return `${fmt.name}: x=${x} (bits 0x${f32Bits(x).toString(16)}) got 0x${got.toString(16)} want 0x${want.toString(16)}`;
  }
  return null;
}

for (const fmt of [BF16, F16]) {
  test(`${fmt.name}: all 65536 codes decode and re-encode to themselves`, () => {
    for (let c = 0; c < 65536; c++) {
      const x = fmt.decode(c);
      const back = fmt.encode(x);
      if (fmt.isNaNCode(c)) {
        assert.ok(Number.isNaN(x), `code 0x${c.toString(16)} should decode to NaN`);
        assert.ok(fmt.isNaNCode(back), `NaN code 0x${c.toString(16)} re-encoded to 0x${back.toString(16)}`);
        assert.equal(back & fmt.signBit, c & fmt.signBit, 'NaN keeps its sign');
      } else {
        assert.ok(Object.is(Math.fround(x), x), 'decoded value is a float32');
        assert.equal(back, c, `code 0x${c.toString(16)} -> ${x} -> 0x${back.toString(16)}`);
      }
    }
  });
}

test('e4m3: all 256 codes decode and re-encode to themselves (both saturate modes)', () => {
  for (let c = 0; c < 256; c++) {
    const x = e4m3ToF32(c);
    assert.ok(Object.is(x, E4M3_TABLE[c]) || (Number.isNaN(x) && Number.isNaN(E4M3_TABLE[c])));
    for (const sat of [true, false]) {
      const back = f32ToE4m3(x, sat);
      if ((c & 0x7f) === 0x7f) {
        assert.ok(Number.isNaN(x), `code 0x${c.toString(16)} should be NaN`);
        assert.equal(back & 0x7f, 0x7f, 'NaN re-encodes to NaN');
      } else {
        assert.ok(Number.isFinite(x));
        assert.equal(back, c, `code 0x${c.toString(16)} -> ${x} -> 0x${back.toString(16)}`);
      }
    }
  }
});

test('e4m3: decode table hand values', () => {
  assert.equal(E4M3_TABLE.length, 256);
  assert.equal(E4M3_MAX, 448);
  assert.equal(e4m3ToF32(0x00), 0);
  assert.ok(Object.is(e4m3ToF32(0x80), -0));
  assert.equal(e4m3ToF32(0x01), 2 ** -9);
  assert.equal(e4m3ToF32(0x07), 7 * 2 ** -9);
  assert.equal(e4m3ToF32(0x08), 2 ** -6);
  assert.equal(e4m3ToF32(0x38), 1);
  assert.equal(e4m3ToF32(0x3c), 1.5);
  assert.equal(e4m3ToF32(0x7e), 448);
  assert.equal(e4m3ToF32(0xfe), -448);
  assert.equal(e4m3ToF32(0x77), 240);
  assert.ok(Number.isNaN(e4m3ToF32(0x7f)));
  assert.ok(Number.isNaN(e4m3ToF32(0xff)));
});

test('bf16 / f16: hand values and specials', () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(-2), 0xc000);
  assert.equal(f32ToBf16(-0), 0x8000);
  assert.equal(f32ToBf16(Infinity), 0x7f80);
  assert.equal(f32ToBf16(-Infinity), 0xff80);
  assert.equal(f32ToBf16(NaN), 0x7fc0);
  assert.equal(f32ToBf16(bitsToF32(0xffc00001)), 0xffc0, 'negative NaN keeps its sign');
  assert.equal(f32ToBf16(bitsToF32(0x7f800001)), 0x7fc0, 'signalling NaN becomes quiet, not Inf');
  assert.equal(f32ToBf16(bitsToF32(0x7f7fffff)), 0x7f80, 'max float32 rounds to Inf');
  assert.equal(f32ToBf16(bitsToF32(0x7f7f7fff)), 0x7f7f);
  assert.equal(f32ToBf16(bitsToF32(0x7f7f8000)), 0x7f80, 'tie at the top goes to even = Inf');
  // The input is rounded to float32 first: 1 + 2^-8 + 2^-30 becomes the tie 1 + 2^-8 -> 1.0.
  assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -30), 0x3f80);
  assert.equal(f32ToBf16(1 + 2 ** -8 + 2 ** -20), 0x3f81);

  assert.equal(f32ToF16(1), 0x3c00);
  assert.equal(f32ToF16(-0), 0x8000);
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(65519), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00, 'the tie above max goes to even = Inf');
  assert.equal(f32ToF16(-1e6), 0xfc00);
  assert.equal(f32ToF16(Infinity), 0x7c00);
  assert.equal(f32ToF16(-Infinity), 0xfc00);
  assert.ok((f32ToF16(NaN) & 0x7fff) > 0x7c00);
  assert.equal(f32ToF16(2 ** -24), 0x0001);
  assert.equal(f32ToF16(2 ** -25), 0x0000, '2^-25 is a tie between 0 and 2^-24 -> 0');
  assert.equal(f32ToF16(nextUp(2 ** -25)), 0x0001);
  assert.equal(f32ToF16(-(2 ** -25)), 0x8000);
  assert.equal(f32ToF16(3 * 2 ** -25), 0x0002, 'tie between 1 and 2 subnormal units -> 2');
  assert.equal(f32ToF16(bitsToF32(0x00000001)), 0x0000, 'float32 subnormal underflows');
  assert.equal(f32ToF16(2 ** -14 - 2 ** -25), 0x0400, 'rounds up into the smallest normal');
  // Single rounding: 1 + 2^-11 + 2^-24 is just above a tie; it must round up.
  assert.equal(f32ToF16(1 + 2 ** -11 + 2 ** -23), 0x3c01);
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00);
});

test('e4m3: boundaries, subnormals, specials', () => {
  const up464 = nextUp(464);
  for (const sat of [true, false]) {
    const over = sat ? 0x7e : 0x7f;
    assert.equal(f32ToE4m3(448, sat), 0x7e);
    assert.equal(f32ToE4m3(-448, sat), 0xfe);
    assert.equal(f32ToE4m3(464, sat), 0x7e, '464 is a tie between 448 (even) and 480 -> 448');
    assert.equal(f32ToE4m3(-464, sat), 0xfe);
    assert.equal(f32ToE4m3(up464, sat), over);
    assert.equal(f32ToE4m3(-up464, sat), 0x80 | over);
    assert.equal(f32ToE4m3(nextDown(464), sat), 0x7e);
    assert.equal(f32ToE4m3(1e9, sat), over);
    assert.equal(f32ToE4m3(Infinity, sat), over);
    assert.equal(f32ToE4m3(-Infinity, sat), 0x80 | over);
    assert.equal(f32ToE4m3(NaN, sat) & 0x7f, 0x7f);
    assert.equal(f32ToE4m3(bitsToF32(0xffc00000), sat), 0xff);
    assert.equal(f32ToE4m3(0, sat), 0x00);
    assert.equal(f32ToE4m3(-0, sat), 0x80);
    assert.equal(f32ToE4m3(2 ** -10, sat), 0x00, '2^-10 is a tie -> 0');
    assert.equal(f32ToE4m3(-(2 ** -10), sat), 0x80, 'negative tie keeps the sign');
    assert.equal(f32ToE4m3(nextUp(2 ** -10), sat), 0x01);
    assert.equal(f32ToE4m3(nextDown(2 ** -10), sat), 0x00);
    assert.equal(f32ToE4m3(-nextUp(2 ** -10), sat), 0x81);
    assert.equal(f32ToE4m3(1e-30, sat), 0x00);
    assert.equal(f32ToE4m3(-1e-30, sat), 0x80);
    assert.equal(f32ToE4m3(3 * 2 ** -10, sat), 0x02, 'tie between 1 and 2 units -> 2');
    assert.equal(f32ToE4m3(5 * 2 ** -10, sat), 0x02, 'tie between 2 and 3 units -> 2');
    assert.equal(f32ToE4m3(15 * 2 ** -10, sat), 0x08, 'tie between 7 units and 2^-6 -> 2^-6');
    assert.equal(f32ToE4m3(2 ** -6, sat), 0x08);
    assert.equal(f32ToE4m3(1.0625, sat), 0x38, 'tie 1.0625 -> 1 (even)');
    assert.equal(f32ToE4m3(1.1875, sat), 0x3a, 'tie 1.1875 -> 1.25 (even)');
  }
});

for (const fmt of FORMATS) {
  test(`${fmt.name}: midpoints and their float32 neighbours match the reference`, () => {
    const v = fmt.values;
    let checked = 0;
    for (let k = 0; k <= fmt.maxCode; k++) {
      const mid = (v[k] + v[k + 1]) / 2;
      assert.equal(Math.fround(mid), mid, `${fmt.name}: midpoint ${mid} is a float32`);
      const probes = mid === 0 ? [mid] : [mid, nextUp(mid), nextDown(mid)];
      for (const p of probes) {
        for (const x of [p, -p]) {
          const err = checkOne(fmt, x);
          if (err !== null) {
            assert.fail(err);
          }
          checked++;
        }
      }
    }
    assert.ok(checked > 6 * fmt.maxCode - 10);
  });

  test(`${fmt.name}: random float32 bit patterns match the reference`, () => {
    const next = rng(0x5eed + fmt.maxCode + fmt.overflowCode);
    // Exponent window around the format's range, so most samples are interesting.
    const expLo = fmt.maxCode > 0xff ? 0 : 127 - 14;
    const expHi = fmt.maxCode > 0xff ? 255 : 127 + 10;
    for (let i = 0; i < 200_000; i++) {
      const bits = next();
      const err = checkOne(fmt, bitsToF32(bits));
      if (err !== null) {
        assert.fail(err);
      }
      // Same mantissa and sign, exponent inside the window.
      const e = expLo + (next() % (expHi - expLo + 1));
      const windowed = ((bits & 0x807fffff) | (e << 23)) >>> 0;
      const err2 = checkOne(fmt, bitsToF32(windowed));
      if (err2 !== null) {
        assert.fail(err2);
      }
    }
  });
}

test('bulk decode/encode match the scalar functions (including offset views)', () => {
  const all = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) {
    all[i] = i;
  }
  const db = decodeBf16(all);
  const df = decodeF16(all);
  for (let i = 0; i < 65536; i++) {
    assert.ok(Object.is(db[i], Math.fround(bf16ToF32(i))) || Number.isNaN(bf16ToF32(i)));
    assert.ok(Object.is(df[i], Math.fround(f16ToF32(i))) || Number.isNaN(f16ToF32(i)));
  }
  const next = rng(7);
  const backing = new Float32Array(50_001);
  const src = backing.subarray(1); // non-zero byteOffset
  const srcBits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    srcBits[i] = next();
  }
  const eb = encodeBf16(src);
  const ef = encodeF16(src, new Uint16Array(src.length));
  const e8 = encodeE4m3(src);
  const e8n = encodeE4m3(src, undefined, false);
  for (let i = 0; i < src.length; i++) {
    assert.equal(eb[i], f32ToBf16(src[i]));
    assert.equal(ef[i], f32ToF16(src[i]));
    assert.equal(e8[i], f32ToE4m3(src[i], true));
    assert.equal(e8n[i], f32ToE4m3(src[i], false));
  }
  const codes = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    codes[i] = i;
  }
  const out = new Float32Array(300);
  const d8 = decodeE4m3(codes, out.subarray(10));
  for (let i = 0; i < 256; i++) {
    assert.ok(Object.is(out[10 + i], E4M3_TABLE[i]) || Number.isNaN(E4M3_TABLE[i]));
    assert.equal(d8.byteOffset, 40);
  }
  const partial = new Float32Array(4);
  const dbOff = decodeBf16(new Uint16Array([0x3f80, 0xc000]), partial.subarray(2));
  assert.deepEqual(Array.from(partial), [0, 0, 1, -2]);
  assert.equal(dbOff.length, 2);
  assert.throws(() => decodeBf16(new Uint16Array(3), new Float32Array(2)), /too short/);
});
