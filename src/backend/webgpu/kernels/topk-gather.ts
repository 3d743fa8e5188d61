/**
 * Exact top-k for many rows of long keys in four kernels (every row of the batch in one grid per
 * kernel, many workgroups per row): the same output as topk.ts and topk-multi.ts (the CPU twin is
 * topkRowsRadix: identical sets, ties to the lowest positions, ascending, −1 padded).
 *  1. 'hist' [chunks, rows]: every chunk of CHUNK keys builds a private histogram of the top 11
 *     bits of its keys in workgroup memory and adds its non-zero bins into the row's global one.
 *  2. 'gather' [chunks, rows]: every workgroup finds, from the row's histogram, the bin b1 that holds
 *     the k-th largest key (and how many keys of it are to be taken); its chunk's keys above b1 are
 *     counted (per chunk), its keys in b1 appended (key, position) to the row's candidate list.
 *  3. 'refine' [rows]: one workgroup per row (1024 invocations where allowed) selects among the candidates only (few, unless many
 *     keys share their top 11 bits; read strided, four loads in flight per invocation, counts
 *     added in runs of equal bins): 11 more bits, then the last 10, give the threshold T exactly
 *     and the number of keys equal to T to take; it counts, per chunk, the candidates above T and
 *     equal to T, and leaves the global histogram and the candidate counter zeroed for the next call.
 *  4. 'write' [chunks, rows]: every chunk adds the counts of the chunks before it and writes its
 *     keys > T and its share of the first ties in position order (contiguous runs per invocation,
 *     one workgroup scan), chunk 0 the −1 padding.
 * Against 'multi' (eleven kernels, seven reads of the scores) this reads the scores three times in
 * four kernels. The workgroup scans use subgroup operations where the device has them (any
 * subgroup size; scanWgsl), else workgroup memory. The scratch histogram and candidate counters are zero between calls (new buffers
 * are zero; 'refine' clears what 'hist' and 'gather' used). Every access is in bounds by
 * construction: a position is clamped into its row, a candidate slot is below the row's bin count.
 */
import type { GpuDevice } from '../device.js';
import { ORDER_KEY_WGSL, runCountWgsl } from './wgsl.js';

const WG = 256;
/** Bins of the first (11-bit) digit; the second digit has 11 bits too, the last 10. */
const BINS = 2048;
/** Per-row words of the state buffer: b1, keys of b1 to take, T, ties, candidate counter. */
const STATE = 8;
/** Keys per invocation (CHUNK = 256 · PER keys per workgroup) a call may use, largest first. */
const PER_CHOICES = [16, 8, 4] as const;
/** Workgroups of a hist / gather / write grid the chunk size aims at (two per SM on a 132-SM GPU). */
const TARGET_GROUPS = 256;
/** At most this many chunks per row: 'refine' counts per chunk in its 2048-word workgroup histogram. */
const MAX_CHUNKS = BINS / 2;

/** Bindings, constants and helpers of every kernel; WG = the kernel's invocations (CHUNK is always 256 · PER). */
function common(per: number, wg = WG, sub = false): string {
  return /* wgsl */ `${sub ? 'enable subgroups;' : ''}
struct Params { rows: u32, nKeys: u32, k: u32, width: u32, chunks: u32 }
@group(0) @binding(0) var<storage, read> scores: array<u32>; // f32 bits
@group(0) @binding(1) var<storage, read> positions: array<i32>;
@group(0) @binding(2) var<storage, read_write> state: array<atomic<u32>>; // per row: STATE words
@group(0) @binding(3) var<storage, read_write> hist: array<atomic<u32>>; // per row: BINS, zero between calls
@group(0) @binding(4) var<storage, read_write> cand: array<vec2u>; // per row: nKeys slots of candidates (key, position)
@group(0) @binding(5) var<storage, read_write> counts: array<u32>; // per row and chunk: above b1, above T in b1, = T
@group(0) @binding(6) var<storage, read_write> out: array<i32>;
@group(0) @binding(7) var<uniform> p: Params;
const WG: u32 = ${wg}u;
const PER: u32 = ${per}u;
const CHUNK: u32 = ${WG * per}u;
const BINS: u32 = ${BINS}u;
const STATE: u32 = ${STATE}u;
${ORDER_KEY_WGSL}${runCountWgsl(BINS)}
/** Row t's keys in range: 0..min(positions[t], nKeys − 1). */
fn validOf(row: u32) -> u32 { return u32(clamp(positions[row] + 1, 0, i32(p.nKeys))); }
`;
}

