/**
 * headMatmul on WebGPU: per head, x [T, H, n] · w[h] → out [T, H, m], with w f32 [H, n, m], or
 * [H, m, n] when transposeW (out[t, h, j] = x[t, h] · w[h, j]). One invocation per output element
 * over a flat index (2-D dispatch, so any T·H·m fits). Its CPU twin is headMatmul
 * (cpu/kernels/linear.ts). With transposeW and n a multiple of 4: where the device has a fixed
 * subgroup size, the subgroup form below (w's rows read once per 16 rows of x); else one
 * invocation per output reading rows as vec4.
 */
import type { GpuDevice } from '../device.js';

export const HEAD_MATMUL_WGSL = /* wgsl */ `
struct Params { rows: u32, heads: u32, n: u32, m: u32, transposeW: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 64u + lid.x;
  if (i >= p.rows * p.heads * p.m) { return; }
  let j = i % p.m;
  let th = i / p.m;
  let h = th % p.heads;
  let xOff = th * p.n;
  var acc = 0.0;
  if (p.transposeW == 1u) {
    let wOff = (h * p.m + j) * p.n;
    for (var k = 0u; k < p.n; k++) { acc += x[xOff + k] * w[wOff + k]; }
  } else {
    let wOff = h * p.n * p.m + j;
    for (var k = 0u; k < p.n; k++) { acc += x[xOff + k] * w[wOff + k * p.m]; }
  }
  out[i] = acc;
}
`;

/** The transposed form when n is a multiple of 4: rows of x and w read as vec4 (a quarter of the loads). */
export const HEAD_MATMUL_T4_WGSL = /* wgsl */ `
struct Params { rows: u32, heads: u32, n: u32, m: u32, transposeW: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> w: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i = (wg.x + wg.y * p.groupsX) * 64u + lid.x;
  if (i >= p.rows * p.heads * p.m) { return; }
  let j = i % p.m;
  let th = i / p.m;
  let h = th % p.heads;
  let n4 = p.n / 4u;
  let xOff = th * n4;
  let wOff = (h * p.m + j) * n4;
  var acc = vec4f(0.0);
  for (var k = 0u; k < n4; k++) { acc += x[xOff + k] * w[wOff + k]; }
  out[i] = (acc.x + acc.y) + (acc.z + acc.w);
}
`;

/**
 * The transposed form by subgroups (where the device has a fixed subgroup size): each subgroup
 * takes one output j of one head for up to RT rows; its lanes read the row w[h, j] together (16
 * coalesced bytes each, strided by the subgroup) against the x rows in shared memory, and
 * subgroupAdd sums the lanes. Every call of this form (one row or sixteen) sums a row the same
 * way, so batched and single-row results are identical.
 */
function headMatmulSubgroupWgsl(RT: number, SG: number): string {
  const rows = Array.from({ length: RT }, (_, r) => r);
  return /* wgsl */ `
enable subgroups;
struct Params { rows: u32, heads: u32, n: u32, m: u32, transposeW: u32, groupsX: u32 }
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> w: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
var<workgroup> xS: array<vec4f, ${RT * ROWS_MAX_N4}>; // [RT rows][n / 4]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let h = wg.y;
  let t0 = wg.z * ${RT}u;
  let n4 = p.n / 4u;
  for (var i = li; i < ${RT}u * n4; i += 256u) {
    let t = min(t0 + i / n4, p.rows - 1u); // rows past the end repeat the last (never written)
    xS[i] = x[(t * p.heads + h) * n4 + i % n4];
  }
  workgroupBarrier();
  // Each subgroup takes J_PER outputs in turn, so a workgroup's x rows serve ${(256 / SG) * J_PER} outputs.
  for (var jj = 0u; jj < ${J_PER}u; jj++) {
    let jRaw = (wg.x * ${256 / SG}u + sg) * ${J_PER}u + jj;
    let j = min(jRaw, p.m - 1u); // past m: the last output again (not written)
    let wOff = (h * p.m + j) * n4;
${rows.map((r) => `    var acc${r} = 0.0;`).join('\n')}
    for (var k = lane; k < n4; k += ${SG}u) {
      let wk = w[wOff + k];
${rows.map((r) => `      acc${r} += dot(xS[${r}u * n4 + k], wk);`).join('\n')}
    }
${rows.map((r) => `    let s${r} = subgroupAdd(acc${r});`).join('\n')}
    if (lane == 0u && jRaw < p.m) {
${rows.map((r) => `      if (t0 + ${r}u < p.rows) { out[((t0 + ${r}u) * p.heads + h) * p.m + j] = s${r}; }`).join('\n')}
    }
  }
}
`;
}

/** Outputs each subgroup of the subgroup form takes in turn. */
const J_PER = 8;

/** Longest x row (in vec4) the subgroup form keeps in shared memory, and rows per workgroup. */
const ROWS_MAX_N4 = 128;
const ROWS_PER_GROUP = 16;

/**
 * Runs headMatmul: x [rows, heads, n] and w (f32 [heads, n, m], or [heads, m, n] when transposeW)
 * are device buffers; returns the output buffer f32 [rows, heads, m].
 */
export function headMatmulGpu(
  gpu: GpuDevice,
  x: GPUBuffer,
  w: GPUBuffer,
  rows: number,
  heads: number,
  n: number,
  m: number,
  transposeW: boolean,
): GPUBuffer {
  const total = rows * heads * m;
  const out = gpu.buffer(total * 4);
  if (total === 0) return out;
  const sg = gpu.subgroupSize;
  if (transposeW && n % 4 === 0 && n / 4 <= ROWS_MAX_N4 && sg !== null && sg >= 4 && sg <= 128 && heads <= gpu.limits.maxComputeWorkgroupsPerDimension) {
    const rt = Math.min(rows, ROWS_PER_GROUP, Math.floor(gpu.limits.maxComputeWorkgroupStorageSize / (ROWS_MAX_N4 * 16)));
    const code = gpu.generated(`head-matmul-subgroup ${rt} ${sg}`, () => headMatmulSubgroupWgsl(rt, sg));
    const params = gpu.uniforms(Uint32Array.of(rows, heads, n, m, 1, 0));
    gpu.dispatch(code, [x, w, out, params], [Math.ceil(m / ((256 / sg) * J_PER)), heads, Math.ceil(rows / rt)]);
    return out;
  }
  const groups = Math.ceil(total / 64);
  const groupsX = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension);
  const groupsY = Math.ceil(groups / groupsX);
  const params = gpu.uniforms(Uint32Array.of(rows, heads, n, m, transposeW ? 1 : 0, groupsX));
  const code = transposeW && n % 4 === 0 ? HEAD_MATMUL_T4_WGSL : HEAD_MATMUL_WGSL;
  gpu.dispatch(code, [x, w, out, params], [groupsX, groupsY]);
  return out;
}
