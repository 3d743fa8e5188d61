/**
 * The paged-cache kernels with the rows of several sequences in one grid (rowSeq over a 2-D block
 * table, kernels/pages.ts) against their CPU twins run on each sequence alone: writeRows, every
 * indexer variant (with the per-row key decoding of 'matrix-direct'), MLA attention (f32 kernel,
 * every latent format, dense and sparse; the tensor-core kernel where the adapter has it).
 *
 * The batch: three sequences of 37, 70 and 13 positions whose pages lie in shuffled order over one
 * pool (two pages of it unused), and seven rows in mixed order — rows of one sequence are not
 * adjacent, and their positions differ (some rows prefill-like, some at the sequence's end).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { latentRowWidth, type DType, type LatentFormat } from '../../src/backend/backend.js';
import { CpuBackend } from '../../src/backend/cpu.js';
import { indexerScores } from '../../src/backend/cpu/kernels/indexer.js';
import { packLatent } from '../../src/backend/cpu/kernels/latent.js';
import { mlaAttention } from '../../src/backend/cpu/kernels/mla-attention.js';
import { WebGpuBackend } from '../../src/backend/webgpu.js';
import { decodeRows, indexerDirectFits } from '../../src/backend/webgpu/kernels/indexer-direct.js';
import { INDEXER_VARIANTS, indexerScoresGpu, indexerVariantAvailable, indexerVariantOf } from '../../src/backend/webgpu/kernels/indexer.js';
import { mlaAttentionGpu } from '../../src/backend/webgpu/kernels/mla-attention.js';
import { mlaAttentionMatrixGpu, mlaEntrySlotsGpu, mlaMatrixAvailable } from '../../src/backend/webgpu/kernels/mla-attention-matrix.js';
import type { GpuPages } from '../../src/backend/webgpu/kernels/pages.js';
import { writeRowsGpu } from '../../src/backend/webgpu/kernels/rows.js';
import { E4M3_TABLE } from '../../src/numerics/e4m3.js';
import { f16ToF32 } from '../../src/numerics/f16.js';
import { maxDiff, random, readF32, rng, sparseRows, upload, useGpu } from './helpers.js';

const gpu = useGpu();

interface Batch {
  pageSize: number;
  /** Each sequence's pages, in position order. */
  tables: number[][];
  maxPages: number;
  /** i32 [seqs, maxPages], −1 past a sequence's pages. */
  table2d: Int32Array;
  slots: number;
  rowSeq: Int32Array;
  positions: Int32Array;
}

