/**
 * Exact top-k for long rows with many workgroups per row: the same radix select and output as
 * topk.ts (identical sets, ties to the lowest positions, ascending, −1 padded), split so that a
 * 128K-key row is read by dozens of workgroups instead of one. Eleven kernels per call:
 *  1. init: per row, the valid key count and the keys still to take; the global histograms zeroed.
 *  2. per digit (four): 'hist' — every chunk of CHUNK keys of every row adds its 256-bin histogram
 *     (of the keys whose higher digits match the prefix so far) into the row's global histogram;
 *     'select' — one workgroup per row walks the bins from the top, fixes the digit and the keys
 *     still to take, and zeroes the histogram for the next digit.
 *  3. 'count' — every chunk counts its keys above the threshold and equal to it;
 *     'write' — every chunk adds the counts of the chunks before it and writes its keys at their
 *     places (runs of positions per invocation, one scan per workgroup), chunk 0 the −1 padding.
 */
import type { GpuDevice } from '../device.js';
import { ORDER_KEY_WGSL, runCountWgsl } from './wgsl.js';

/** Keys per workgroup of the hist, count and write kernels. */
export const TOPK_CHUNK = 4096;

const COMMON = /* wgsl */ `
struct Params { rows: u32, nKeys: u32, k: u32, width: u32, chunks: u32, digit: u32 }
@group(0) @binding(0) var<storage, read> scores: array<u32>; // f32 bits
@group(0) @binding(1) var<storage, read> positions: array<i32>;
@group(0) @binding(2) var<storage, read_write> state: array<u32>; // per row: prefix, remaining, valid, 0
@group(0) @binding(3) var<storage, read_write> hist: array<atomic<u32>>; // per row: 256 bins
@group(0) @binding(4) var<storage, read_write> counts: array<u32>; // per row and chunk: above, tie
@group(0) @binding(5) var<storage, read_write> out: array<i32>;
@group(0) @binding(6) var<uniform> p: Params;
const CHUNK: u32 = ${TOPK_CHUNK}u;
const RUN: u32 = ${TOPK_CHUNK / 256}u; // keys per invocation in count and write
${ORDER_KEY_WGSL}
`;

const INIT_WGSL = /* wgsl */ `${COMMON}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.x;
  if (lid.x == 0u) {
    let valid = u32(clamp(positions[row] + 1, 0, i32(p.nKeys)));
    state[4u * row] = 0u;
    state[4u * row + 1u] = min(p.k, valid);
    state[4u * row + 2u] = valid;
  }
  atomicStore(&hist[256u * row + lid.x], 0u);
}
`;

const HIST_WGSL = /* wgsl */ `${COMMON}${runCountWgsl(256)}
var<workgroup> local: array<atomic<u32>, 256>;
var<workgroup> validW: u32;
var<workgroup> prefixW: u32;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let row = wg.y;
  if (lid == 0u) {
    validW = state[4u * row + 2u];
    prefixW = state[4u * row];
  }
  atomicStore(&local[lid], 0u);
  let valid = workgroupUniformLoad(&validW);
  let pre = workgroupUniformLoad(&prefixW);
  let start = wg.x * CHUNK;
  let end = min(start + CHUNK, valid);
  let shift = 24u - 8u * p.digit;
  let hiMask = ~(0xffffffffu >> (8u * p.digit));
  let base = row * p.nKeys;
  var run = Run256();
  for (var s0 = start + lid; s0 < end; s0 += 256u * 8u) {
    var keys: array<u32, 8>;
    for (var j = 0u; j < 8u; j++) { keys[j] = scores[base + min(s0 + 256u * j, end - 1u)]; }
    for (var j = 0u; j < 8u; j++) {
      let key = orderKey(keys[j]);
      if (s0 + 256u * j < end && (key & hiMask) == pre) { runAdd256(&local, &run, (key >> shift) & 0xffu); }
    }
  }
  runEnd256(&local, &run);
  workgroupBarrier();
  let c = atomicLoad(&local[lid]);
  if (c > 0u) { atomicAdd(&hist[256u * row + lid], c); }
}
`;

const SELECT_WGSL = /* wgsl */ `${COMMON}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let row = wg.x;
  let lid = lid3.x;
  if (lid == 0u) {
    let shift = 24u - 8u * p.digit;
    var r = state[4u * row + 1u];
    var b = 255u;
    // r ≤ the keys in range, so the walk stops at a bin (r = 0 stops at once).
    while (b > 0u && atomicLoad(&hist[256u * row + b]) < r) {
      r -= atomicLoad(&hist[256u * row + b]);
      b--;
    }
    state[4u * row] = state[4u * row] | (b << shift);
    state[4u * row + 1u] = r;
  }
  workgroupBarrier();
  atomicStore(&hist[256u * row + lid], 0u);
}
`;

