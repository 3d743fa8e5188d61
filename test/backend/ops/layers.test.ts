/**
 * Backend ops vs naive references: embedding, rmsNorm, layerNorm, linear (f32, bf16, FP8 with and
 * without act-quant), headMatmul, rope and hadamard. The case structure, tolerances and the backends
 * run are in ./harness.ts.
 */
import type { Backend, HostWeight, ScaleFormat } from '../../../src/backend/backend.js';
import {
  type ErrorCase,
  type OpCase,
  type Tol,
  TOL,
  fp8Weight,
  meta,
  randomBf16,
  randomCodes,
  readAll,
  refDequant,
  refLinear,
  Rng,
  runCases,
} from './harness.js';

const cases: OpCase[] = [];
const errorCases: ErrorCase[] = [];

// ---- layers ---------------------------------------------------------------------------------

{
  const r = new Rng(303);
  const ids = Int32Array.of(3, 0, 9, 3, 7);
  const tables: [string, HostWeight][] = [
    ['f32', { format: 'f32', outDim: 10, inDim: 12, data: r.normals(120) }],
    ['bf16', { format: 'bf16', outDim: 10, inDim: 12, data: randomBf16(r, 120) }],
    [
      'fp8 (block [4, 64], partial blocks)',
      { format: 'fp8', outDim: 10, inDim: 160, data: randomCodes(r, 1600, 50), scaleInv: r.uniforms(9, 0.001, 0.1), block: [4, 64] },
    ],
  ];
  for (const [label, table] of tables) {
    cases.push({
      name: `embedding: ${label} table`,
      async run(b) {
        const t = b.embedding(b.uploadWeight(table), b.upload(ids, [ids.length]));
        const [rt] = await readAll(b, t);
        return [rt!, meta(t)];
      },
      reference() {
        const real = refDequant(table);
        const out: number[] = [];
        for (const id of ids) for (let j = 0; j < table.inDim; j++) out.push(real[id * table.inDim + j]!);
        return [out, [0, ids.length * table.inDim, ids.length, table.inDim]];
      },
      tol: [TOL.matmul, TOL.exact],
    });
  }

  errorCases.push({
    name: 'embedding: a token id outside the vocabulary throws',
    run: async (b) => b.read(b.embedding(b.uploadWeight(tables[0]![1]), b.upload(Int32Array.of(3, 10), [2]))),
    error: /embedding: token id 10 is outside the vocabulary 0\.\.9/,
    // The ids are on the device: the kernel reads a zero row for them.
    gpu: { does: 'zeros', expect: () => [[...tables[0]![1].data.subarray(36, 48), ...new Array<number>(12).fill(0)]] },
  });

  const xn = r.normals(2 * 3 * 48, 2);
  const wn = r.normals(48, 0.1, 1);
  const eps = 1e-6;
  cases.push({
    name: 'rmsNorm over the last dim of [2, 3, 48]',
    run: async (b) => readAll(b, b.rmsNorm(b.upload(xn, [2, 3, 48]), b.upload(wn, [48]), eps)),
    reference() {
      const out = new Float64Array(xn.length);
      for (let row = 0; row < 6; row++) {
        let ss = 0;
        for (let j = 0; j < 48; j++) ss += xn[row * 48 + j]! ** 2;
        const inv = 1 / Math.sqrt(ss / 48 + eps);
        for (let j = 0; j < 48; j++) out[row * 48 + j] = xn[row * 48 + j]! * inv * wn[j]!;
      }
      return [out];
    },
    tol: TOL.norm,
  });
  const xl = r.normals(5 * 32, 1.5, 3); // mean 3: the centring matters
  const wl = r.normals(32, 0.2, 1);
  const bl = r.normals(32, 0.5);
  cases.push({
    name: 'layerNorm with weight and bias, rows with a large mean',
    run: async (b) => readAll(b, b.layerNorm(b.upload(xl, [5, 32]), b.upload(wl, [32]), b.upload(bl, [32]), eps)),
    reference() {
      const out = new Float64Array(xl.length);
      for (let row = 0; row < 5; row++) {
        let mean = 0;
        for (let j = 0; j < 32; j++) mean += xl[row * 32 + j]!;
        mean /= 32;
        let v = 0;
        for (let j = 0; j < 32; j++) v += (xl[row * 32 + j]! - mean) ** 2;
        v /= 32;
        for (let j = 0; j < 32; j++) out[row * 32 + j] = ((xl[row * 32 + j]! - mean) / Math.sqrt(v + eps)) * wl[j]! + bl[j]!;
      }
      return [out];
    },
    tol: TOL.norm,
  });
  errorCases.push({
    name: 'rmsNorm: a weight of another length than the rows throws',
    run: async (b) => b.read(b.rmsNorm(b.upload(xn, [2, 3, 48]), b.upload(wn.subarray(0, 47), [47]), eps)),
    error: /rmsNorm: weight has shape \[47\], expected \[48\]/,
  });
  errorCases.push({
    name: 'layerNorm: a bias of another length than the rows throws',
    run: async (b) => b.read(b.layerNorm(b.upload(xl, [5, 32]), b.upload(wl, [32]), b.upload(bl.subarray(0, 16), [16]), eps)),
    error: /layerNorm: bias has shape \[16\], expected \[32\]/,
  });
}

