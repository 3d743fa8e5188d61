/**
 * The WebGPU lightning-indexer score kernel against its CPU twin (indexerScores): random e4m3 codes
 * including subnormal and negative ones, a non-contiguous block table with pageSize 4, causality.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INDEXER_VARIANTS, indexerVariantAvailable, indexerScoresGpu, type IndexerVariant } from '../../src/backend/webgpu/kernels/indexer.js';
import { indexerScores } from '../../src/backend/cpu/kernels/indexer.js';
import { readF32, rng, upload, useGpu } from './helpers.js';
import { decodeRows } from '../../src/backend/webgpu/kernels/indexer-direct.js';
import { onePageTable } from '../../src/backend/webgpu/kernels/pages.js';
import { indexerFusedAvailable, indexerScoresFusedGpu } from '../../src/backend/webgpu/kernels/indexer-fused.js';
import { FUSED2_CONFIGS, FUSED2_SWEEP, fused2Wgsl, indexerFused2Available, indexerScoresFused2Gpu, type Fused2Config } from '../../src/backend/webgpu/kernels/indexer-fused2.js';
import { E4M3_TABLE } from '../../src/numerics/e4m3.js';
import { f16ToF32 } from '../../src/numerics/f16.js';
import { E4M3_PAIR_TO_F16_WGSL } from '../../src/backend/webgpu/kernels/wgsl.js';

const gpu = useGpu();

/** Random e4m3 codes, never NaN (0x7f, 0xff); about a quarter subnormal or zero, half negative. */
function codes(n: number, r: () => number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const sign = r() < 0.5 ? 0x80 : 0;
    const exp = r() < 0.25 ? 0 : 1 + Math.floor(r() * 14); // 1..14 keeps clear of NaN
    out[i] = sign | (exp << 3) | Math.floor(r() * 8);
  }
  return out;
}

/** indexerScoresGpu on host arrays (uploaded here), its rows × nKeys scores read back. */
async function scoresGpu(
  q8: Uint8Array,
  w: Float32Array,
  kCache: Uint8Array,
  kScale: Float32Array,
  table: Int32Array,
  pageSize: number,
  positions: Int32Array,
  shape: { rows: number; heads: number; dim: number; nKeys: number },
  variant?: IndexerVariant,
): Promise<Float32Array> {
  const { rows, heads, dim, nKeys } = shape;
  const g = gpu();
  const out = indexerScoresGpu(g, {
    q8: upload(g, q8),
    w: upload(g, w),
    kCache: upload(g, kCache),
    kScale: upload(g, kScale),
    table: upload(g, table),
    tableLength: table.length,
    pageSize,
    positions: upload(g, positions),
    rows,
    heads,
    dim,
    nKeys,
    variant,
  });
  return readF32(g, out, rows * nKeys);
}

const cases = [
  { rows: 3, heads: 4, dim: 16, nKeys: 14, positions: [5, 9, 13], table: [5, 2, 7, 0], seed: 1 },
  // dim not a multiple of 4 (codes straddle words), a row past nKeys, a row with no keys.
  { rows: 4, heads: 3, dim: 10, nKeys: 11, positions: [0, 20, -1, 7], table: [3, 1, 4], seed: 2 },
  // More keys than one workgroup tile.
  { rows: 2, heads: 2, dim: 8, nKeys: 70, positions: [69, 40], table: Array.from({ length: 18 }, (_, i) => (i * 7) % 18), seed: 3 },
  // Shapes the tensor-core variant takes (H, D multiples of 16), several key tiles, more than 16 heads.
  { rows: 2, heads: 32, dim: 48, nKeys: 150, positions: [149, 77], table: Array.from({ length: 38 }, (_, i) => (i * 5) % 38), seed: 4 },
  // The fused kernels' shapes (H, D multiples of 32; DeepSeek-V3.2's 64 × 128 needs more than
  // lavapipe's 32 KiB of shared memory): keys in several tiles of 64 and a partial last tile, a row
  // masked from mid-tile, a row with no keys.
  { rows: 3, heads: 32, dim: 128, nKeys: 200, positions: [199, 70, -1], table: Array.from({ length: 50 }, (_, i) => (i * 7) % 50), seed: 5 },
  { rows: 2, heads: 64, dim: 64, nKeys: 130, positions: [129, 127], table: Array.from({ length: 33 }, (_, i) => (i * 5) % 33), seed: 6 },
];