/**
 * rankOf(local_invocation_index): the index a kernel distributes its work by (`lid`); scanWg(lid, v):
 * the inclusive scan of v over the workgroup's wg invocations in lid order (call both in uniform
 * control flow). Without subgroups lid is the invocation's index and the scan runs in workgroup
 * memory (log2 wg steps of two barriers). With subgroups (any size) lid is a rank consecutive within
 * each subgroup in lane order (WGSL says nothing of how lanes map onto invocation indices), and the
 * scan is a subgroup scan plus the totals of the subgroups of lower ranks (three barriers).
 */
const scanWgsl = (wg: number, sub: boolean): string => (sub ? /* wgsl */ `
var<workgroup> sgNext: atomic<u32>;
var<workgroup> sgCount: atomic<u32>;
var<workgroup> sgFirst: array<u32, ${wg}>; // per subgroup (at most one per invocation): its first rank
var<workgroup> sgSum: array<vec2u, ${wg}>; // and the sum of its values
fn rankOf(local: u32) -> u32 {
  if (local == 0u) { atomicStore(&sgNext, 0u); }
  workgroupBarrier();
  let n = subgroupAdd(1u);
  var first = 0u;
  if (subgroupElect()) { first = atomicAdd(&sgNext, n); }
  return subgroupBroadcastFirst(first) + subgroupExclusiveAdd(1u);
}
fn scanWg(lid: u32, v: vec2u) -> vec2u {
  workgroupBarrier(); // the last scan's reads are done
  if (lid == 0u) { atomicStore(&sgCount, 0u); }
  workgroupBarrier();
  let first = lid - subgroupExclusiveAdd(1u);
  let incl = subgroupInclusiveAdd(v);
  let total = subgroupAdd(v);
  if (subgroupElect()) {
    let j = atomicAdd(&sgCount, 1u);
    sgFirst[j] = first;
    sgSum[j] = total;
  }
  workgroupBarrier();
  let m = atomicLoad(&sgCount);
  var before = vec2u(0u);
  for (var j = 0u; j < m; j++) {
    if (sgFirst[j] < first) { before += sgSum[j]; }
  }
  return before + incl;
}
` : /* wgsl */ `
var<workgroup> scanBuf: array<vec2u, ${wg}>;
fn rankOf(local: u32) -> u32 { return local; }
fn scanWg(lid: u32, v: vec2u) -> vec2u {
  scanBuf[lid] = v;
  workgroupBarrier();
  for (var off = 1u; off < WG; off <<= 1u) {
    var a = scanBuf[lid];
    if (lid >= off) { a += scanBuf[lid - off]; }
    workgroupBarrier();
    scanBuf[lid] = a;
    workgroupBarrier();
  }
  return scanBuf[lid];
}
`);

/**
 * findBin: the bin of the r-th largest key of a 2048-bin histogram, and how many keys of that bin
 * are to be taken (the CPU's walk from the top bin, in parallel: invocation lid of wg holds the
 * counts of bins 2047 − PB·lid − i, i < PB = 2048 / wg). r = 0 gives the top bin and 0. Call in
 * uniform control flow.
 */
const findBinWgsl = (wg: number, sub: boolean): string => /* wgsl */ `${scanWgsl(wg, sub)}
const PB: u32 = BINS / WG;
var<workgroup> foundBin: u32;
var<workgroup> foundRem: u32;
fn findBin(lid: u32, binCounts: array<u32, ${BINS / wg}>, r: u32) -> vec2u {
  var c = binCounts;
  var s = 0u;
  for (var i = 0u; i < PB; i++) { s += c[i]; }
  let incl = scanWg(lid, vec2u(s, 0u)).x;
  let excl = incl - s;
  if (lid == 0u) {
    foundBin = BINS - 1u;
    foundRem = 0u;
  }
  workgroupBarrier();
  if (r > 0u && excl < r && r <= incl) {
    var rr = r - excl;
    var i = 0u;
    while (i + 1u < PB && c[i] < rr) {
      rr -= c[i];
      i++;
    }
    foundBin = BINS - 1u - lid * PB - i;
    foundRem = rr;
  }
  return vec2u(workgroupUniformLoad(&foundBin), workgroupUniformLoad(&foundRem));
}
`;

