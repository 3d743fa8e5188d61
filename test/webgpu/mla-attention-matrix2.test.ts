/**
 * The second tensor-core MLA attention kernel (mla-attention-matrix2.ts) against its CPU twin.
 * Its scalar form (plain f32 products over the same shared tiles and f16 operands) runs on any
 * adapter with shader-f16 (lavapipe here), so the gather, the layouts, the softmax, the splits and
 * the combine are checked everywhere; the tensor-core form runs where the adapter has
 * subgroup-matrix f16 with subgroups of 32 (else skipped). Shapes fit lavapipe's 32 KiB of shared
 * memory: 64 heads.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { latentRowWidth } from '../../src/backend/backend.js';
import { packLatent } from '../../src/backend/cpu/kernels/latent.js';
import { mlaAttention } from '../../src/backend/cpu/kernels/mla-attention.js';
import { matrix2Sources, matrix2Splits, mlaAttentionMatrix2Gpu, mlaMatrix2Available, type Matrix2Options } from '../../src/backend/webgpu/kernels/mla-attention-matrix2.js';
import type { GpuPages } from '../../src/backend/webgpu/kernels/pages.js';
import { maxDiff, random, readF32, rng, sparseRows, upload, useGpu } from './helpers.js';

const gpu = useGpu();

/** Sequences over one pool of pages (interleaved), and the rows of a step: their sequence and position. */
interface Layout {
  pageSize: number;
  tables: number[][];
  poolPages: number;
  rowSeq: number[];
  positions: number[];
  /** One sequence with a 1-D table (rowSeq not bound). */
  single: boolean;
}