/** Whether a variant runs on this device for a shape (the 'matrix' ones need tensor cores: not on lavapipe). */
function available(v: IndexerVariant, heads: number, dim: number): boolean {
  return indexerVariantAvailable(gpu(), v, heads, dim);
}

for (const variant of INDEXER_VARIANTS) for (const c of cases) {
  test(`indexer scores (${variant}): T ${c.rows}, H ${c.heads}, D ${c.dim}, S ${c.nKeys}, paged (pageSize 4) equal the CPU twin`, async (t) => {
    if (!available(variant, c.heads, c.dim)) {
      t.skip(`the ${variant} variant does not run on this adapter for H ${c.heads}, D ${c.dim}`);
      return;
    }
    const r = rng(c.seed);
    const pageSize = 4;
    const table = Int32Array.from(c.table);
    const slots = (Math.max(...c.table) + 1) * pageSize;
    const q8 = codes(c.rows * c.heads * c.dim, r);
    const kCache = codes(slots * c.dim, r);
    const w = Float32Array.from({ length: c.rows * c.heads }, () => r() - 0.3);
    const kScale = Float32Array.from({ length: slots }, () => 0.01 + r());
    const positions = Int32Array.from(c.positions);
    const want = indexerScores(q8, c.rows, c.heads, c.dim, w, kCache, kScale, { table, pageSize }, c.nKeys, positions);
    const got = await scoresGpu(q8, w, kCache, kScale, table, pageSize, positions, c, variant);
    let positive = 0;
    for (let t = 0; t < c.rows; t++) {
      let scale = 0;
      for (let s = 0; s < c.nKeys; s++) if (Number.isFinite(want[t * c.nKeys + s]!)) scale = Math.max(scale, Math.abs(want[t * c.nKeys + s]!));
      for (let s = 0; s < c.nKeys; s++) {
        const i = t * c.nKeys + s;
        if (s > c.positions[t]!) {
          assert.equal(got[i], -Infinity, `row ${t} key ${s} must be masked`);
          assert.equal(want[i], -Infinity);
        } else {
          assert.ok(Number.isFinite(got[i]!), `row ${t} key ${s}: ${got[i]}`);
          assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-5 * Math.max(scale, 1e-6), `row ${t} key ${s}: ${got[i]} vs ${want[i]} (scale ${scale})`);
          if (want[i]! !== 0) positive++;
        }
      }
    }
    assert.ok(positive > 0, 'some scores are non-zero');
  });
}

test('indexer scores: all-zero queries give exact zeros before the mask', async () => {
  const rows = 1;
  const heads = 2;
  const dim = 4;
  const nKeys = 6;
  const q8 = new Uint8Array(rows * heads * dim).fill(0x80); // -0
  const kCache = codes(8 * dim, rng(9));
  const w = Float32Array.of(1, 2);
  const kScale = new Float32Array(8).fill(1);
  const table = Int32Array.of(1, 0);
  const positions = Int32Array.of(3);
  const got = Array.from(await scoresGpu(q8, w, kCache, kScale, table, 4, positions, { rows, heads, dim, nKeys }));
  assert.deepEqual(got.map((v) => (v === 0 ? 0 : v)), [0, 0, 0, 0, -Infinity, -Infinity]);
});