function histWgsl(per: number): string {
  return /* wgsl */ `${common(per)}
var<workgroup> local: array<atomic<u32>, BINS>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let row = wg.y;
  for (var i = lid; i < BINS; i += WG) { atomicStore(&local[i], 0u); }
  workgroupBarrier();
  let start = wg.x * CHUNK;
  let end = min(start + CHUNK, validOf(row));
  let last = row * p.nKeys + max(end, start + 1u) - 1u; // reads stay inside the row
  var keys: array<u32, PER>;
  for (var j = 0u; j < PER; j++) { keys[j] = scores[min(row * p.nKeys + start + lid + j * WG, last)]; }
  var run = Run${BINS}();
  for (var j = 0u; j < PER; j++) {
    if (start + lid + j * WG < end) { runAdd${BINS}(&local, &run, orderKey(keys[j]) >> 21u); }
  }
  runEnd${BINS}(&local, &run);
  workgroupBarrier();
  for (var i = lid; i < BINS; i += WG) {
    let c = atomicLoad(&local[i]);
    if (c > 0u) { atomicAdd(&hist[row * BINS + i], c); }
  }
}
`;
}

function gatherWgsl(per: number, sub: boolean): string {
  return /* wgsl */ `${common(per, WG, sub)}${findBinWgsl(WG, sub)}
var<workgroup> slotW: atomic<u32>;
var<workgroup> aboveW: atomic<u32>;
var<workgroup> baseW: u32;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = rankOf(lid3.x); // the invocation's rank (scanWgsl)
  let row = wg.y;
  let valid = validOf(row);
  var c: array<u32, PB>;
  for (var i = 0u; i < PB; i++) { c[i] = atomicLoad(&hist[row * BINS + BINS - 1u - lid * PB - i]); }
  if (lid == 0u) {
    atomicStore(&slotW, 0u);
    atomicStore(&aboveW, 0u);
  }
  let found = findBin(lid, c, min(p.k, valid));
  let b1 = found.x;
  if (wg.x == 0u && lid == 0u) {
    atomicStore(&state[STATE * row], b1);
    atomicStore(&state[STATE * row + 1u], found.y);
  }
  let start = wg.x * CHUNK;
  let end = min(start + CHUNK, valid);
  let last = row * p.nKeys + max(end, start + 1u) - 1u;
  var keys: array<u32, PER>;
  for (var j = 0u; j < PER; j++) { keys[j] = orderKey(scores[min(row * p.nKeys + start + lid + j * WG, last)]); }
  var mine = 0u;
  var above = 0u;
  for (var j = 0u; j < PER; j++) {
    let inRange = start + lid + j * WG < end;
    mine += select(0u, 1u, inRange && (keys[j] >> 21u) == b1);
    above += select(0u, 1u, inRange && (keys[j] >> 21u) > b1);
  }
  var slot = 0u;
  if (mine > 0u) { slot = atomicAdd(&slotW, mine); }
  if (above > 0u) { atomicAdd(&aboveW, above); }
  workgroupBarrier();
  if (lid == 0u) {
    let n = atomicLoad(&slotW);
    baseW = select(0u, atomicAdd(&state[STATE * row + 4u], n), n > 0u);
    counts[3u * (row * p.chunks + wg.x)] = atomicLoad(&aboveW);
  }
  // Slots stay below the row's count of keys in b1 (≤ its valid keys ≤ nKeys).
  slot += row * p.nKeys + workgroupUniformLoad(&baseW);
  for (var j = 0u; j < PER; j++) {
    if (start + lid + j * WG < end && (keys[j] >> 21u) == b1) {
      cand[slot] = vec2u(keys[j], start + lid + j * WG);
      slot++;
    }
  }
}
`;
}

