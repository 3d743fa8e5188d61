/**
 * Golden checks of the numeric kernels against the PyTorch reference fixture
 * shared/fixtures/fp8-kernels/expected.safetensors (see README.txt there).
 *
 * Exact checks compare bit patterns; tolerance checks print the observed max error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import {
  E4M3_TABLE,
  actQuant,
  dequantBlockWeight,
  encodeBf16,
  hadamardRows,
  type ScaleFormat,
} from '../../src/numerics/index.js';

const FIXTURE_DIR = new URL('../../../shared/fixtures/fp8-kernels/', import.meta.url);
const FIXTURE_PATH = fileURLToPath(new URL('expected.safetensors', FIXTURE_DIR));
const SKIP = existsSync(FIXTURE_PATH) ? false : `fixture not found: ${FIXTURE_PATH}`;

/** Open the fixture, run fn, close it again. */
function withFixture(fn: (f: SafetensorsFile) => void): void {
  const f = SafetensorsFile.open(FIXTURE_PATH);
  try {
    fn(f);
  } finally {
    f.close();
  }
}

function shapeOf(f: SafetensorsFile, name: string): number[] {
  const info = f.tensors.get(name);
  assert.ok(info !== undefined, `fixture tensor ${name} is missing`);
  return info.shape;
}

/** Number of positions whose float32 bit patterns differ. */
function countBitDiffs(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let diffs = 0;
  for (let i = 0; i < a.length; i++) {
    if (ua[i] !== ub[i]) {
      diffs++;
    }
  }
  return diffs;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]));
  }
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
  }
  return m;
}

const FORMATS: ScaleFormat[] = ['none', 'ue8m0'];

test('act_quant: codes and scales are bit-exact (f32 and bf16 inputs, both formats)', { skip: SKIP }, () => {
  withFixture((f) => {
    for (const src of ['f32', 'bf16']) {
      const [rows, cols] = shapeOf(f, `aq_x_${src}`);
      const x = f.readF32(`aq_x_${src}`);
      for (const fmt of FORMATS) {
        const { q, s } = actQuant(x, rows, cols, 128, fmt);
        const wantQ = f.read(`aq_${fmt}_${src}_y`) as Uint8Array;
        const wantS = f.readF32(`aq_${fmt}_${src}_s`);
        let codeDiffs = 0;
        for (let i = 0; i < q.length; i++) {
          if (q[i] !== wantQ[i]) {
            codeDiffs++;
          }
        }
        const scaleDiffs = countBitDiffs(s, wantS);
        console.log(`act_quant ${src} ${fmt}: ${codeDiffs} code diffs, ${scaleDiffs} scale diffs`);
        assert.equal(codeDiffs, 0, `aq_${fmt}_${src}_y codes`);
        assert.equal(scaleDiffs, 0, `aq_${fmt}_${src}_s scales`);
      }
    }
  });
});

test('gemm_w_dequant is bit-exact', { skip: SKIP }, () => {
  withFixture((f) => {
    const [outDim, inDim] = shapeOf(f, 'gemm_w');
    const w8 = f.read('gemm_w') as Uint8Array;
    const got = dequantBlockWeight(w8, f.readF32('gemm_w_scale_inv'), outDim, inDim);
    assert.equal(countBitDiffs(got, f.readF32('gemm_w_dequant')), 0);
  });
});

/**
 * fp8_gemm(act_quant(x)) with the 128-wide block dot computed by `dot`, then
 * acc += float32(dot * float32(sx * sw)) in float32.
 */
function fp8Linear(
  f: SafetensorsFile,
  fmt: ScaleFormat,
  blockDot: (xq: Uint8Array, xOff: number, w8: Uint8Array, wOff: number) => number,
): { out: Float32Array; rows: number; outDim: number } {
  const [rows, inDim] = shapeOf(f, 'gemm_x');
  const [outDim] = shapeOf(f, 'gemm_w');
  const w8 = f.read('gemm_w') as Uint8Array;
  const sw = f.readF32('gemm_w_scale_inv');
  const { q, s } = actQuant(f.readF32('gemm_x'), rows, inDim, 128, fmt);
  const kBlocks = Math.ceil(inDim / 128);
  const out = new Float32Array(rows * outDim);
  for (let m = 0; m < rows; m++) {
    for (let n = 0; n < outDim; n++) {
      let acc = 0;
      for (let j = 0; j < kBlocks; j++) {
        const dot = blockDot(q, m * inDim + j * 128, w8, n * inDim + j * 128);
        const scale = Math.fround(s[m * kBlocks + j] * sw[Math.floor(n / 128) * kBlocks + j]);
        acc = Math.fround(acc + Math.fround(dot * scale));
      }
      out[m * outDim + n] = acc;
    }
  }
  return { out, rows, outDim };
}