for (const variant of ['naive', 'tiled'] as const) test(`indexer scores (${variant}): every non-NaN e4m3 code decodes exactly (±1 queries, one head, dim 1)`, async () => {
  const keyCodes = Uint8Array.from({ length: 256 }, (_, i) => i).filter((c) => (c & 0x7f) !== 0x7f);
  const nKeys = keyCodes.length; // 254
  const pageSize = 4;
  const table = Int32Array.from({ length: Math.ceil(nKeys / pageSize) }, (_, i) => i);
  const q8 = Uint8Array.of(0x38, 0xb8); // +1, −1
  const w = Float32Array.of(1, 1);
  const kScale = new Float32Array(table.length * pageSize).fill(1);
  const positions = Int32Array.of(nKeys, nKeys);
  const want = indexerScores(q8, 2, 1, 1, w, keyCodes, kScale, { table, pageSize }, nKeys, positions);
  const got = await scoresGpu(q8, w, keyCodes, kScale, table, pageSize, positions, { rows: 2, heads: 1, dim: 1, nKeys }, variant);
  assert.deepEqual(Array.from(got), Array.from(want));
});

test('indexer (matrix-direct): FP8 rows decode to f16 exactly, in rows or in transposed tiles of 64, through the block table', async (t) => {
  const g = gpu();
  if (!g.features.has('shader-f16')) {
    t.skip('this adapter has no shader-f16');
    return;
  }
  const dim = 8;
  const pageSize = 4;
  const n = 70; // two tiles of 64, the second padded with zero rows
  const table = Int32Array.from({ length: Math.ceil(n / pageSize) }, (_, i) => (i * 7) % 18);
  const kc = codes(18 * pageSize * dim, rng(12));
  for (const tile of [0, 64]) {
    const padded = 128;
    const out = decodeRows(g, `test.${tile}`, upload(g, kc), onePageTable(upload(g, table), table.length, pageSize), n, padded, dim, tile);
    const halves = new Uint16Array(await g.read(out, padded * dim * 2));
    for (let s = 0; s < padded; s++) {
      const slot = s < n ? table[Math.floor(s / pageSize)]! * pageSize + (s % pageSize) : -1;
      for (let d = 0; d < dim; d++) {
        const at = tile === 0 ? s * dim + d : Math.floor(s / tile) * tile * dim + d * tile + (s % tile);
        const want = slot < 0 ? 0 : E4M3_TABLE[kc[slot * dim + d]!]!;
        assert.ok(Object.is(f16ToF32(halves[at]!), want) || (want === 0 && f16ToF32(halves[at]!) === 0), `tile ${tile}: key ${s} dim ${d}: ${f16ToF32(halves[at]!)} vs ${want}`);
      }
    }
  }
});

test('indexer (matrix-fused): dec2 turns every pair of non-NaN e4m3 codes into their exact f16 values', async (t) => {
  const g = gpu();
  if (!g.features.has('shader-f16')) {
    t.skip('this adapter has no shader-f16');
    return;
  }
  // Invocation i decodes the pair (i & 0xff, i >> 8): all 65536 pairs.
  const code = /* wgsl */ `
enable f16;
@group(0) @binding(0) var<storage, read_write> out: array<vec2<f16>>;
${E4M3_PAIR_TO_F16_WGSL}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3u) {
  let i = id.x;
  out[i] = dec2((i & 0xffu) | ((i >> 8u) << 16u));
}
`;
  const out = g.buffer(65536 * 4);
  g.dispatch(code, [out], [256]);
  const halves = new Uint16Array(await g.read(out, 65536 * 4));
  for (let i = 0; i < 65536; i++) {
    const lo = i & 0xff;
    const hi = i >> 8;
    if ((lo & 0x7f) === 0x7f || (hi & 0x7f) === 0x7f) continue;
    assert.ok(Object.is(f16ToF32(halves[2 * i]!), E4M3_TABLE[lo]!), `code 0x${lo.toString(16)}: ${f16ToF32(halves[2 * i]!)} vs ${E4M3_TABLE[lo]}`);
    assert.ok(Object.is(f16ToF32(halves[2 * i + 1]!), E4M3_TABLE[hi]!), `code 0x${hi.toString(16)}: ${f16ToF32(halves[2 * i + 1]!)} vs ${E4M3_TABLE[hi]}`);
  }
});