function layout(lens: number[], pageSize: number, rowSeq: number[], positions: number[], seed: number): Layout {
  const r = rng(seed);
  const counts = lens.map((l) => Math.ceil(l / pageSize));
  const poolPages = counts.reduce((a, b) => a + b, 0) + 1;
  const perm = Array.from({ length: poolPages }, (_, i) => i);
  for (let i = perm.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  let at = 0;
  const tables = counts.map((c) => perm.slice(at, (at += c)));
  return { pageSize, tables, poolPages, rowSeq, positions, single: lens.length === 1 };
}

function gpuPages(l: Layout): GpuPages {
  const g = gpu();
  if (l.single) return { table: upload(g, Int32Array.from(l.tables[0]!)), nPages: l.tables[0]!.length, pageSize: l.pageSize, rowSeq: null, seqs: 1 };
  const maxPages = Math.max(...l.tables.map((t) => t.length));
  const table = new Int32Array(l.tables.length * maxPages).fill(-1);
  l.tables.forEach((t, s) => table.set(t, s * maxPages));
  return { table: upload(g, table), nPages: maxPages, pageSize: l.pageSize, rowSeq: upload(g, Int32Array.from(l.rowSeq)), seqs: l.tables.length };
}

function take<A extends Float32Array | Int32Array>(a: A, width: number, idx: number[]): A {
  const out = new (a.constructor as new (n: number) => A)(idx.length * width);
  idx.forEach((t, j) => out.set(a.subarray(t * width, (t + 1) * width), j * width));
  return out;
}

interface Case {
  name: string;
  format: 'f32' | 'bf16';
  heads: number;
  r: number;
  dr: number;
  l: Layout;
  /** Selected entries per row, or 0 for dense. */
  k: number;
  o: Matrix2Options;
}

const one = layout([300], 16, [0, 0, 0], [299, 170, 64], 3);
const three = layout([150, 70, 200], 16, [2, 0, 1, 0, 2], [199, 149, 69, 30, 120], 5);
const cases: Case[] = [
  { name: 'bf16 sparse (K 150: 3 tiles, −1 entries), one sequence, 2 tiles per split', format: 'bf16', heads: 64, r: 128, dr: 64, l: one, k: 150, o: { tilesPerSplit: 2 } },
  { name: 'bf16 sparse (K 150), three sequences in one grid (rowSeq), 2 tiles per split, no prefetch', format: 'bf16', heads: 64, r: 128, dr: 64, l: three, k: 150, o: { tilesPerSplit: 2, prefetch: false } },
  { name: 'f32 sparse (K 150), one sequence, one tile per split', format: 'f32', heads: 64, r: 128, dr: 64, l: one, k: 150, o: { tilesPerSplit: 1 } },
  { name: 'bf16 dense, one sequence, r 256 (two value chunks)', format: 'bf16', heads: 64, r: 256, dr: 64, l: one, k: 0, o: {} },
  { name: 'bf16 sparse (K 150), three sequences in one grid (rowSeq), 3 tiles per split', format: 'bf16', heads: 64, r: 128, dr: 64, l: three, k: 150, o: { tilesPerSplit: 3 } },
  { name: 'f32 dense, three sequences in one grid (rowSeq), 2 tiles per split', format: 'f32', heads: 64, r: 128, dr: 64, l: three, k: 0, o: { tilesPerSplit: 2 } },
  { name: 'bf16 dense, three sequences in one grid (rowSeq), default splits', format: 'bf16', heads: 64, r: 256, dr: 64, l: three, k: 0, o: {} },
];

async function run(c: Case, scalar: boolean): Promise<{ max: number; scale: number }> {
  const { format, heads, r, dr, l, k } = c;
  const rows = l.rowSeq.length;
  const slots = l.poolPages * l.pageSize;
  const latent = packLatent(random(slots * r, 3 + r), random(slots * dr, 4 + dr), slots, r, dr, format);
  const width = latentRowWidth(format, r, dr);
  const qLat = random(rows * heads * r, 5, 2);
  const qPe = random(rows * heads * dr, 6, 2);
  const positions = Int32Array.from(l.positions);
  const indices = k > 0 ? sparseRows(l.positions, k, 9, k - 3) : null;
  const scale = 1 / Math.sqrt(r + dr);
  const shape = { rows, heads, r, dr };
  const want = new Float32Array(rows * heads * r);
  l.tables.forEach((table, s) => {
    const idx = l.rowSeq.flatMap((q, t) => (q === s ? [t] : []));
    const alone = mlaAttention(
      take(qLat, heads * r, idx), take(qPe, heads * dr, idx), latent, width, { table: Int32Array.from(table), pageSize: l.pageSize },
      take(positions, 1, idx), indices ? take(indices, k, idx) : null, k, { rows: idx.length, heads, r, dr }, scale,
    );
    idx.forEach((t, j) => want.set(alone.subarray(j * heads * r, (j + 1) * heads * r), t * heads * r));
  });
  const g = gpu();
  const pages = gpuPages(l);
  const out = mlaAttentionMatrix2Gpu(g, {
    qLat: upload(g, qLat), qPe: upload(g, qPe), latent: upload(g, latent.data), format, pages, positions: upload(g, positions),
    indices: indices ? upload(g, indices) : null, k, nKeys: pages.nPages * pages.pageSize, shape, scale,
  }, { ...c.o, scalar });
  const got = await readF32(g, out, want.length);
  assert.ok(got.every(Number.isFinite), 'every output is finite');
  return maxDiff(got, want);
}

for (const c of cases) {
  for (const scalar of [true, false]) {
    test(`mlaAttention (tensor cores, second form${scalar ? ', scalar twin' : ''}) ${c.name}: H ${c.heads}, r ${c.r}, dr ${c.dr} equals the CPU twin within f16 rounding`, async (t) => {
      if (!mlaMatrix2Available(gpu(), { rows: 1, heads: c.heads, r: c.r, dr: c.dr }, c.format, { scalar })) {
        t.skip(scalar ? 'no shader-f16 on this adapter' : 'no subgroup-matrix tensor cores (with subgroups of 32) on this adapter');
        return;
      }
      const { max, scale } = await run(c, scalar);
      console.log(`matrix2${scalar ? ' scalar' : ''} ${c.name}: max abs diff ${max} (max |out| ${scale})`);
      assert.ok(scale > 0.1, 'outputs are not trivial');
      assert.ok(max <= 1e-3 * scale, `max abs diff ${max} (max |out| ${scale})`);
    });
  }
}

test('mlaAttention (tensor cores, second form, scalar twin): rows of only −1 entries, or of a sequence outside the table, give zeros', async (t) => {
  const shape = { rows: 3, heads: 64, r: 128, dr: 64 };
  if (!mlaMatrix2Available(gpu(), shape, 'bf16', { scalar: true })) {
    t.skip('no shader-f16 on this adapter');
    return;
  }
  const g = gpu();
  const l = layout([100, 60], 16, [0, 5, 1], [99, 40, 59], 8);
  const slots = l.poolPages * l.pageSize;
  const latent = packLatent(random(slots * 128, 1), random(slots * 64, 2), slots, 128, 64, 'bf16');
  const k = 70;
  const indices = sparseRows(l.positions, k, 4, k - 3);
  indices.fill(-1, 0, k); // row 0: nothing selected; row 1: sequence 5 does not exist
  const out = mlaAttentionMatrix2Gpu(g, {
    qLat: upload(g, random(3 * 64 * 128, 3)), qPe: upload(g, random(3 * 64 * 64, 4)), latent: upload(g, latent.data), format: 'bf16', pages: gpuPages(l),
    positions: upload(g, Int32Array.from(l.positions)), indices: upload(g, indices), k, nKeys: 0, shape, scale: 0.1,
  }, { scalar: true });
  const got = await readF32(g, out, 3 * 64 * 128);
  assert.ok(got.subarray(0, 2 * 64 * 128).every((x) => x === 0), 'rows 0 and 1 are zeros');
  assert.ok(got.subarray(2 * 64 * 128).some((x) => x !== 0), 'row 2 attends');
});

test('mlaAttention (tensor cores, second form): splits are runs of tiles covering every tile, about the asked number of workgroups', () => {
  // DeepSeek-V3.2 at batch 16, K 2048: 32 tiles, 16 rows × 4 chunks of r → by default (128
  // workgroups from 8 rows) 2 splits of 16 tiles; asked for 512, 8 splits of 4.
  assert.deepEqual(matrix2Splits(32, 16, 512, {}), { splits: 2, tilesPerSplit: 16 });
  assert.deepEqual(matrix2Splits(32, 16, 512, { groups: 512 }), { splits: 8, tilesPerSplit: 4 });
  // One row: 1024 workgroups by default, so one tile per split.
  assert.deepEqual(matrix2Splits(32, 1, 512, {}), { splits: 32, tilesPerSplit: 1 });
  assert.deepEqual(matrix2Splits(3, 1, 128, { tilesPerSplit: 2 }), { splits: 2, tilesPerSplit: 2 });
  for (const [tiles, n, o] of [[7, 3, {}], [2048, 16, {}], [33, 2, { groups: 100 }]] as const) {
    const s = matrix2Splits(tiles, n, 512, o);
    assert.ok(s.splits * s.tilesPerSplit >= tiles && (s.splits - 1) * s.tilesPerSplit < tiles, `${tiles} tiles: ${JSON.stringify(s)}`);
  }
});

test("mlaAttention (tensor cores, second form): the generated WGSL keeps the H200 stack's rules", () => {
  // Wrong products were seen on the H200 (Dawn, Vulkan) with column-major loads from shared memory
  // and with matrix products under loop bounds from workgroupUniformLoad; accumulators are named
  // variables, never arrays of matrices indexed at run time (docs/webgpu.md).
  for (const heads of [64, 128, 256]) {
    for (const format of ['f32', 'bf16'] as const) {
      const src = matrix2Sources({ rows: 1, heads, r: 512, dr: 64 }, format);
      for (const pass of ['scores', 'values'] as const) {
        const code = src[pass];
        const loads = code.match(/subgroupMatrixLoad<[^>]+>>\([^;]*\);/g) ?? [];
        const products = code.match(/subgroupMatrixMultiplyAccumulate/g) ?? [];
        assert.equal(products.length, pass === 'scores' ? 4 * ((4 * heads) / 16 / 8) : 4 * ((heads / 16) * 8) / 8, `${pass} ${heads} ${format}: products per subgroup and tile`);
        assert.ok(loads.length > 0 && loads.every((l) => /, false, \w+u?\);$/.test(l)), `${pass}: every matrix load is row-major`);
        assert.ok(!/array<subgroup_matrix/.test(code), `${pass}: no arrays of matrices`);
        assert.ok(!/workgroupUniformLoad/.test(code), `${pass}: no workgroupUniformLoad`);
        // The only run-time loop around the products: the tiles of a split (a uniform) or the chunks of a row (a constant).
        const loops = code.match(/for \([^)]*\)/g) ?? [];
        assert.ok(loops.some((l) => (pass === 'scores' ? /c < \d+u/ : /tt < p\.tilesPerSplit/).test(l)), `${pass}: ${loops.join(' | ')}`);
      }
      const scalar = matrix2Sources({ rows: 1, heads, r: 512, dr: 64 }, format, { scalar: true });
      assert.ok(!/subgroup/.test(scalar.scores + scalar.values), 'the scalar twin uses no subgroup operations');
    }
  }
});