function refineWgsl(per: number, wg: number, sub: boolean): string {
  return /* wgsl */ `${common(per, wg, sub)}${findBinWgsl(wg, sub)}
var<workgroup> h: array<atomic<u32>, BINS>;
const U: u32 = 4u; // candidates an invocation loads before it uses any

/** Invocation lid's bins of h, top first (findBin's order). */
fn binsOf(lid: u32) -> array<u32, PB> {
  workgroupBarrier();
  var c: array<u32, PB>;
  for (var i = 0u; i < PB; i++) { c[i] = atomicLoad(&h[BINS - 1u - lid * PB - i]); }
  return c;
}

/**
 * The bin of candidate c in h for a step (BINS: not counted): step 0, bits 20..10 of the key;
 * step 1, bits 9..0 of the keys whose top 22 bits are hi's; step 2, 2·chunk of the keys above
 * the threshold and 2·chunk + 1 of those equal to it.
 */
fn binOf(step: u32, c: vec2u, hi: u32, threshold: u32) -> u32 {
  if (step == 0u) { return (c.x >> 10u) & 0x7ffu; }
  if (step == 1u) { return select(BINS, c.x & 0x3ffu, (c.x & 0xfffffc00u) == hi); }
  return select(BINS, 2u * (c.y / CHUNK) + select(0u, 1u, c.x == threshold), c.x >= threshold);
}

/** h = the counts of the row's n candidates by binOf(step, ...), from zero (call in uniform control flow). */
fn countCandidates(lid: u32, base: u32, n: u32, step: u32, hi: u32, threshold: u32) {
  workgroupBarrier();
  for (var i = lid; i < BINS; i += WG) { atomicStore(&h[i], 0u); }
  workgroupBarrier();
  let last = base + max(n, 1u) - 1u; // slot 0 of the row exists (nKeys ≥ 1)
  // In runs (ties, and the candidates of one chunk, come in runs).
  var run = Run${BINS}();
  for (var i0 = lid; i0 < n; i0 += WG * U) {
    var cs: array<vec2u, U>;
    for (var j = 0u; j < U; j++) { cs[j] = cand[min(base + i0 + j * WG, last)]; }
    for (var j = 0u; j < U; j++) { runAdd${BINS}(&h, &run, select(BINS, binOf(step, cs[j], hi, threshold), i0 + j * WG < n)); }
  }
  runEnd${BINS}(&h, &run);
  workgroupBarrier();
}

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = rankOf(lid3.x); // the invocation's rank (scanWgsl)
  let row = wg.x;
  let b1 = atomicLoad(&state[STATE * row]);
  let r1 = atomicLoad(&state[STATE * row + 1u]);
  let n = atomicLoad(&state[STATE * row + 4u]);
  let base = row * p.nKeys; // the row's candidate slots
  // Digit 2 (bits 20..10 of the candidates: all share their top 11 bits, b1), then digit 3.
  countCandidates(lid, base, n, 0u, 0u, 0u);
  let f2 = findBin(lid, binsOf(lid), r1);
  let hi = (b1 << 21u) | (f2.x << 10u);
  countCandidates(lid, base, n, 1u, hi, 0u);
  let f3 = findBin(lid, binsOf(lid), f2.y);
  let threshold = hi | (f3.x & 0x3ffu);
  if (lid == 0u) {
    atomicStore(&state[STATE * row + 2u], threshold);
    atomicStore(&state[STATE * row + 3u], f3.y);
    atomicStore(&state[STATE * row + 4u], 0u); // every invocation read n before findBin's barriers
  }
  for (var i = lid; i < BINS; i += WG) { atomicStore(&hist[row * BINS + i], 0u); }
  // Per chunk: candidates above the threshold (h[2·chunk]) and equal to it (h[2·chunk + 1]).
  countCandidates(lid, base, n, 2u, hi, threshold);
  for (var ch = lid; ch < p.chunks; ch += WG) {
    counts[3u * (row * p.chunks + ch) + 1u] = atomicLoad(&h[2u * ch]);
    counts[3u * (row * p.chunks + ch) + 2u] = atomicLoad(&h[2u * ch + 1u]);
  }
}
`;
}

function writeWgsl(per: number, sub: boolean): string {
  return /* wgsl */ `${common(per, WG, sub)}${scanWgsl(WG, sub)}
var<workgroup> baseA: atomic<u32>;
var<workgroup> baseT: atomic<u32>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = rankOf(lid3.x); // the invocation's rank (scanWgsl)
  let row = wg.y;
  let valid = validOf(row);
  let threshold = atomicLoad(&state[STATE * row + 2u]);
  let ties = atomicLoad(&state[STATE * row + 3u]);
  if (lid == 0u) {
    atomicStore(&baseA, 0u);
    atomicStore(&baseT, 0u);
  }
  workgroupBarrier();
  // Keys above the threshold and ties before this chunk.
  var a = 0u;
  var t = 0u;
  for (var ch = lid; ch < wg.x; ch += WG) {
    let i = 3u * (row * p.chunks + ch);
    a += counts[i] + counts[i + 1u];
    t += counts[i + 2u];
  }
  if (a > 0u) { atomicAdd(&baseA, a); }
  if (t > 0u) { atomicAdd(&baseT, t); }
  // Invocation lid owns positions [s0, s1) of the chunk.
  let s0 = min(wg.x * CHUNK + lid * PER, valid);
  let s1 = min(s0 + PER, valid);
  let last = row * p.nKeys + max(valid, 1u) - 1u;
  var keys: array<u32, PER>;
  for (var j = 0u; j < PER; j++) { keys[j] = orderKey(scores[min(row * p.nKeys + s0 + j, last)]); }
  var above = 0u;
  var tie = 0u;
  for (var j = 0u; j < PER; j++) {
    above += select(0u, 1u, s0 + j < s1 && keys[j] > threshold);
    tie += select(0u, 1u, s0 + j < s1 && keys[j] == threshold);
  }
  let incl = scanWg(lid, vec2u(above, tie)); // its barriers also order the atomics above
  var aBefore = atomicLoad(&baseA) + incl.x - above;
  var tBefore = atomicLoad(&baseT) + incl.y - tie;
  let o = row * p.width;
  for (var j = 0u; j < PER; j++) {
    if (s0 + j < s1) {
      if (keys[j] > threshold) {
        out[o + aBefore + min(tBefore, ties)] = i32(s0 + j);
        aBefore++;
      } else if (keys[j] == threshold) {
        if (tBefore < ties) { out[o + aBefore + tBefore] = i32(s0 + j); }
        tBefore++;
      }
    }
  }
  if (wg.x == 0u) {
    for (var j = min(p.k, valid) + lid; j < p.width; j += WG) { out[o + j] = -1; }
  }
}
`;
}

