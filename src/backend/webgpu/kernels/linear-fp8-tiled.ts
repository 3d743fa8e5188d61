/**
 * linear with block-scaled FP8 weights, tiled over outputs and rows (the default where the K block
 * bi ≤ 128): a workgroup takes 32 outputs × RT rows (RT = 4, 8 or 16, from the row count), so each
 * weight is read once per RT rows instead of once per row, as linear-fp8.ts's one-workgroup-per-
 * (output, row) kernels do. Per K block, the block's 32 weight rows and RT activation rows are
 * decoded into shared memory (rows padded to 129 words: the 32 lanes reading 32 weight rows hit 32
 * banks); each invocation then takes one output and four rows.
 *
 * The arithmetic is linear-fp8.ts's, in the same order, so results are those kernels':
 *  - plain (no activation quantization): acc += x · (e4m3(w) · sw) in k order, f32;
 *  - FP8 GEMM (activation codes xq with scales sx): per block s = Σ e4m3(x) · e4m3(w) in k order
 *    (exact products), then acc += s · (sx · sw) in block order — the CPU twin's sums.
 * Rows t ≥ count[p.e] are skipped (their outputs left as they were), as in linear-fp8.ts.
 */
import { E4M3_DECODE_WGSL } from './wgsl.js';

/** Outputs per workgroup, and the largest K block the tiles hold. */
export const TILED_OUTPUTS = 32;
export const TILED_MAX_BI = 128;

/** Rows per workgroup for a call's row count: 4, 8 or 16. */
export function tiledRows(rows: number): 4 | 8 | 16 {
  return rows <= 4 ? 4 : rows <= 8 ? 8 : 16;
}

/** The kernel for rows-per-workgroup RT; `gemm` = the FP8 GEMM (activation codes and scales), else plain. */
export function linearFp8TiledWgsl(rt: 4 | 8 | 16, gemm: boolean): string {
  const threads = (TILED_OUTPUTS * rt) / 4;
  const LD = TILED_MAX_BI + 1;
  const rows = [0, 1, 2, 3];
  const xBindings = gemm
    ? `@group(0) @binding(0) var<storage, read> xq: array<u32>;
@group(0) @binding(1) var<storage, read> sx: array<f32>;`
    : '@group(0) @binding(0) var<storage, read> x: array<f32>; // binding 1 (the scales of xq) unused';
  const wValue = gemm ? 'e4m3(code(w[i >> 2u], i))' : 'e4m3(code(w[i >> 2u], i)) * sw[((o0 + oo) / p.bo) * p.kb + b]';
  const xValue = gemm ? 'e4m3(code(xq[i >> 2u], i))' : 'x[i]';
  const block = gemm
    ? `${rows.map((r) => `    var s${r} = 0.0;`).join('\n')}
    for (var j = 0u; j < kn; j++) {
      let wv = wS[ol * ${LD}u + j];
${rows.map((r) => `      s${r} = s${r} + xS[(rg + ${r}u) * ${LD}u + j] * wv;`).join('\n')}
    }
    if (o < p.n) {
      let swb = sw[(o / p.bo) * p.kb + b];
${rows.map((r) => `      if (r0 + rg + ${r}u < rows) { acc${r} = acc${r} + s${r} * (sx[(r0 + rg + ${r}u) * p.kb + b] * swb); }`).join('\n')}
    }`
    : `    for (var j = 0u; j < kn; j++) {
      let wv = wS[ol * ${LD}u + j];
${rows.map((r) => `      acc${r} += xS[(rg + ${r}u) * ${LD}u + j] * wv;`).join('\n')}
    }`;
  return /* wgsl */ `
struct Params { rows: u32, k: u32, n: u32, bo: u32, bi: u32, kb: u32, groupsX: u32, e: u32 }
${E4M3_DECODE_WGSL}
fn code(word: u32, i: u32) -> u32 { return (word >> (8u * (i & 3u))) & 0xffu; }
${xBindings}
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> sw: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> count: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

var<workgroup> wS: array<f32, ${TILED_OUTPUTS * LD}>; // the block's weights [32 outputs][bi], padded rows
var<workgroup> xS: array<f32, ${rt * LD}>; // the block's activations [RT rows][bi], padded rows

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let rows = min(count[p.e], p.rows);
  let r0 = wg.y * ${rt}u;
  if (r0 >= rows) { return; }
  let o0 = (wg.x + wg.z * p.groupsX) * ${TILED_OUTPUTS}u;
  let ol = li % ${TILED_OUTPUTS}u;
  let o = o0 + ol;
  let rg = (li / ${TILED_OUTPUTS}u) * 4u; // this invocation's rows: r0 + rg … + 3
${rows.map((r) => `  var acc${r} = 0.0;`).join('\n')}
  for (var b = 0u; b < p.kb; b++) {
    let k0 = b * p.bi;
    let kn = min(p.bi, p.k - k0);
    workgroupBarrier();
    for (var e = li; e < ${TILED_OUTPUTS}u * p.bi; e += ${threads}u) {
      let oo = e / p.bi;
      let j = e % p.bi;
      var v = 0.0;
      if (j < kn && o0 + oo < p.n) {
        let i = (o0 + oo) * p.k + k0 + j;
        v = ${wValue};
      }
      wS[oo * ${LD}u + j] = v;
    }
    for (var e = li; e < ${rt}u * p.bi; e += ${threads}u) {
      let rr = e / p.bi;
      let j = e % p.bi;
      var v = 0.0;
      if (j < kn && r0 + rr < rows) {
        let i = (r0 + rr) * p.k + k0 + j;
        v = ${xValue};
      }
      xS[rr * ${LD}u + j] = v;
    }
    workgroupBarrier();
${block}
  }
  if (o < p.n) {
${rows.map((r) => `    if (r0 + rg + ${r}u < rows) { out[(r0 + rg + ${r}u) * p.n + o] = acc${r}; }`).join('\n')}
  }
}
`;
}