// ---- linear ---------------------------------------------------------------------------------

{
  const r = new Rng(404);
  const linCase = (label: string, x: Float32Array, rows: number, w: HostWeight, aq: ScaleFormat | null, tol: Tol): OpCase => ({
    name: `linear: ${label}`,
    async run(b) {
      const t = b.linear(b.upload(x, [rows, w.inDim]), b.uploadWeight(w), aq);
      const [rt] = await readAll(b, t);
      return [rt!, t.shape];
    },
    reference: () => [refLinear(x, rows, w, aq), [rows, w.outDim]],
    tol: [tol, TOL.exact],
  });
  cases.push(linCase('f32 weight [40, 24]', r.normals(3 * 24), 3, { format: 'f32', outDim: 40, inDim: 24, data: r.normals(960, 0.3) }, null, TOL.matmul));
  cases.push(linCase('bf16 weight [24, 40]', r.normals(4 * 40), 4, { format: 'bf16', outDim: 24, inDim: 40, data: randomBf16(r, 960) }, null, TOL.matmul));
  // FP8 weight [200, 320]: 128-blocks with a partial last block in both dims (2 × 3 scale tiles).
  const w8 = fp8Weight(r, 200, 320, 0.05, 'none');
  const x8 = r.normals(3 * 320);
  for (let j = 128; j < 256; j++) x8[320 + j] = 0; // row 1, block 1: all zero (amax floor)
  for (let j = 0; j < 128; j++) x8[640 + j] *= 100; // row 2, block 0: a large block
  for (let j = 256; j < 320; j++) x8[640 + j] *= 1e-3; // row 2, partial block: a small one
  cases.push(linCase('fp8 weight [200, 320] without act-quant (dequantized weight)', x8, 3, w8, null, TOL.fp8Gemm));
  cases.push(linCase("fp8 weight [200, 320], act-quant 'none' (block-scaled FP8 GEMM)", x8, 3, w8, 'none', TOL.fp8Gemm));
  cases.push(linCase("fp8 weight [200, 320], act-quant 'ue8m0' (block-scaled FP8 GEMM)", x8, 3, w8, 'ue8m0', TOL.fp8Gemm));
  const wUe = fp8Weight(r, 200, 320, 0.05, 'ue8m0');
  cases.push(linCase("fp8 weight with ue8m0 scales, act-quant 'ue8m0'", x8, 3, wUe, 'ue8m0', TOL.fp8Gemm));
  cases.push({
    name: 'linear: the FP8 GEMM differs from the dequantized product (the act-quant is really applied)',
    async run(b) {
      const x = b.upload(x8, [3, 320]);
      const w = b.uploadWeight(w8);
      const [plain, quant] = await readAll(b, b.linear(x, w, null), b.linear(x, w, 'ue8m0'));
      let maxDiff = 0;
      for (let i = 0; i < plain!.length; i++) maxDiff = Math.max(maxDiff, Math.abs(plain![i]! - quant![i]!));
      return [[maxDiff > 1e-3 ? 1 : 0]];
    },
    reference: () => [[1]],
    tol: TOL.exact,
  });
  errorCases.push({
    name: 'linear: input features ≠ weight inDim throws',
    run: async (b) => b.read(b.linear(b.upload(new Float32Array(20), [2, 10]), b.uploadWeight({ format: 'f32', outDim: 4, inDim: 12, data: new Float32Array(48) }), null)),
    error: /linear: input has 10 features, the weight \[4, 12\] expects 12/,
  });

  const T = 3;
  const H = 4;
  const n = 8;
  const m = 6;
  const hx = r.normals(T * H * n);
  const hw = r.normals(H * n * m, 0.5);
  const hwT = r.normals(H * m * n, 0.5);
  cases.push({
    name: 'headMatmul: x [3, 4, 8] · w [4, 8, 6] and · w[4, 6, 8]ᵀ',
    async run(b) {
      const x = b.upload(hx, [T, H, n]);
      const a = b.headMatmul(x, b.upload(hw, [H, n, m]), false);
      const c = b.headMatmul(x, b.upload(hwT, [H, m, n]), true);
      const [ra, rc] = await readAll(b, a, c);
      return [ra!, rc!, [...a.shape, ...c.shape]];
    },
    reference() {
      const a = new Float64Array(T * H * m);
      const c = new Float64Array(T * H * m);
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          for (let j = 0; j < m; j++) {
            let s = 0;
            let sT = 0;
            for (let i = 0; i < n; i++) {
              const xi = hx[(t * H + h) * n + i]!;
              s += xi * hw[(h * n + i) * m + j]!;
              sT += xi * hwT[(h * m + j) * n + i]!;
            }
            a[(t * H + h) * m + j] = s;
            c[(t * H + h) * m + j] = sT;
          }
        }
      }
      return [a, c, [T, H, m, T, H, m]];
    },
    tol: [TOL.matmul, TOL.matmul, TOL.exact],
  });
  errorCases.push({
    name: 'headMatmul: w of another inner size throws',
    run: async (b) => b.read(b.headMatmul(b.upload(hx, [T, H, n]), b.upload(hw, [H, m, n]), false)),
    error: /headMatmul: x \[3, 4, 8\] does not match w \[4, 6, 8\]/,
  });
}