/** Keys per invocation for rows × nKeys: the largest whose grid still has TARGET_GROUPS workgroups (else the smallest). */
function perFor(rows: number, nKeys: number): number {
  return PER_CHOICES.find((per) => rows * Math.ceil(nKeys / (WG * per)) >= TARGET_GROUPS) ?? PER_CHOICES[PER_CHOICES.length - 1]!;
}

/** Whether the gather form takes rows × nKeys on this device (grid dimensions, chunks per row, the candidate scratch in one binding). */
export function topkGatherFits(gpu: GpuDevice, rows: number, nKeys: number): boolean {
  const chunks = Math.ceil(nKeys / (WG * PER_CHOICES[0]));
  const bind = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  return rows <= gpu.limits.maxComputeWorkgroupsPerDimension && chunks <= MAX_CHUNKS && rows * nKeys * 8 <= bind && gpu.limits.maxComputeWorkgroupStorageSize >= sharedBytes(WG);
}

/** Workgroup memory of the largest kernel at wg invocations: a histogram and the scan's arrays (either form). */
const sharedBytes = (wg: number): number => BINS * 4 + wg * 12 + 64;

/**
 * Invocations of the 'refine' workgroup: 1024 where the device allows (a row whose keys mostly share
 * their top 11 bits has that many candidates), else 256.
 */
export function refineWorkgroup(gpu: GpuDevice): 256 | 1024 {
  const l = gpu.limits;
  const wide = l.maxComputeInvocationsPerWorkgroup >= 1024 && l.maxComputeWorkgroupSizeX >= 1024 && l.maxComputeWorkgroupStorageSize >= sharedBytes(1024);
  return wide ? 1024 : 256;
}

/** Records the four-kernel top-k into `out` (i32 [rows, width]); topkGatherFits must hold. */
export function topkGatherGpu(
  gpu: GpuDevice, scores: GPUBuffer, positions: GPUBuffer, out: GPUBuffer, rows: number, nKeys: number, k: number, width: number,
  refineWg: 256 | 1024 = refineWorkgroup(gpu),
  subgroups = gpu.features.has('subgroups'),
): void {
  let per = perFor(rows, nKeys);
  while (Math.ceil(nKeys / (WG * per)) > MAX_CHUNKS) per *= 2;
  const chunks = Math.ceil(nKeys / (WG * per));
  const state = gpu.scratch('topk-gather.state', rows * STATE * 4);
  const hist = gpu.scratch('topk-gather.hist', rows * BINS * 4);
  const cand = gpu.scratch('topk-gather.cand', rows * nKeys * 8);
  const counts = gpu.scratch('topk-gather.counts', rows * chunks * 12);
  const params = gpu.uniforms(Uint32Array.of(rows, nKeys, k, width, chunks));
  const code = gpu.generated(`topk-gather ${per} ${refineWg} ${subgroups}`, () => ({
    hist: histWgsl(per), gather: gatherWgsl(per, subgroups), refine: refineWgsl(per, refineWg, subgroups), write: writeWgsl(per, subgroups),
  }));
  // Each kernel binds what it uses (an automatic layout has no slot for the others).
  gpu.dispatch(code.hist, [scores, positions, null, hist, null, null, null, params], [chunks, rows]);
  gpu.dispatch(code.gather, [scores, positions, state, hist, cand, counts, null, params], [chunks, rows]);
  gpu.dispatch(code.refine, [null, null, state, hist, cand, counts, null, params], [rows]);
  gpu.dispatch(code.write, [scores, positions, state, null, null, counts, out, params], [chunks, rows]);
}