test('indexer (fused, scalar products): runs of several key tiles per workgroup (the next tile read while one is multiplied), 4 or 8 subgroups, heads reduced through shared memory or by shuffles, equal the CPU twin', async (t) => {
  const g = gpu();
  const heads = 64;
  const dim = 64;
  if (!indexerFusedAvailable(g, heads, dim, { scalar: true })) {
    t.skip('this adapter cannot run the fused kernel (shader-f16, shared memory)');
    return;
  }
  const r = rng(21);
  const pageSize = 16;
  const nKeys = 500; // 8 tiles; runs of 3 leave a short last run
  const nPages = Math.ceil(nKeys / pageSize);
  const table = Int32Array.from({ length: nPages }, (_, i) => (i * 11) % nPages);
  const positions = Int32Array.of(499, 300);
  const rows = 2;
  const q8 = codes(rows * heads * dim, r);
  const kCache = codes(nPages * pageSize * dim, r);
  const w = Float32Array.from({ length: rows * heads }, () => r() - 0.3);
  const kScale = Float32Array.from({ length: nPages * pageSize }, () => 0.01 + r());
  const want = indexerScores(q8, rows, heads, dim, w, kCache, kScale, { table, pageSize }, nKeys, positions);
  for (const [subgroups, shuffle] of [[4, false], [4, true], [8, false], [8, true]] as const) {
    if (!indexerFusedAvailable(g, heads, dim, { scalar: true, subgroups })) continue; // 8 needs D ≥ 128: more shared memory than lavapipe has
    if (shuffle && !g.features.has('subgroups')) continue;
    const out = g.buffer(rows * nKeys * 4);
    indexerScoresFusedGpu(g, {
      q8: upload(g, q8), w: upload(g, w), kCache: upload(g, kCache), kScale: upload(g, kScale), table: upload(g, table), tableLength: nPages, pageSize,
      positions: upload(g, positions), rows, heads, dim, nKeys,
    }, out, { scalar: true, tilesPerGroup: 3, subgroups, shuffle });
    const got = await readF32(g, out, rows * nKeys);
    for (let i = 0; i < want.length; i++) {
      if (want[i] === -Infinity) assert.equal(got[i], -Infinity, `${subgroups} subgroups, shuffle ${shuffle}: ${i} must be masked`);
      else assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-5 * Math.max(1, Math.abs(want[i]!)) + 1e-3, `${subgroups} subgroups, shuffle ${shuffle}: ${i}: ${got[i]} vs ${want[i]}`);
    }
  }
});