/** Sequences of `lens` positions, pages shuffled over one pool of two pages more than they need. */
function makeBatch(lens: number[], pageSize: number, rowSeq: number[], positions: number[], seed: number): Batch {
  const r = rng(seed);
  const counts = lens.map((l) => Math.ceil(l / pageSize));
  const total = counts.reduce((a, b) => a + b, 0) + 2;
  const perm = Array.from({ length: total }, (_, i) => i);
  for (let i = total - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  let at = 0;
  const tables = counts.map((c) => perm.slice(at, (at += c)));
  const maxPages = Math.max(...counts);
  const table2d = new Int32Array(lens.length * maxPages).fill(-1);
  tables.forEach((t, s) => table2d.set(t, s * maxPages));
  return { pageSize, tables, maxPages, table2d, slots: total * pageSize, rowSeq: Int32Array.from(rowSeq), positions: Int32Array.from(positions) };
}

const BATCH = makeBatch([37, 70, 13], 4, [1, 0, 2, 1, 0, 2, 1], [69, 36, 12, 20, 5, 0, 50], 21);
const ROWS = BATCH.rowSeq.length;

/** The batch's table on the device, with rowSeq. */
function gpuPages(b: Batch, rowSeq = b.rowSeq): GpuPages {
  return { table: upload(gpu(), b.table2d), nPages: b.maxPages, pageSize: b.pageSize, rowSeq: upload(gpu(), rowSeq), seqs: b.tables.length };
}

/** The rows of sequence s, in order. */
function rowsOf(b: Batch, s: number): number[] {
  return Array.from(b.rowSeq.keys()).filter((t) => b.rowSeq[t] === s);
}

/** Rows `idx` of a [*, width] array, stacked. */
function take<A extends Float32Array | Int32Array | Uint8Array | Uint16Array>(a: A, width: number, idx: number[]): A {
  const out = new (a.constructor as new (n: number) => A)(idx.length * width);
  idx.forEach((t, j) => out.set(a.subarray(t * width, (t + 1) * width), j * width));
  return out;
}

/** Random e4m3 codes, never NaN. */
function codes(n: number, r: () => number): Uint8Array {
  return Uint8Array.from({ length: n }, () => {
    const c = Math.floor(r() * 256);
    return (c & 0x7f) === 0x7f ? c ^ 1 : c;
  });
}

// ---- writeRows ----

function randomOf(dtype: DType, n: number, seed: number): Float32Array | Int32Array | Uint16Array | Uint8Array {
  const r = rng(seed);
  if (dtype === 'f32') return random(n, seed);
  if (dtype === 'i32') return Int32Array.from({ length: n }, () => Math.floor(r() * 2 ** 31));
  if (dtype === 'bf16') return Uint16Array.from({ length: n }, () => Math.floor(r() * 65536));
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

async function readAs(dtype: DType, b: GPUBuffer, n: number): Promise<number[]> {
  const bytes = await gpu().read(b, n * (dtype === 'u8' ? 1 : dtype === 'bf16' ? 2 : 4));
  const a = dtype === 'f32' ? new Float32Array(bytes) : dtype === 'i32' ? new Int32Array(bytes) : dtype === 'bf16' ? new Uint16Array(bytes) : new Uint8Array(bytes);
  return Array.from(a);
}

for (const [dtype, width, n, colOffset] of [
  ['f32', 11, 5, 3],
  ['u8', 24, 8, 12],
  // Element by element (rows inside words).
  ['bf16', 7, 3, 4],
  ['u8', 10, 5, 3],
] as const) {
  test(`writeRows ${dtype} [slots, ${width}] ← [${ROWS}, ${n}] at column ${colOffset}, three sequences in one grid: equal to the CPU per sequence`, async () => {
    const b = BATCH;
    const dst = randomOf(dtype, b.slots * width, 7);
    const src = randomOf(dtype, ROWS * n, 8);
    const cpu = new CpuBackend({ kernels: 'js' });
    const d = cpu.upload(dst.slice(), [b.slots, width]);
    b.tables.forEach((table, s) => {
      const idx = rowsOf(b, s);
      const pages = { blockTable: cpu.upload(Int32Array.from(table), [table.length]), pageSize: b.pageSize };
      cpu.writeRows(d, pages, cpu.upload(take(b.positions, 1, idx), [idx.length]), cpu.upload(take(src, n, idx), [idx.length, n]), colOffset);
    });
    const want = Array.from(await cpu.read(d));
    const pg = gpuPages(b);
    const db = upload(gpu(), dst);
    writeRowsGpu(gpu(), {
      dst: db, dtype, slots: b.slots, width, table: pg.table, nPages: pg.nPages, pageSize: b.pageSize, rowSeq: pg.rowSeq, seqs: pg.seqs,
      positions: upload(gpu(), b.positions), src: upload(gpu(), src), rows: ROWS, n, colOffset,
    });
    assert.deepEqual(await readAs(dtype, db, b.slots * width), want);
    assert.notDeepEqual(want, Array.from(dst), 'the rows were written');
  });
}

test('writeRows: rows whose rowSeq is outside the table are skipped (a kernel cannot throw)', async () => {
  const b = BATCH;
  const [width, n] = [6, 6];
  const dst = random(b.slots * width, 3);
  const src = random(ROWS * n, 4);
  const bad = b.rowSeq.slice();
  bad[1] = 3; // three sequences: 0..2
  bad[4] = -1;
  const db = upload(gpu(), dst);
  const pg = gpuPages(b, bad);
  writeRowsGpu(gpu(), {
    dst: db, dtype: 'f32', slots: b.slots, width, table: pg.table, nPages: pg.nPages, pageSize: b.pageSize, rowSeq: pg.rowSeq, seqs: pg.seqs,
    positions: upload(gpu(), b.positions), src: upload(gpu(), src), rows: ROWS, n, colOffset: 0,
  });
  const want = Array.from(dst);
  for (let t = 0; t < ROWS; t++) {
    if (bad[t]! < 0 || bad[t]! > 2) continue;
    const p = b.positions[t]!;
    const slot = b.tables[bad[t]!]![Math.floor(p / b.pageSize)]! * b.pageSize + (p % b.pageSize);
    for (let c = 0; c < n; c++) want[slot * width + c] = src[t * n + c]!;
  }
  assert.deepEqual(Array.from(await readF32(gpu(), db, b.slots * width)), want);
});

// ---- indexer ----

/** The indexer over the batch on the GPU, and the CPU twin run on each sequence alone (scattered back to the rows). */
function indexerProblem(heads: number, dim: number, nKeys: number, seed: number) {
  const b = BATCH;
  const r = rng(seed);
  const q8 = codes(ROWS * heads * dim, r);
  const kCache = codes(b.slots * dim, r);
  const w = Float32Array.from({ length: ROWS * heads }, () => r() - 0.3);
  const kScale = Float32Array.from({ length: b.slots }, () => 0.01 + r());
  const want = new Float32Array(ROWS * nKeys).fill(-Infinity);
  b.tables.forEach((table, s) => {
    const idx = rowsOf(b, s);
    const n = Math.min(nKeys, table.length * b.pageSize);
    const alone = indexerScores(take(q8, heads * dim, idx), idx.length, heads, dim, take(w, heads, idx), kCache, kScale, { table: Int32Array.from(table), pageSize: b.pageSize }, n, take(b.positions, 1, idx));
    idx.forEach((t, j) => want.set(alone.subarray(j * n, (j + 1) * n), t * nKeys));
  });
  const args = { q8: upload(gpu(), q8), w: upload(gpu(), w), kCache: upload(gpu(), kCache), kScale: upload(gpu(), kScale), positions: upload(gpu(), b.positions) };
  return { want, args };
}

function assertScores(got: Float32Array, want: Float32Array, nKeys: number): void {
  let finite = 0;
  for (let t = 0; t < ROWS; t++) {
    let scale = 0;
    for (let s = 0; s < nKeys; s++) if (Number.isFinite(want[t * nKeys + s]!)) scale = Math.max(scale, Math.abs(want[t * nKeys + s]!));
    for (let s = 0; s < nKeys; s++) {
      const i = t * nKeys + s;
      if (want[i] === -Infinity) assert.equal(got[i], -Infinity, `row ${t} key ${s} must be masked`);
      else {
        assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-5 * Math.max(scale, 1e-6), `row ${t} key ${s}: ${got[i]} vs ${want[i]} (scale ${scale})`);
        finite++;
      }
    }
  }
  assert.ok(finite > ROWS, 'rows have scores');
}

for (const variant of INDEXER_VARIANTS) {
  // nKeys 70: the longest sequence; nKeys 64: row 0 (position 69) scores keys 0..63 only; D 64:
  // the fused kernel's shapes (its f32 form runs on lavapipe).
  for (const [heads, dim, nKeys] of [[32, 48, 70], [3, 10, 64], [32, 64, 70]] as const) {
    test(`indexer scores (${variant}), three sequences in one grid: H ${heads}, D ${dim}, width ${nKeys} equal the CPU twin per sequence`, async (t) => {
      if (!indexerVariantAvailable(gpu(), variant, heads, dim)) {
        t.skip(`the ${variant} variant does not run on this adapter for H ${heads}, D ${dim}`);
        return;
      }
      const { want, args } = indexerProblem(heads, dim, nKeys, heads + dim);
      const pg = gpuPages(BATCH);
      const out = indexerScoresGpu(gpu(), {
        ...args, table: pg.table, tableLength: pg.nPages, pageSize: pg.pageSize, rowSeq: pg.rowSeq, seqs: pg.seqs, rows: ROWS, heads, dim, nKeys, variant,
      });
      assertScores(await readF32(gpu(), out, ROWS * nKeys), want, nKeys);
    });
  }
}

test('indexer scores: a row whose rowSeq is outside the table scores no key (−∞), the others as before', async () => {
  const [heads, dim, nKeys] = [3, 10, 70];
  const { want, args } = indexerProblem(heads, dim, nKeys, 5);
  const bad = BATCH.rowSeq.slice();
  bad[2] = 7;
  want.fill(-Infinity, 2 * nKeys, 3 * nKeys);
  for (const variant of ['naive', 'tiled'] as const) {
    const pg = gpuPages(BATCH, bad);
    const out = indexerScoresGpu(gpu(), { ...args, table: pg.table, tableLength: pg.nPages, pageSize: pg.pageSize, rowSeq: pg.rowSeq, seqs: pg.seqs, rows: ROWS, heads, dim, nKeys, variant });
    assertScores(await readF32(gpu(), out, ROWS * nKeys), want, nKeys);
  }
});

test("indexer (matrix-direct): with rowSeq each row's keys decode to f16 exactly, in its own block of transposed tiles, zeros past its position in its last tile", async (t) => {
  const g = gpu();
  if (!g.features.has('shader-f16')) {
    t.skip('this adapter has no shader-f16');
    return;
  }
  const b = BATCH;
  const dim = 8;
  const n = 70;
  const tile = 64;
  const padded = 128;
  const kc = codes(b.slots * dim, rng(13));
  const out = decodeRows(g, 'test.perRow', upload(g, kc), gpuPages(b), n, padded, dim, tile, { positions: upload(g, b.positions), rows: ROWS });
  const halves = new Uint16Array(await g.read(out, ROWS * padded * dim * 2));
  for (let r = 0; r < ROWS; r++) {
    const table = b.tables[b.rowSeq[r]!]!;
    const limit = Math.min(b.positions[r]!, n - 1);
    // Tiles that start past the row's position are not written (the score kernel skips them).
    for (let s = 0; s < Math.ceil((limit + 1) / tile) * tile; s++) {
      const live = s <= limit;
      const slot = live ? table[Math.floor(s / b.pageSize)]! * b.pageSize + (s % b.pageSize) : -1;
      for (let d = 0; d < dim; d++) {
        const at = r * padded * dim + Math.floor(s / tile) * tile * dim + d * tile + (s % tile);
        const want = slot < 0 ? 0 : E4M3_TABLE[kc[slot * dim + d]!]!;
        const got = f16ToF32(halves[at]!);
        assert.ok(Object.is(got, want) || (want === 0 && got === 0), `row ${r} key ${s} dim ${d}: ${got} vs ${want}`);
      }
    }
  }
});

test("indexer (matrix-direct): the per-row key scratch is checked against one storage binding (past it the call runs 'matrix')", () => {
  const g = gpu();
  const limit = g.limits.maxStorageBufferBindingSize;
  const base = { q8: g.buffer(4), w: g.buffer(4), kCache: g.buffer(4), kScale: g.buffer(4), table: g.buffer(4), tableLength: 1 << 20, pageSize: 64, positions: g.buffer(4), heads: 64, dim: 128 };
  const rowsFor = (nKeys: number) => Math.floor(limit / (Math.ceil(nKeys / 64) * 64 * 128 * 2));
  const nKeys = 65536;
  assert.equal(indexerDirectFits(g, { ...base, rows: rowsFor(nKeys), nKeys, rowSeq: g.buffer(4) }), true);
  assert.equal(indexerDirectFits(g, { ...base, rows: rowsFor(nKeys) + 1, nKeys, rowSeq: g.buffer(4) }), false);
  // One sequence: one block of keys for every row.
  assert.equal(indexerDirectFits(g, { ...base, rows: rowsFor(nKeys) + 1, nKeys }), true);
  // The variant such a call runs: 'matrix-direct' within the limit; past it 'matrix', or 'tiled' where tensor cores are missing.
  const asked = { ...base, nKeys, rowSeq: g.buffer(4), variant: 'matrix-direct' as const };
  assert.equal(indexerVariantOf(g, { ...asked, rows: rowsFor(nKeys) }), 'matrix-direct');
  assert.equal(indexerVariantOf(g, { ...asked, rows: rowsFor(nKeys) + 1 }), indexerVariantAvailable(g, 'matrix', 64, 128) ? 'matrix' : 'tiled');
});

// ---- MLA attention ----

function mlaProblem(format: LatentFormat, heads: number, r: number, dr: number, k: number) {
  const b = BATCH;
  const latent = packLatent(random(b.slots * r, 3 + r), random(b.slots * dr, 4 + dr), b.slots, r, dr, format);
  const width = latentRowWidth(format, r, dr);
  const qLat = random(ROWS * heads * r, 5, 2);
  const qPe = random(ROWS * heads * dr, 6, 2);
  const indices = k > 0 ? sparseRows(b.positions, k, 9) : null;
  const scale = 1 / Math.sqrt(r + dr);
  const want = new Float32Array(ROWS * heads * r);
  b.tables.forEach((table, s) => {
    const idx = rowsOf(b, s);
    const alone = mlaAttention(
      take(qLat, heads * r, idx), take(qPe, heads * dr, idx), latent, width, { table: Int32Array.from(table), pageSize: b.pageSize },
      take(b.positions, 1, idx), indices ? take(indices, k, idx) : null, k, { rows: idx.length, heads, r, dr }, scale,
    );
    idx.forEach((t, j) => want.set(alone.subarray(j * heads * r, (j + 1) * heads * r), t * heads * r));
  });
  const g = gpu();
  const args = {
    qLat: upload(g, qLat), qPe: upload(g, qPe), latent: upload(g, latent.data), positions: upload(g, b.positions),
    indices: indices ? upload(g, indices) : null, shape: { rows: ROWS, heads, r, dr }, scale,
  };
  return { want, args };
}

async function assertAttention(out: GPUBuffer, want: Float32Array, rel: number): Promise<void> {
  const got = await readF32(gpu(), out, want.length);
  assert.ok(got.every(Number.isFinite), 'every output is finite');
  const { max, scale } = maxDiff(got, want);
  assert.ok(scale > 0.1, 'outputs are not trivial');
  assert.ok(max <= rel * Math.max(scale, 1), `max abs diff ${max} (max |out| ${scale})`);
}

for (const format of ['f32', 'bf16', 'fp8'] as const) {
  for (const k of [0, 10]) {
    test(`mlaAttention (f32 kernel) ${format} ${k ? `sparse (K ${k}, −1 padding)` : 'dense'}, three sequences in one grid: equal to the CPU twin per sequence`, async () => {
      const [r, dr] = format === 'fp8' ? [128, 16] : [80, 12];
      const { want, args } = mlaProblem(format, 2, r, dr, k);
      const pages = gpuPages(BATCH);
      const out = mlaAttentionGpu(gpu(), { ...args, format, pages, k, nKeys: pages.nPages * pages.pageSize });
      await assertAttention(out, want, 2e-5);
    });
  }
}

for (const k of [0, 24]) {
  test(`mlaAttention (tensor cores) bf16 ${k ? `sparse (K ${k})` : 'dense'}, three sequences in one grid: equal to the CPU twin per sequence within f16 rounding`, async (t) => {
    const shape = { rows: ROWS, heads: 64, r: 128, dr: 64 };
    if (!mlaMatrixAvailable(gpu(), shape, 'bf16')) {
      t.skip('no subgroup-matrix tensor cores (with subgroups of 32) on this adapter');
      return;
    }
    const { want, args } = mlaProblem('bf16', shape.heads, shape.r, shape.dr, k);
    const pages = gpuPages(BATCH);
    const out = mlaAttentionMatrixGpu(gpu(), { ...args, format: 'bf16', pages, k, nKeys: pages.nPages * pages.pageSize });
    await assertAttention(out, want, 2e-3);
  });
}

test('mlaAttention (tensor cores): the entry slots both GEMM passes read, for a group of rows of three sequences, dense and sparse', async () => {
  // The pass that maps entries to slots is plain WGSL: it runs here even where the GEMMs cannot.
  const b = BATCH;
  const g = gpu();
  const k = 10;
  const indices = sparseRows(b.positions, k, 4);
  indices[3 * k + 4] = b.positions[3]! + 1; // a future position: no entry
  const [rowOffset, n] = [2, 4];
  for (const sparse of [false, true]) {
    const E = sparse ? k : b.maxPages * b.pageSize;
    const slots = g.buffer(n * E * 4);
    mlaEntrySlotsGpu(g, gpuPages(b), upload(g, b.positions), sparse ? upload(g, indices) : null, sparse ? k : 0, E, rowOffset, n, slots);
    const got = Array.from(new Uint32Array(await g.read(slots, n * E * 4)));
    const want: number[] = [];
    for (let t = rowOffset; t < rowOffset + n; t++) {
      const table = b.tables[b.rowSeq[t]!]!;
      for (let j = 0; j < E; j++) {
        const q = sparse ? indices[t * k + j]! : j;
        const live = q >= 0 && q <= b.positions[t]!;
        want.push(live ? table[Math.floor(q / b.pageSize)]! * b.pageSize + (q % b.pageSize) : 0xffffffff);
      }
    }
    assert.deepEqual(got, want, sparse ? 'sparse' : 'dense');
  }
});

// ---- a whole DSA step through the backend ----

test('WebGpuBackend: a DSA step (indexer → top-k → sparse MLA) over three sequences in one call equals each sequence alone, bit for bit', async () => {
  const be = await WebGpuBackend.create();
  try {
    const b = BATCH;
    const [hi, di, heads, r, dr, k] = [4, 16, 2, 32, 8, 12];
    const nKeys = Math.max(...b.tables.map((t) => t.length)) * b.pageSize;
    const g = rng(31);
    const q8 = codes(ROWS * hi * di, g);
    const w = random(ROWS * hi, 32);
    const kCache = codes(b.slots * di, g);
    const kScale = Float32Array.from({ length: b.slots }, () => 0.05 + g());
    const latent = packLatent(random(b.slots * r, 33), random(b.slots * dr, 34), b.slots, r, dr, 'bf16');
    const qLat = random(ROWS * heads * r, 35);
    const qPe = random(ROWS * heads * dr, 36);
    const kc = be.upload(kCache, [b.slots, di]);
    const ks = be.upload(kScale, [b.slots]);
    const lat = be.upload(latent.data as Uint16Array, [b.slots, r + dr]);
    /** The step over rows idx with the given pages; returns [scores, selection, attention output]. */
    const step = async (idx: number[], pages: { blockTable: ReturnType<typeof be.upload>; pageSize: number; rowSeq?: ReturnType<typeof be.upload> }, width: number) => {
      const pos = be.upload(take(b.positions, 1, idx), [idx.length]);
      const scores = be.indexerScores(be.upload(take(q8, hi * di, idx), [idx.length, hi, di]), be.upload(take(w, hi, idx), [idx.length, hi]), kc, ks, pages, width, pos);
      const sel = be.topk(scores, k, pos);
      const out = be.mlaAttention(be.upload(take(qLat, heads * r, idx), [idx.length, heads, r]), be.upload(take(qPe, heads * dr, idx), [idx.length, heads, dr]), lat, pages, pos, sel, 1 / Math.sqrt(r + dr));
      return [await be.read(scores), await be.read(sel), await be.read(out)] as const;
    };
    const all = Array.from({ length: ROWS }, (_, t) => t);
    const batched = await step(all, { blockTable: be.upload(b.table2d, [b.tables.length, b.maxPages]), pageSize: b.pageSize, rowSeq: be.upload(b.rowSeq, [ROWS]) }, nKeys);
    for (let s = 0; s < b.tables.length; s++) {
      const idx = rowsOf(b, s);
      const width = b.tables[s]!.length * b.pageSize;
      const alone = await step(idx, { blockTable: be.upload(Int32Array.from(b.tables[s]!), [b.tables[s]!.length]), pageSize: b.pageSize }, width);
      idx.forEach((t, j) => {
        const scores = Array.from(batched[0].subarray(t * nKeys, (t + 1) * nKeys));
        assert.deepEqual(scores.slice(0, width), Array.from(alone[0].subarray(j * width, (j + 1) * width)), `row ${t} scores`);
        assert.ok(scores.slice(width).every((v) => v === -Infinity), `row ${t}: no keys past its sequence`);
        assert.deepEqual(Array.from(batched[1].subarray(t * k, (t + 1) * k)), Array.from(alone[1].subarray(j * k, (j + 1) * k)), `row ${t} selection`);
        const o = heads * r;
        assert.deepEqual(Array.from(batched[2].subarray(t * o, (t + 1) * o)), Array.from(alone[2].subarray(j * o, (j + 1) * o)), `row ${t} attention`);
      });
    }
  } finally {
    be.destroy();
  }
});

// ---- the backend's host-side checks ----

test('WebGpuBackend: rowSeq and 2-D block tables are checked on the host, naming the op', async () => {
  const b = await WebGpuBackend.create();
  try {
    const table2d = b.upload(Int32Array.of(0, 1, 2, 3, 4, 5), [2, 3]);
    const table1d = b.upload(Int32Array.of(0, 1, 2), [3]);
    const positions = b.upload(Int32Array.of(1, 2, 3), [3]);
    const src = b.upload(new Float32Array(3 * 4), [3, 4]);
    const dst = b.zeros([24, 4], 'f32');
    const rows = (blockTable: typeof table1d, rowSeq?: typeof table1d) => b.writeRows(dst, { blockTable, pageSize: 4, rowSeq }, positions, src, 0);
    assert.throws(() => rows(table2d), /writeRows: a block table of shape \[2, 3\] needs rowSeq/);
    assert.throws(() => rows(table1d, b.upload(Int32Array.of(0, 1, 0), [3])), /writeRows: with rowSeq the block table must be 2-D \[seqs, maxPages\], got \[3\]/);
    assert.throws(() => rows(table2d, b.upload(Int32Array.of(0, 1), [2])), /writeRows: rowSeq has shape \[2\], expected \[3\]/);
    assert.throws(() => rows(table2d, b.upload(Float32Array.of(0, 1, 0), [3])), /writeRows: rowSeq must be i32, got f32/);
    const q = b.upload(new Uint8Array(3 * 2 * 4), [3, 2, 4]);
    const scores = (rowSeq: typeof table1d, nKeys: number) =>
      b.indexerScores(q, b.upload(new Float32Array(6), [3, 2]), b.upload(new Uint8Array(24 * 4), [24, 4]), b.upload(new Float32Array(24), [24]), { blockTable: table2d, pageSize: 4, rowSeq }, nKeys, positions);
    assert.throws(() => scores(b.upload(Int32Array.of(0, 1), [2]), 8), /indexerScores: rowSeq has shape \[2\], expected \[3\]/);
    // A row of the 2-D table holds 3 pages of 4: 12 keys at most.
    assert.throws(() => scores(b.upload(Int32Array.of(0, 1, 1), [3]), 13), /indexerScores.*13 keys exceed the sequence's 3 cache pages of 4/);
    const qLat = b.upload(new Float32Array(3 * 2 * 8), [3, 2, 8]);
    const qPe = b.upload(new Float32Array(3 * 2 * 4), [3, 2, 4]);
    assert.throws(
      () => b.mlaAttention(qLat, qPe, b.zeros([24, 12], 'f32'), { blockTable: table2d, pageSize: 0, rowSeq: b.upload(Int32Array.of(0, 1, 1), [3]) }, positions, null, 1),
      /mlaAttention: pageSize must be a positive integer, got 0/,
    );
    assert.equal(b.multiSequence, true);
  } finally {
    b.destroy();
  }
});
