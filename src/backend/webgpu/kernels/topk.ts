/**
 * Exact top-k of indexer scores on WebGPU by radix select, one workgroup of 256 invocations per
 * row (the GPU form of topkRowsRadix, cpu/kernels/topk-radix.ts, with the same output):
 * row t considers keys 0..min(positions[t], S−1); every f32 score becomes an order-preserving u32
 * key (−0 is mapped to +0, as `>` and `===` treat them); four 8-bit histogram passes in workgroup
 * memory find the k-th largest key T exactly and how many keys equal to T are to be taken; then a
 * compaction pass over chunks of 256 positions (one workgroup prefix scan each) writes the keys
 * > T and the first of the keys = T, lowest positions first, in ascending position order, and −1
 * padding: i32 [T, min(k, S)]. The selected sets equal the CPU's, ties included. Inputs are
 * assumed NaN-free.
 */
import type { GpuDevice } from '../device.js';
import { ORDER_KEY_WGSL } from './wgsl.js';

export const TOPK_WGSL = /* wgsl */ `
struct Params { rows: u32, nKeys: u32, k: u32, width: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> scores: array<u32>; // f32 bits
@group(0) @binding(1) var<storage, read> positions: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> scan: array<u32, 256>;
var<workgroup> prefix: u32;
var<workgroup> remaining: u32;
var<workgroup> validW: u32;

${ORDER_KEY_WGSL}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let t = wg.x + wg.y * p.groupsX;
  let live = t < p.rows;
  if (lid == 0u) {
    var v = 0u;
    if (live) { v = u32(clamp(positions[t] + 1, 0, i32(p.nKeys))); }
    validW = v;
    prefix = 0u;
    remaining = min(p.k, v);
  }
  let valid = workgroupUniformLoad(&validW);
  let take = min(p.k, valid);
  let row = t * p.nKeys;

  // Radix select: after digit i the top 8(i+1) bits of T are known (prefix) and 'remaining' counts
  // the keys with those bits still to be taken.
  for (var digit = 0u; digit < 4u; digit++) {
    let shift = 24u - 8u * digit;
    let hiMask = ~(0xffffffffu >> (8u * digit));
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    let pre = prefix;
    for (var s = lid; s < valid; s += 256u) {
      let key = orderKey(scores[row + s]);
      if ((key & hiMask) == pre) { atomicAdd(&hist[(key >> shift) & 0xffu], 1u); }
    }
    workgroupBarrier();
    if (lid == 0u) {
      var r = remaining;
      var b = 255u;
      // r ≤ the keys in range, so the walk stops at a bin (r = 0 stops at once).
      while (b > 0u && atomicLoad(&hist[b]) < r) {
        r -= atomicLoad(&hist[b]);
        b--;
      }
      prefix = pre | (b << shift);
      remaining = r;
    }
    workgroupBarrier();
  }
  let threshold = prefix;
  let ties = remaining; // keys equal to threshold to take, lowest positions first

  // Compaction in position order: per chunk, an inclusive scan of (above << 16) | tie.
  var aboveCarry = 0u;
  var tieCarry = 0u;
  for (var base = 0u; base < valid; base += 256u) {
    let s = base + lid;
    var above = 0u;
    var tie = 0u;
    if (s < valid) {
      let key = orderKey(scores[row + s]);
      above = select(0u, 1u, key > threshold);
      tie = select(0u, 1u, key == threshold);
    }
    let mine = (above << 16u) | tie;
    scan[lid] = mine;
    workgroupBarrier();
    for (var off = 1u; off < 256u; off <<= 1u) {
      var v = scan[lid];
      if (lid >= off) { v += scan[lid - off]; }
      workgroupBarrier();
      scan[lid] = v;
      workgroupBarrier();
    }
    let excl = scan[lid] - mine;
    let tieBefore = tieCarry + (excl & 0xffffu);
    if (above == 1u || (tie == 1u && tieBefore < ties)) {
      let idx = aboveCarry + (excl >> 16u) + min(tieBefore, ties);
      out[t * p.width + idx] = i32(s);
    }
    let total = scan[255];
    aboveCarry += total >> 16u;
    tieCarry += total & 0xffffu;
    workgroupBarrier();
  }
  if (live) {
    for (var j = take + lid; j < p.width; j += 256u) { out[t * p.width + j] = -1; }
  }
}
`;

/** Runs top-k: scores f32 [rows, nKeys], positions i32 [rows]; returns i32 [rows, min(k, nKeys)]. */
export function topkGpu(gpu: GpuDevice, scores: GPUBuffer, positions: GPUBuffer, rows: number, nKeys: number, k: number): GPUBuffer {
  const width = Math.min(k, nKeys);
  const out = gpu.buffer(rows * width * 4);
  if (rows === 0 || width === 0) return out;
  const groupsX = Math.min(rows, gpu.limits.maxComputeWorkgroupsPerDimension);
  const groupsY = Math.ceil(rows / groupsX);
  const params = gpu.uniforms(Uint32Array.of(rows, nKeys, k, width, groupsX));
  gpu.dispatch(TOPK_WGSL, [scores, positions, out, params], [groupsX, groupsY]);
  return out;
}