/** Exact block dot in float64 (every product of two e4m3 values and their sum fit), rounded to f32. */
function exactDot(xq: Uint8Array, xOff: number, w8: Uint8Array, wOff: number): number {
  let dot = 0;
  for (let k = 0; k < 128; k++) {
    dot += E4M3_TABLE[xq[xOff + k]] * E4M3_TABLE[w8[wOff + k]];
  }
  return Math.fround(dot);
}

/** Block dot accumulated in float32 in k order (what the reference's emulation does). */
function sequentialF32Dot(xq: Uint8Array, xOff: number, w8: Uint8Array, wOff: number): number {
  let dot = 0;
  for (let k = 0; k < 128; k++) {
    dot = Math.fround(dot + E4M3_TABLE[xq[xOff + k]] * E4M3_TABLE[w8[wOff + k]]);
  }
  return dot;
}

test('gemm_out: fp8 linear within 1e-5 relative (exact block dots)', { skip: SKIP }, () => {
  withFixture((f) => {
    for (const fmt of FORMATS) {
      const want = f.readF32(`gemm_out_${fmt}`);
      const { out } = fp8Linear(f, fmt, exactDot);
      const err = maxAbsDiff(out, want);
      const ref = maxAbs(want);
      const diffs = countBitDiffs(out, want);
      console.log(`gemm_out_${fmt} (exact dots): max abs err ${err}, relative ${err / ref}, ${diffs}/${out.length} not bit-exact`);
      assert.ok(err <= 1e-5 * ref, `gemm_out_${fmt}: ${err} > 1e-5 * ${ref}`);
    }
  });
});

test('gemm_out: bit-exact with float32 sequential block dots', { skip: SKIP }, () => {
  withFixture((f) => {
    for (const fmt of FORMATS) {
      const want = f.readF32(`gemm_out_${fmt}`);
      const { out } = fp8Linear(f, fmt, sequentialF32Dot);
      const diffs = countBitDiffs(out, want);
      console.log(`gemm_out_${fmt} (f32 sequential dots): ${diffs}/${out.length} not bit-exact`);
      assert.equal(diffs, 0);
    }
  });
});

test('index_out: fp8_index within 1e-6 relative', { skip: SKIP }, () => {
  withFixture((f) => {
    const [batch, nq, heads, dim] = shapeOf(f, 'index_q8');
    const nk = shapeOf(f, 'index_k8')[1];
    const q8 = f.read('index_q8') as Uint8Array;
    const k8 = f.read('index_k8') as Uint8Array;
    const qw = f.readF32('index_qw');
    const ks = f.readF32('index_ks');
    const want = f.readF32('index_out');
    assert.deepEqual(shapeOf(f, 'index_out'), [batch, nq, nk]);
    const out = new Float32Array(batch * nq * nk);
    for (let b = 0; b < batch; b++) {
      for (let m = 0; m < nq; m++) {
        for (let n = 0; n < nk; n++) {
          let sum = 0;
          for (let h = 0; h < heads; h++) {
            const qOff = ((b * nq + m) * heads + h) * dim;
            const kOff = (b * nk + n) * dim;
            let dot = 0;
            for (let d = 0; d < dim; d++) {
              dot += E4M3_TABLE[q8[qOff + d]] * E4M3_TABLE[k8[kOff + d]];
            }
            sum += qw[(b * nq + m) * heads + h] * Math.max(dot, 0);
          }
          out[(b * nq + m) * nk + n] = ks[b * nk + n] * sum;
        }
      }
    }
    const err = maxAbsDiff(out, want);
    const ref = maxAbs(want);
    const diffs = countBitDiffs(out, want);
    console.log(`index_out: max abs err ${err}, relative ${err / ref}, ${diffs}/${out.length} not bit-exact`);
    assert.ok(err <= 1e-6 * ref, `index_out: ${err} > 1e-6 * ${ref}`);
  });
});