// ---- rope and hadamard --------------------------------------------------------------------------

{
  const r = new Rng(505);
  const T = 4;
  const heads = 3;
  const dim = 24;
  const half = 8;
  const maxPos = 12;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const ang = p * 10000 ** ((-2 * i) / (2 * half));
      cos[p * half + i] = Math.cos(ang);
      sin[p * half + i] = Math.sin(ang);
    }
  }
  const positions = Int32Array.of(5, 0, 11, 3); // out of order
  const x = r.normals(T * heads * dim);
  /** Positions outside the table give NaN in the rotated dims (what the GPU kernel does; the CPU throws). */
  const refRope = (offset: number, interleaved: boolean, pos = positions): Float64Array => {
    const out = Float64Array.from(x);
    for (let t = 0; t < T; t++) {
      const p = pos[t]!;
      for (let h = 0; h < heads; h++) {
        const base = (t * heads + h) * dim + offset;
        for (let i = 0; i < half; i++) {
          const i0 = interleaved ? base + 2 * i : base + i;
          const i1 = interleaved ? base + 2 * i + 1 : base + i + half;
          // (a + ib) · (cos + i sin)
          const a = x[i0]!;
          const b = x[i1]!;
          const inTable = p >= 0 && p < maxPos;
          const c = inTable ? cos[p * half + i]! : NaN;
          const s = inTable ? sin[p * half + i]! : NaN;
          out[i0] = a * c - b * s;
          out[i1] = a * s + b * c;
        }
      }
    }
    return out;
  };
  for (const [offset, interleaved] of [
    [8, true],
    [8, false],
    [0, false],
    [0, true],
  ] as const) {
    cases.push({
      name: `rope: ${interleaved ? 'interleaved' : 'half-split'}, offset ${offset}, positions out of order`,
      run: async (b) =>
        readAll(b, b.rope(b.upload(x, [T, heads, dim]), b.upload(positions, [T]), b.upload(cos, [maxPos, half]), b.upload(sin, [maxPos, half]), offset, interleaved)),
      reference: () => [refRope(offset, interleaved)],
      tol: TOL.rope,
    });
  }
  const ropeOf = (b: Backend, pos: Int32Array, c = cos) =>
    b.read(b.rope(b.upload(x, [T, heads, dim]), b.upload(pos, [pos.length]), b.upload(c, [c.length / half, half]), b.upload(sin, [maxPos, half]), 8, true));
  const badPositions = Int32Array.of(5, 0, 12, 3);
  errorCases.push({
    name: 'rope: a position outside the cos/sin table throws',
    run: async (b) => ropeOf(b, badPositions),
    error: /rope: position 12 is outside the rotary table \(0\.\.11\)/,
    // The positions are on the device: that row's rotated dims are NaN, the rest as usual.
    gpu: { does: 'nan', expect: () => [refRope(8, true, badPositions)], tol: TOL.rope },
  });
  errorCases.push({
    name: 'rope: positions of another length than the rows throw',
    run: async (b) => ropeOf(b, Int32Array.of(5, 0, 1)),
    error: /rope: positions has shape \[3\], expected \[4\]/,
  });
  errorCases.push({
    name: 'rope: cos and sin tables of different shapes throw',
    run: async (b) => ropeOf(b, positions, cos.subarray(0, 11 * half)),
    error: /rope: second operand has shape \[12, 8\], expected \[11, 8\]/,
  });

  /** Sylvester matrix by the recursion H_2n = [[H, H], [H, −H]]. */
  const sylvester = (n: number): number[][] => {
    let h = [[1]];
    while (h.length < n) h = [...h.map((row) => [...row, ...row]), ...h.map((row) => [...row, ...row.map((v) => -v)])];
    return h;
  };
  for (const [rows, n] of [
    [3, 128],
    [2, 16],
  ] as const) {
    const hx = r.normals(rows * n);
    cases.push({
      name: `hadamard: [${rows}, ${n}] vs the explicit Sylvester matrix · n^-0.5`,
      run: async (b) => readAll(b, b.hadamard(b.upload(hx, [rows, n]))),
      reference() {
        const H = sylvester(n);
        const out = new Float64Array(rows * n);
        for (let t = 0; t < rows; t++) {
          for (let i = 0; i < n; i++) {
            let s = 0;
            for (let j = 0; j < n; j++) s += H[i]![j]! * hx[t * n + j]!;
            out[t * n + i] = s / Math.sqrt(n);
          }
        }
        return [out];
      },
      tol: TOL.hadamard,
    });
  }
  errorCases.push({
    name: 'hadamard: a last dimension that is not a power of two throws',
    run: async (b) => b.read(b.hadamard(b.upload(new Float32Array(2 * 24), [2, 24]))),
    error: /hadamard: last dimension 24 is not a power of two/,
  });
}

runCases('layers', cases, errorCases);
