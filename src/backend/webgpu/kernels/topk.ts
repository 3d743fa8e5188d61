/**
 * Exact top-k of indexer scores on WebGPU by radix select, one workgroup of 1024 invocations (256
 * where the device allows no more) per row (the GPU form of topkRowsRadix, cpu/kernels/topk-radix.ts, with the same output):
 * row t considers keys 0..min(positions[t], S−1); every f32 score becomes an order-preserving u32
 * key (−0 is mapped to +0, as `>` and `===` treat them); four 8-bit histogram passes in workgroup
 * memory find the k-th largest key T exactly and how many keys equal to T are to be taken; then a
 * compaction (each invocation walks its own contiguous run of positions, after one scan of the
 * counts over the invocations) writes the keys > T and the first of the keys = T, lowest positions
 * first, in ascending position order, and −1 padding: i32 [T, min(k, S)]. The selected sets equal
 * the CPU's, ties included. Inputs are assumed NaN-free.
 */
import type { GpuDevice } from '../device.js';
import { ORDER_KEY_WGSL, runCountWgsl } from './wgsl.js';
import { TOPK_CHUNK, topkMultiGpu } from './topk-multi.js';
import { topkGatherFits, topkGatherGpu } from './topk-gather.js';

/** Loads an invocation issues before it uses any (memory-level parallelism for one row per workgroup). */
const UNROLL = 8;

/** The kernel for `wg` invocations per workgroup (a power of two ≥ 256). */
export function topkWgsl(wg: number): string {
  const steps = Math.log2(wg);
  return /* wgsl */ `
struct Params { rows: u32, nKeys: u32, k: u32, width: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> scores: array<u32>; // f32 bits
@group(0) @binding(1) var<storage, read> positions: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = ${wg}u;
const U: u32 = ${UNROLL}u;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> scan: array<u32, ${wg}>;
var<workgroup> scanTie: array<u32, ${wg}>;
var<workgroup> prefix: u32;
var<workgroup> remaining: u32;
var<workgroup> validW: u32;

${ORDER_KEY_WGSL}${runCountWgsl(256)}
@compute @workgroup_size(${wg})
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
  let last = row + max(valid, 1u) - 1u; // reads stay inside the row

  // Radix select: after digit i the top 8(i+1) bits of T are known (prefix) and 'remaining' counts
  // the keys with those bits still to be taken.
  for (var digit = 0u; digit < 4u; digit++) {
    let shift = 24u - 8u * digit;
    let hiMask = ~(0xffffffffu >> (8u * digit));
    if (lid < 256u) { atomicStore(&hist[lid], 0u); }
    workgroupBarrier();
    let pre = prefix;
    var run = Run256();
    for (var base = lid; base < valid; base += WG * U) {
      var keys: array<u32, ${UNROLL}>;
      for (var j = 0u; j < U; j++) { keys[j] = scores[min(row + base + j * WG, last)]; }
      for (var j = 0u; j < U; j++) {
        let key = orderKey(keys[j]);
        if (base + j * WG < valid && (key & hiMask) == pre) { runAdd256(&hist, &run, (key >> shift) & 0xffu); }
      }
    }
    runEnd256(&hist, &run);
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

  // Compaction in position order: invocation lid owns the positions [s0, s1) (contiguous, in lid
  // order); it counts its keys above the threshold and equal to it, one scan over the invocations
  // gives the counts before it, and a second walk writes its keys at their places.
  let seg = (valid + WG - 1u) / WG;
  let s0 = min(lid * seg, valid);
  let s1 = min(s0 + seg, valid);
  var above = 0u;
  var tie = 0u;
  for (var s = s0; s < s1; s += U) {
    var keys: array<u32, ${UNROLL}>;
    for (var j = 0u; j < U; j++) { keys[j] = scores[min(row + s + j, last)]; }
    for (var j = 0u; j < U; j++) {
      let key = orderKey(keys[j]);
      let inRun = s + j < s1;
      above += select(0u, 1u, inRun && key > threshold);
      tie += select(0u, 1u, inRun && key == threshold);
    }
  }
  scan[lid] = above;
  scanTie[lid] = tie;
  workgroupBarrier();
  for (var off = 1u; off < WG; off <<= 1u) { // ${steps} steps
    var a = scan[lid];
    var b = scanTie[lid];
    if (lid >= off) {
      a += scan[lid - off];
      b += scanTie[lid - off];
    }
    workgroupBarrier();
    scan[lid] = a;
    scanTie[lid] = b;
    workgroupBarrier();
  }
  var aBefore = scan[lid] - above;
  var tBefore = scanTie[lid] - tie;
  for (var s = s0; s < s1; s += U) {
    var keys: array<u32, ${UNROLL}>;
    for (var j = 0u; j < U; j++) { keys[j] = scores[min(row + s + j, last)]; }
    for (var j = 0u; j < U; j++) {
      if (s + j >= s1) { break; }
      let key = orderKey(keys[j]);
      if (key > threshold) {
        out[t * p.width + aBefore + min(tBefore, ties)] = i32(s + j);
        aBefore++;
      } else if (key == threshold) {
        if (tBefore < ties) { out[t * p.width + aBefore + tBefore] = i32(s + j); }
        tBefore++;
      }
    }
  }
  if (live) {
    for (var j = take + lid; j < p.width; j += WG) { out[t * p.width + j] = -1; }
  }
}
`;
}

