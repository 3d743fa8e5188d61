/**
 * Square-ish GEMMs for the kernel lab (`dsa bench gpu`): C[M, N] = A[M, K] · B[K, N], row-major,
 * M, N, K multiples of the tile. They measure what WebGPU reaches on a GPU's ALUs and tensor cores:
 *  - 'f32-tiled': 64×64 output tile per workgroup of 256 invocations, 4×4 outputs per invocation,
 *    A and B staged through shared memory 16 deep. Core WebGPU.
 *  - 'f16-matrix' / 'i8-matrix': the subgroup-matrix feature (tensor cores): f16 × f16 → f32
 *    (16×16×16) or i8 × i8 → i32 (16×16×32). Four subgroups per workgroup in a 2×2 arrangement, each
 *    computing RM×RN result matrices; A and B tiles staged through shared memory ('shared') or
 *    loaded straight from the storage buffers ('direct', as in Dawn's probe).
 * i8 data are stored four per i32 word (element i in byte i & 3); offsets and strides of
 * subgroupMatrixLoad/Store count elements of the component type. Each has a CPU twin in the bench
 * (a float64 matmul) and is checked against it before it is timed.
 */
import { GpuError, type GpuDevice } from '../device.js';
import { STAGED_CONFIGS, stagedPlan, stagedSharedBytes } from './matmul-staged.js';

/** The variants: this file's, then the second-generation staged ones of matmul-staged.ts. */
export const MATMUL_VARIANTS = ['f32-tiled', 'f16-matrix-direct', 'f16-matrix-shared', 'i8-matrix-direct', 'i8-matrix-shared', ...Object.keys(STAGED_CONFIGS)] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];

export interface MatmulPlan {
  code: string;
  /** Output rows and columns per workgroup; K must be a multiple of kStep. */
  tileM: number;
  tileN: number;
  kStep: number;
  /** Element type of A and B on the GPU, and of C. */
  input: 'f32' | 'f16' | 'i8';
  output: 'f32' | 'i32';
  /** B is given as [N][K] (C = A · Bᵀ, the NT staged GEMMs); absent: B is [K][N]. */
  bTransposed?: boolean;
}

/** The kernel of a variant on this device, or null when the device cannot run it. */
export function matmulPlan(gpu: GpuDevice, v: MatmulVariant): MatmulPlan | null {
  if (v === 'f32-tiled') return { code: F32_TILED_WGSL, tileM: 64, tileN: 64, kStep: 16, input: 'f32', output: 'f32' };
  const sg = gpu.subgroupSize;
  if (sg === null) return null;
  const staged = STAGED_CONFIGS[v];
  if (staged) {
    const ok = staged.input === 'i8' ? gpu.hasSubgroupMatrix('i8', 'i32', 16, 16, 32) : gpu.features.has('shader-f16') && gpu.hasSubgroupMatrix('f16', 'f32', 16, 16, 16);
    if (!ok || stagedSharedBytes(staged) > gpu.limits.maxComputeWorkgroupStorageSize || sg * staged.sgr * staged.sgc > gpu.limits.maxComputeInvocationsPerWorkgroup) return null;
    return stagedPlan(staged, sg);
  }
  const int8 = v.startsWith('i8');
  const shared = v.endsWith('shared');
  if (int8 ? !gpu.hasSubgroupMatrix('i8', 'i32', 16, 16, 32) : !gpu.features.has('shader-f16') || !gpu.hasSubgroupMatrix('f16', 'f32', 16, 16, 16)) return null;
  const k = int8 ? 32 : 16;
  const rm = 4;
  const rn = 4;
  const kStep = shared ? 2 * k : k;
  if (shared) {
    const bytesPerEl = int8 ? 1 : 2;
    const bytes = (2 * 16 * rm * kStep + kStep * 2 * 16 * rn) * bytesPerEl;
    if (bytes > gpu.limits.maxComputeWorkgroupStorageSize) return null;
  }
  return {
    code: matrixWgsl(int8, shared, rm, rn, sg, kStep),
    tileM: 2 * 16 * rm,
    tileN: 2 * 16 * rn,
    kStep,
    input: int8 ? 'i8' : 'f16',
    output: int8 ? 'i32' : 'f32',
  };
}

/** Records C = A · B (A · Bᵀ with b as [N][K] where the plan says bTransposed); a, b, c hold the data in the plan's types. */
export function matmulGpu(gpu: GpuDevice, plan: MatmulPlan, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, m: number, n: number, k: number): void {
  if (m % plan.tileM || n % plan.tileN || k % plan.kStep) {
    throw new GpuError(`matmulGpu: M ${m}, N ${n}, K ${k} must be multiples of ${plan.tileM}, ${plan.tileN}, ${plan.kStep}`);
  }
  gpu.dispatch(plan.code, [a, b, c, gpu.uniforms(Uint32Array.of(m, n, k))], [n / plan.tileN, m / plan.tileM]);
}