test('indexer (fused2, scalar products): tiles of 32 or 64 keys, 4 or 8 subgroups, runs of several tiles, head weights in shared memory or registers, key scales read ahead or late, key words one or two tiles ahead, heads reduced by shuffles or through shared memory, equal the CPU twin', async (t) => {
  const g = gpu();
  const r = rng(22);
  const pageSize = 16;
  const nKeys = 500; // runs of 3 tiles leave a short last run
  const nPages = Math.ceil(nKeys / pageSize);
  const table = Int32Array.from({ length: nPages }, (_, i) => (i * 11) % nPages);
  const positions = Int32Array.of(499, 300);
  const rows = 2;
  let ran = 0;
  for (const [heads, dim] of [[64, 64], [32, 128]] as const) {
    const q8 = codes(rows * heads * dim, r);
    const kCache = codes(nPages * pageSize * dim, r);
    const w = Float32Array.from({ length: rows * heads }, () => r() - 0.3);
    const kScale = Float32Array.from({ length: nPages * pageSize }, () => 0.01 + r());
    const want = indexerScores(q8, rows, heads, dim, w, kCache, kScale, { table, pageSize }, nKeys, positions);
    const args = {
      q8: upload(g, q8), w: upload(g, w), kCache: upload(g, kCache), kScale: upload(g, kScale), table: upload(g, table), tableLength: nPages, pageSize,
      positions: upload(g, positions), rows, heads, dim, nKeys,
    };
    const configs: Fused2Config[] = [{ kt: 64, sgk: 4, sgh: 2 }, { kt: 32, sgk: 2, sgh: 2 }, { kt: 32, sgk: 2, sgh: 4 }, { kt: 64, sgk: 2, sgh: 2 }, { kt: 32, sgk: 2, sgh: 2, wRegs: true }, { kt: 64, sgk: 2, sgh: 2, wRegs: true }, { kt: 32, sgk: 2, sgh: 2, lateScale: true }, { kt: 32, sgk: 2, sgh: 2, wRegs: true, ahead: 2 }];
    for (const base of configs) for (const shuffle of [true, false]) {
      const c: Fused2Config = { ...base, scalar: true, tilesPerGroup: 3, shuffle };
      if (!indexerFused2Available(g, heads, dim, c) || (shuffle && !g.features.has('subgroups'))) continue;
      const out = g.buffer(rows * nKeys * 4);
      indexerScoresFused2Gpu(g, args, out, c);
      const got = await readF32(g, out, rows * nKeys);
      const tag = `H ${heads} D ${dim} ${JSON.stringify(base)} shuffle ${shuffle}`;
      // f32 sums of D products against the twin's float64: errors relative to the row's largest score.
      for (let row = 0; row < rows; row++) {
        const span = want.subarray(row * nKeys, (row + 1) * nKeys);
        const scale = Math.max(...Array.from(span).filter(Number.isFinite).map(Math.abs));
        for (let s = 0; s < nKeys; s++) {
          const i = row * nKeys + s;
          if (want[i] === -Infinity) assert.equal(got[i], -Infinity, `${tag}: ${i} must be masked`);
          else assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-5 * scale, `${tag}: ${i}: ${got[i]} vs ${want[i]} (scale ${scale})`);
        }
      }
      ran++;
    }
  }
  if (ran === 0) t.skip('this adapter cannot run the fused2 kernel (shader-f16, shared memory)');
  else assert.ok(ran >= 4, `${ran} forms ran`);
});

test("indexer (fused2): the generated WGSL keeps the H200 stack's rules, one product per head block, key block and 16 dims", () => {
  // Wrong products were seen on the H200 with column-major loads from shared memory and with matrix
  // products under loop bounds from workgroupUniformLoad (docs/webgpu.md); accumulators are named.
  const forms = { ...FUSED2_CONFIGS, ...FUSED2_SWEEP } as Record<string, Fused2Config>;
  for (const [name, c] of Object.entries(forms)) {
    if (c.scalar) continue;
    const [H, D] = [64, 128];
    const code = fused2Wgsl(H, D, 64, c, true);
    const loads = code.match(/subgroupMatrixLoad<[^>]+>>\([^;]*\);/g) ?? [];
    const products = code.match(/subgroupMatrixMultiplyAccumulate/g) ?? [];
    assert.equal(products.length, (c.kt / c.sgk / 16) * (H / c.sgh / 16) * (D / 16), `${name}: products per subgroup and tile`);
    assert.ok(loads.length > 0 && loads.every((l) => /, false, \d+u\);$/.test(l)), `${name}: every matrix load is row-major`);
    assert.ok(!/array<subgroup_matrix/.test(code), `${name}: no arrays of matrices`);
    assert.ok(!/workgroupUniformLoad/.test(code), `${name}: no workgroupUniformLoad`);
  }
  assert.ok(!/subgroup_matrix/.test(fused2Wgsl(64, 128, 64, FUSED2_CONFIGS['fused2-scalar'], true)), 'the scalar twin uses no matrices');
});