/** The workgroup size top-k uses on a device: 1024 where allowed (more loads in flight per row), else 256. */
function topkWorkgroup(gpu: GpuDevice): number {
  const l = gpu.limits;
  return l.maxComputeInvocationsPerWorkgroup >= 1024 && l.maxComputeWorkgroupSizeX >= 1024 ? 1024 : 256;
}

/**
 * 'single': one workgroup per row (this file); 'multi': many per row in eleven kernels
 * (topk-multi.ts); 'gather': many per row in four kernels, selecting the last 21 bits among the
 * keys of the threshold's 11-bit bin only (topk-gather.ts). All three give the same output.
 */
export type TopkVariant = 'single' | 'multi' | 'gather';
export const TOPK_VARIANTS: readonly TopkVariant[] = ['single', 'multi', 'gather'];
/** Rows from this many keys on use 'multi' where 'gather' does not fit (64K). */
export const MULTI_FROM = 16 * TOPK_CHUNK;
/**
 * Rows from this many keys on use 'gather' (16K): below, one workgroup per row ('single', one
 * dispatch) is about as fast as four dispatches that fill the GPU (on the H200 a small dispatch
 * costs ~10–20 µs, 'single' took 0.044 ms for 16 rows of 4K keys). A first guess, to be set from
 * the lab's `topk_<variant>_ms` keys (`dsa bench gpu`, core section).
 */
export const GATHER_FROM = 16384;

/**
 * 'gather' keeps a candidate scratch of 8 bytes per key of the call (room for a row whose keys all
 * share their top 11 bits); by default it is used up to this many keys per call (16M: 128 decode
 * rows of 128K keys, a 128 MiB scratch), larger calls (long prefill chunks) run 'multi'.
 */
export const GATHER_MAX_KEYS = 1 << 24;

/**
 * The variant topkGpu runs for rows × nKeys on this device when none is asked for: 'gather' for
 * rows of GATHER_FROM keys or more (up to GATHER_MAX_KEYS keys in all), else 'multi' from
 * MULTI_FROM keys, else 'single'.
 */
export function topkVariantFor(gpu: GpuDevice, rows: number, nKeys: number): TopkVariant {
  if (nKeys >= GATHER_FROM && rows * nKeys <= GATHER_MAX_KEYS && topkGatherFits(gpu, rows, nKeys)) return 'gather';
  return nKeys >= MULTI_FROM ? 'multi' : 'single';
}

/**
 * Runs top-k: scores f32 [rows, nKeys], positions i32 [rows]; returns i32 [rows, min(k, nKeys)]
 * (same output for every variant; a variant that cannot take the shape on this device falls back
 * to 'single').
 */
export function topkGpu(gpu: GpuDevice, scores: GPUBuffer, positions: GPUBuffer, rows: number, nKeys: number, k: number, variant?: TopkVariant): GPUBuffer {
  const width = Math.min(k, nKeys);
  const out = gpu.buffer(rows * width * 4);
  if (rows === 0 || width === 0) return out;
  const v = variant ?? topkVariantFor(gpu, rows, nKeys);
  if (v === 'gather' && topkGatherFits(gpu, rows, nKeys)) {
    topkGatherGpu(gpu, scores, positions, out, rows, nKeys, k, width);
    return out;
  }
  if (v === 'multi' && rows <= gpu.limits.maxComputeWorkgroupsPerDimension) {
    topkMultiGpu(gpu, scores, positions, out, rows, nKeys, k, width);
    return out;
  }
  const groupsX = Math.min(rows, gpu.limits.maxComputeWorkgroupsPerDimension);
  const groupsY = Math.ceil(rows / groupsX);
  const params = gpu.uniforms(Uint32Array.of(rows, nKeys, k, width, groupsX));
  const wg = topkWorkgroup(gpu);
  const code = gpu.generated(`topk ${wg}`, () => topkWgsl(wg));
  gpu.dispatch(code, [scores, positions, out, params], [groupsX, groupsY]);
  return out;
}