test('Hadamard: had_y_f32 and had_y_bf16', { skip: SKIP }, () => {
  withFixture((f) => {
    const [rows, n] = shapeOf(f, 'had_x_f32');
    const y = f.readF32('had_x_f32');
    hadamardRows(y, rows, n);
    const want = f.readF32('had_y_f32');
    const err = maxAbsDiff(y, want);
    const ref = maxAbs(want);
    const diffs = countBitDiffs(y, want);
    console.log(`had_y_f32: max abs err ${err}, relative ${err / ref}, ${diffs}/${y.length} not bit-exact`);
    assert.ok(err <= 1e-6 * ref, `had_y_f32: ${err} > 1e-6 * ${ref}`);

    const [rowsB, nB] = shapeOf(f, 'had_x_bf16');
    const yb = f.readF32('had_x_bf16');
    hadamardRows(yb, rowsB, nB);
    const got = encodeBf16(yb);
    const wantB = f.read('had_y_bf16') as Uint16Array;
    let bfDiffs = 0;
    let maxCodeDiff = 0;
    for (let i = 0; i < got.length; i++) {
      if (got[i] !== wantB[i]) {
        bfDiffs++;
        // Same sign: adjacent codes are one ulp apart. Zero of either sign counts as equal-ish.
        const sameSign = (got[i] & 0x8000) === (wantB[i] & 0x8000);
        const d = sameSign ? Math.abs(got[i] - wantB[i]) : (got[i] & 0x7fff) + (wantB[i] & 0x7fff);
        maxCodeDiff = Math.max(maxCodeDiff, d);
      }
    }
    console.log(`had_y_bf16: ${bfDiffs}/${got.length} differ, max ${maxCodeDiff} bf16 ulp`);
    assert.ok(maxCodeDiff <= 1, `had_y_bf16 differs by ${maxCodeDiff} ulp`);
  });
});

test('RoPE: interleaved and half-split rotations within 1e-6', { skip: SKIP }, () => {
  withFixture((f) => {
    const [batch, seq, heads, dim] = shapeOf(f, 'rope_x');
    const half = dim / 2;
    const x = f.readF32('rope_x');
    const cos = f.readF32('rope_cos');
    const sin = f.readF32('rope_sin');
    assert.deepEqual(shapeOf(f, 'rope_cos'), [seq, half]);
    const inter = new Float32Array(x.length);
    const split = new Float32Array(x.length);
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < seq; t++) {
        for (let h = 0; h < heads; h++) {
          const off = ((b * seq + t) * heads + h) * dim;
          for (let i = 0; i < half; i++) {
            const c = cos[t * half + i];
            const s = sin[t * half + i];
            // Interleaved pairs (x[2i], x[2i+1]).
            const a = x[off + 2 * i];
            const bb = x[off + 2 * i + 1];
            inter[off + 2 * i] = Math.fround(Math.fround(a * c) - Math.fround(bb * s));
            inter[off + 2 * i + 1] = Math.fround(Math.fround(a * s) + Math.fround(bb * c));
            // Half-split pairs (x[i], x[i + half]).
            const u = x[off + i];
            const v = x[off + i + half];
            split[off + i] = Math.fround(Math.fround(u * c) - Math.fround(v * s));
            split[off + i + half] = Math.fround(Math.fround(v * c) + Math.fround(u * s));
          }
        }
      }
    }
    for (const [name, got] of [['rope_out_interleaved', inter], ['rope_out_half', split]] as const) {
      const want = f.readF32(name);
      const err = maxAbsDiff(got, want);
      const diffs = countBitDiffs(got, want);
      console.log(`${name}: max abs err ${err}, ${diffs}/${got.length} not bit-exact`);
      assert.ok(err <= 1e-6, `${name}: ${err} > 1e-6`);
    }
  });
});

test('RoPE: bit-exact with the FMA-contracted complex multiply', { skip: SKIP }, () => {
  // out0 = fma(a, c, -float32(b*s)), out1 = fma(a, s, float32(b*c)): the GPU contracts one
  // product of each pair into an FMA. The double expression emulates the FMA here.
  withFixture((f) => {
    const [batch, seq, heads, dim] = shapeOf(f, 'rope_x');
    const half = dim / 2;
    const x = f.readF32('rope_x');
    const cos = f.readF32('rope_cos');
    const sin = f.readF32('rope_sin');
    const inter = new Float32Array(x.length);
    const split = new Float32Array(x.length);
    for (let row = 0; row < batch * seq * heads; row++) {
      const t = Math.floor(row / heads) % seq;
      const off = row * dim;
      for (let i = 0; i < half; i++) {
        const c = cos[t * half + i];
        const s = sin[t * half + i];
        const a = x[off + 2 * i];
        const b = x[off + 2 * i + 1];
        inter[off + 2 * i] = a * c - Math.fround(b * s);
        inter[off + 2 * i + 1] = a * s + Math.fround(b * c);
        const u = x[off + i];
        const v = x[off + i + half];
        split[off + i] = u * c - Math.fround(v * s);
        split[off + i + half] = u * s + Math.fround(v * c);
      }
    }
    const di = countBitDiffs(inter, f.readF32('rope_out_interleaved'));
    const dh = countBitDiffs(split, f.readF32('rope_out_half'));
    console.log(`RoPE with FMA: interleaved ${di}/${x.length}, half ${dh}/${x.length} not bit-exact`);
    assert.equal(di, 0);
    assert.equal(dh, 0);
  });
});