/** The per-invocation run [s0, s1) of a chunk, and the workgroup scan both count and write use. */
const RUNS = /* wgsl */ `
var<workgroup> scanA: array<u32, 256>;
var<workgroup> scanT: array<u32, 256>;
var<workgroup> validW: u32;
var<workgroup> thresholdW: u32;

/** Keys of positions [s0, s1) of the row at base: (above the threshold, equal to it). */
fn countRun(base: u32, s0: u32, s1: u32, threshold: u32) -> vec2u {
  var n = vec2u(0u);
  for (var s = s0; s < s1; s++) {
    let key = orderKey(scores[base + s]);
    n += vec2u(select(0u, 1u, key > threshold), select(0u, 1u, key == threshold));
  }
  return n;
}

fn scan(lid: u32, above: u32, tie: u32) {
  scanA[lid] = above;
  scanT[lid] = tie;
  workgroupBarrier();
  for (var off = 1u; off < 256u; off <<= 1u) {
    var a = scanA[lid];
    var b = scanT[lid];
    if (lid >= off) {
      a += scanA[lid - off];
      b += scanT[lid - off];
    }
    workgroupBarrier();
    scanA[lid] = a;
    scanT[lid] = b;
    workgroupBarrier();
  }
}
`;

const COUNT_WGSL = /* wgsl */ `${COMMON}${RUNS}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let row = wg.y;
  if (lid == 0u) {
    validW = state[4u * row + 2u];
    thresholdW = state[4u * row];
  }
  let valid = workgroupUniformLoad(&validW);
  let threshold = workgroupUniformLoad(&thresholdW);
  let s0 = min(wg.x * CHUNK + lid * RUN, valid);
  let s1 = min(s0 + RUN, valid);
  let c = countRun(row * p.nKeys, s0, s1, threshold);
  let above = c.x;
  let tie = c.y;
  scan(lid, above, tie);
  if (lid == 255u) {
    counts[2u * (row * p.chunks + wg.x)] = scanA[255];
    counts[2u * (row * p.chunks + wg.x) + 1u] = scanT[255];
  }
}
`;

const WRITE_WGSL = /* wgsl */ `${COMMON}${RUNS}
var<workgroup> baseA: u32;
var<workgroup> baseT: u32;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let row = wg.y;
  if (lid == 0u) {
    validW = state[4u * row + 2u];
    thresholdW = state[4u * row];
    var a = 0u;
    var t = 0u;
    for (var c = 0u; c < wg.x; c++) {
      a += counts[2u * (row * p.chunks + c)];
      t += counts[2u * (row * p.chunks + c) + 1u];
    }
    baseA = a;
    baseT = t;
  }
  let valid = workgroupUniformLoad(&validW);
  let threshold = workgroupUniformLoad(&thresholdW);
  let ties = state[4u * row + 1u];
  let s0 = min(wg.x * CHUNK + lid * RUN, valid);
  let s1 = min(s0 + RUN, valid);
  let c = countRun(row * p.nKeys, s0, s1, threshold);
  let above = c.x;
  let tie = c.y;
  scan(lid, above, tie);
  var aBefore = baseA + scanA[lid] - above;
  var tBefore = baseT + scanT[lid] - tie;
  for (var s = s0; s < s1; s++) {
    let key = orderKey(scores[row * p.nKeys + s]);
    if (key > threshold) {
      out[row * p.width + aBefore + min(tBefore, ties)] = i32(s);
      aBefore++;
    } else if (key == threshold) {
      if (tBefore < ties) { out[row * p.width + aBefore + tBefore] = i32(s); }
      tBefore++;
    }
  }
  if (wg.x == 0u) {
    for (var j = min(p.k, valid) + lid; j < p.width; j += 256u) { out[row * p.width + j] = -1; }
  }
}
`;

/** Records the multi-workgroup top-k into `out` (i32 [rows, width]). */
export function topkMultiGpu(gpu: GpuDevice, scores: GPUBuffer, positions: GPUBuffer, out: GPUBuffer, rows: number, nKeys: number, k: number, width: number): void {
  const chunks = Math.ceil(nKeys / TOPK_CHUNK);
  // Scratch: init writes state and zeroes hist, count writes every chunk's counts.
  const state = gpu.scratch('topk.state', rows * 16);
  const hist = gpu.scratch('topk.hist', rows * 256 * 4);
  const counts = gpu.scratch('topk.counts', rows * chunks * 8);
  const params = (digit: number) => gpu.uniforms(Uint32Array.of(rows, nKeys, k, width, chunks, digit));
  // Each kernel binds what it uses (an automatic layout has no slot for the others).
  gpu.dispatch(INIT_WGSL, [null, positions, state, hist, null, null, params(0)], [rows]);
  for (let digit = 0; digit < 4; digit++) {
    gpu.dispatch(HIST_WGSL, [scores, null, state, hist, null, null, params(digit)], [chunks, rows]);
    gpu.dispatch(SELECT_WGSL, [null, null, state, hist, null, null, params(digit)], [rows]);
  }
  gpu.dispatch(COUNT_WGSL, [scores, null, state, null, counts, null, params(0)], [chunks, rows]);
  gpu.dispatch(WRITE_WGSL, [scores, null, state, null, counts, out, params(0)], [chunks, rows]);
}
