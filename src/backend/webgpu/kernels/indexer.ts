/**
 * Lightning-indexer scores on WebGPU:
 * out[t, s] = kScale[slot(s)] · Σ_h w[t, h] · ReLU(q8[t, h] · k8[slot(s)]) for s ≤ positions[t],
 * −∞ after (and for every s when positions[t] < 0), over the paged FP8 key cache with
 * slot(s) = table[s / pageSize] · pageSize + s % pageSize. The e4m3 codes (queries and keys, four
 * per u32 word, any dim) are decoded in the shader by bit arithmetic; 0x7f / 0xff (NaN) are not
 * special-cased (they decode as ±480), inputs are assumed NaN-free like the CPU path.
 * One invocation per (key, query): workgroups of 64 keys × one query row. Dot products and the head
 * sum are in f32 (the CPU twin, indexerScores in cpu/kernels/indexer.ts, sums in float64 and
 * rounds once), so results agree to f32 rounding, not bit for bit.
 */
import { GpuError, type GpuDevice } from '../device.js';

export const INDEXER_WGSL = /* wgsl */ `
struct Params { rows: u32, heads: u32, dim: u32, nKeys: u32, pageSize: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> q8: array<u32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> kCache: array<u32>;
@group(0) @binding(3) var<storage, read> kScale: array<f32>;
@group(0) @binding(4) var<storage, read> table: array<i32>;
@group(0) @binding(5) var<storage, read> positions: array<i32>;
@group(0) @binding(6) var<storage, read_write> out: array<u32>; // f32 bits (−∞ is not a WGSL constant)
@group(0) @binding(7) var<uniform> p: Params;

fn e4m3(c: u32) -> f32 {
  let e = (c >> 3u) & 0xfu;
  let m = c & 7u;
  var v: f32;
  if (e == 0u) {
    v = f32(m) * (1.0 / 512.0);
  } else {
    v = bitcast<f32>(((e + 120u) << 23u) | (m << 20u));
  }
  return select(v, -v, (c & 0x80u) != 0u);
}

fn qCode(i: u32) -> u32 { return (q8[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu; }
fn kCode(i: u32) -> u32 { return (kCache[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu; }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let s = (wg.x + wg.z * p.groupsX) * 64u + lid.x;
  let t = wg.y;
  if (s >= p.nKeys || t >= p.rows) { return; }
  if (i32(s) > positions[t]) {
    out[t * p.nKeys + s] = 0xff800000u;
    return;
  }
  let slot = u32(table[s / p.pageSize]) * p.pageSize + s % p.pageSize;
  let kBase = slot * p.dim;
  var score = 0.0;
  for (var h = 0u; h < p.heads; h++) {
    let qBase = (t * p.heads + h) * p.dim;
    var d = 0.0;
    for (var j = 0u; j < p.dim; j++) {
      d += e4m3(qCode(qBase + j)) * e4m3(kCode(kBase + j));
    }
    if (d > 0.0) { score += w[t * p.heads + h] * d; }
  }
  out[t * p.nKeys + s] = bitcast<u32>(kScale[slot] * score);
}
`;

export interface IndexerGpuArgs {
  /** u8 codes [rows, heads, dim], packed 4 per u32. */
  q8: GPUBuffer;
  /** f32 [rows, heads]. */
  w: GPUBuffer;
  /** u8 codes [slots, dim], packed 4 per u32. */
  kCache: GPUBuffer;
  /** f32 [slots]. */
  kScale: GPUBuffer;
  /** i32 block table (pages of this sequence) and its length in entries. */
  table: GPUBuffer;
  tableLength: number;
  pageSize: number;
  /** i32 [rows]. */
  positions: GPUBuffer;
  rows: number;
  heads: number;
  dim: number;
  nKeys: number;
}

/** Runs the indexer score kernel; returns f32 [rows, nKeys]. */
export function indexerScoresGpu(gpu: GpuDevice, a: IndexerGpuArgs): GPUBuffer {
  if (a.nKeys > a.tableLength * a.pageSize) {
    throw new GpuError(`indexerScoresGpu: ${a.nKeys} keys exceed the sequence's ${a.tableLength} cache pages of ${a.pageSize}`);
  }
  const out = gpu.buffer(a.rows * a.nKeys * 4);
  if (a.rows === 0 || a.nKeys === 0) return out;
  const tiles = Math.ceil(a.nKeys / 64);
  const groupsX = Math.min(tiles, gpu.limits.maxComputeWorkgroupsPerDimension);
  const groupsZ = Math.ceil(tiles / groupsX);
  const params = gpu.uniforms(Uint32Array.of(a.rows, a.heads, a.dim, a.nKeys, a.pageSize, groupsX));
  gpu.dispatch(INDEXER_WGSL, [a.q8, a.w, a.kCache, a.kScale, a.table, a.positions, out, params], [groupsX, a.rows, groupsZ]);
  return out;
}