const F32_TILED_WGSL = /* wgsl */ `
struct Params { m: u32, n: u32, k: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
var<workgroup> aS: array<f32, 1024>; // [64 rows][16 k]
var<workgroup> bS: array<f32, 1024>; // [16 k][64 cols]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let li = lid.y * 16u + lid.x;
  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = 0.0; }
  for (var k0 = 0u; k0 < p.k; k0 += 16u) {
    for (var i = li; i < 1024u; i += 256u) {
      aS[i] = A[(row0 + i / 16u) * p.k + k0 + i % 16u];
      bS[i] = B[(k0 + i / 64u) * p.n + col0 + i % 64u];
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = aS[(lid.y * 4u + i) * 16u + kk];
        b[i] = bS[kk * 64u + lid.x * 4u + i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) { C[(row0 + lid.y * 4u + i) * p.n + col0 + lid.x * 4u + j] = acc[i * 4u + j]; }
  }
}
`;

function matrixWgsl(int8: boolean, shared: boolean, RM: number, RN: number, SG: number, KS: number): string {
  const ct = int8 ? 'i8' : 'f16';
  const rt = int8 ? 'i32' : 'f32';
  const st = int8 ? 'i32' : 'f16';
  const K = int8 ? 32 : 16;
  const left = `subgroup_matrix_left<${ct}, ${K}, 16>`;
  const right = `subgroup_matrix_right<${ct}, 16, ${K}>`;
  const result = `subgroup_matrix_result<${rt}, 16, 16>`;
  const TM = 32 * RM; // workgroup tile rows
  const TN = 32 * RN;
  // Shared tiles (elements): A [TM][KS], B [KS][TN]; i8 packed four per i32 word.
  const per = int8 ? 4 : 1;
  const staging = shared
    ? `
var<workgroup> aS: array<${st}, ${(TM * KS) / per}>;
var<workgroup> bS: array<${st}, ${(KS * TN) / per}>;`
    : '';
  const load = shared
    ? `
    for (var i = li; i < ${(TM * KS) / per}u; i += ${4 * SG}u) {
      let r = i / ${KS / per}u;
      aS[i] = A[((row0 + r) * p.k + k0) / ${per}u + i % ${KS / per}u];
    }
    for (var i = li; i < ${(KS * TN) / per}u; i += ${4 * SG}u) {
      let r = i / ${TN / per}u;
      bS[i] = B[((k0 + r) * p.n + col0) / ${per}u + i % ${TN / per}u];
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${KS}u; kk += ${K}u) {
      var a: array<${left}, ${RM}>;
      var b: array<${right}, ${RN}>;
      for (var i = 0u; i < ${RM}u; i++) { a[i] = subgroupMatrixLoad<${left}>(&aS, (sm + i * 16u) * ${KS}u + kk, false, ${KS}u); }
      for (var j = 0u; j < ${RN}u; j++) { b[j] = subgroupMatrixLoad<${right}>(&bS, kk * ${TN}u + sn + j * 16u, false, ${TN}u); }
      for (var i = 0u; i < ${RM}u; i++) { for (var j = 0u; j < ${RN}u; j++) { acc[i][j] = subgroupMatrixMultiplyAccumulate(a[i], b[j], acc[i][j]); } }
    }
    workgroupBarrier();`
    : `
    var a: array<${left}, ${RM}>;
    var b: array<${right}, ${RN}>;
    for (var i = 0u; i < ${RM}u; i++) { a[i] = subgroupMatrixLoad<${left}>(&A, (row0 + sm + i * 16u) * p.k + k0, false, p.k); }
    for (var j = 0u; j < ${RN}u; j++) { b[j] = subgroupMatrixLoad<${right}>(&B, k0 * p.n + col0 + sn + j * 16u, false, p.n); }
    for (var i = 0u; i < ${RM}u; i++) { for (var j = 0u; j < ${RN}u; j++) { acc[i][j] = subgroupMatrixMultiplyAccumulate(a[i], b[j], acc[i][j]); } }`;
  return /* wgsl */ `
enable chromium_experimental_subgroup_matrix;
${int8 ? '' : 'enable f16;'}
struct Params { m: u32, n: u32, k: u32 }
@group(0) @binding(0) var<storage, read> A: array<${st}>;
@group(0) @binding(1) var<storage, read> B: array<${st}>;
@group(0) @binding(2) var<storage, read_write> C: array<${rt}>;
@group(0) @binding(3) var<uniform> p: Params;
${staging}

@compute @workgroup_size(${4 * SG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sg: u32) {
  let row0 = wg.y * ${TM}u;
  let col0 = wg.x * ${TN}u;
  let sm = (sg / 2u) * ${16 * RM}u; // this subgroup's rows and columns within the tile
  let sn = (sg % 2u) * ${16 * RN}u;
  var acc: array<array<${result}, ${RN}>, ${RM}>;
  for (var i = 0u; i < ${RM}u; i++) { for (var j = 0u; j < ${RN}u; j++) { acc[i][j] = ${result}(); } }
  for (var k0 = 0u; k0 < p.k; k0 += ${KS}u) {${load}
  }
  for (var i = 0u; i < ${RM}u; i++) {
    for (var j = 0u; j < ${RN}u; j++) { subgroupMatrixStore(&C, (row0 + sm + i * 16u) * p.n + col0 + sn + j * 16u, acc[i][j], false, p.n); }
  }
}
`;
}
