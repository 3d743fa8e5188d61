/**
 * MLA attention (MQA form) on WebGPU against its CPU twin: dense causal and sparse (with −1
 * padding) rows, a non-contiguous block table, f32 / bf16 / fp8 latent caches. Needs a WebGPU
 * adapter (lavapipe on CPU-only Linux), so the shapes are small.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { latentRowWidth, type LatentFormat } from '../../src/backend/backend.js';
import { mlaAttentionGpu } from '../../src/backend/webgpu/kernels/mla-attention.js';
import { onePageTable } from '../../src/backend/webgpu/kernels/pages.js';
import { mlaAttention } from '../../src/backend/cpu/kernels/mla-attention.js';
import { packLatent } from '../../src/backend/cpu/kernels/latent.js';
import { random, upload, useGpu } from './helpers.js';

const gpu = useGpu();

interface Case {
  name: string;
  format: LatentFormat;
  heads: number;
  r: number;
  dr: number;
  pageSize: number;
  table: number[];
  positions: number[];
  /** Rows of selected positions (sparse), or null (dense causal). */
  indices: number[][] | null;
}

function sparseRows(positions: number[], k: number, seed: number): number[][] {
  // Distinct positions ≤ p in a shuffled order, some −1 padding (in the middle and at the end).
  return positions.map((p, t) => {
    const all = Array.from({ length: p + 1 }, (_, i) => i);
    let s = (seed + 31 * t) >>> 0;
    for (let i = all.length - 1; i > 0; i--) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const j = s % (i + 1);
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    const row = all.slice(0, Math.min(k - 2, all.length));
    row.splice(1, 0, -1);
    while (row.length < k) row.push(-1);
    return row;
  });
}

const cases: Case[] = [];
for (const format of ['f32', 'bf16', 'fp8'] as const) {
  const r = format === 'fp8' ? 128 : 80;
  const dr = format === 'fp8' ? 16 : 12;
  const table = [5, 2, 7, 0, 3, 6, 1, 4]; // pageSize 4: 32 slots, non-contiguous
  cases.push({ name: `${format} dense prefill`, format, heads: 3, r, dr, pageSize: 4, table, positions: [0, 1, 5, 9, 13], indices: null });
  cases.push({ name: `${format} dense decode, 2 tiles`, format, heads: 2, r, dr, pageSize: 4, table: Array.from({ length: 24 }, (_, i) => (i * 7) % 24), positions: [90], indices: null });
  const positions = [3, 8, 14, 22, 31];
  cases.push({ name: `${format} sparse with −1 padding`, format, heads: 2, r, dr, pageSize: 4, table, positions, indices: sparseRows(positions, 10, 99) });
}
{
  const positions = [40, 70, 100];
  cases.push({
    name: 'bf16 sparse, K 96 (2 tiles)',
    format: 'bf16',
    heads: 2,
    r: 64,
    dr: 8,
    pageSize: 4,
    table: Array.from({ length: 26 }, (_, i) => (i * 11) % 26),
    positions,
    indices: sparseRows(positions, 96, 5),
  });
}

// bf16 rows of odd width (r + dr = 93) straddle u32 words.
cases.push({ name: 'bf16 dense, odd row width', format: 'bf16', heads: 2, r: 80, dr: 13, pageSize: 4, table: [3, 1, 2, 0], positions: [4, 15], indices: null });

for (const c of cases) {
  test(`mlaAttention ${c.name}: H ${c.heads}, r ${c.r}, dr ${c.dr} equals the CPU twin`, async () => {
    const { format, heads, r, dr, pageSize } = c;
    const rows = c.positions.length;
    const slots = c.table.length * pageSize;
    const ckv = random(slots * r, 3 + r);
    const kPe = random(slots * dr, 4 + dr);
    const latent = packLatent(ckv, kPe, slots, r, dr, format);
    const width = latentRowWidth(format, r, dr);
    const qLat = random(rows * heads * r, 5 + rows, 2);
    const qPe = random(rows * heads * dr, 6 + rows, 2);
    const table = Int32Array.from(c.table);
    const positions = Int32Array.from(c.positions);
    const k = c.indices ? c.indices[0]!.length : 0;
    const indices = c.indices ? Int32Array.from(c.indices.flat()) : null;
    const scale = 1 / Math.sqrt(r + dr);
    const want = mlaAttention(qLat, qPe, latent, width, { table, pageSize }, positions, indices, k, { rows, heads, r, dr }, scale);

    const buf = (a: ArrayBufferView) => upload(gpu(), a);
    const out = mlaAttentionGpu(gpu(), {
      qLat: buf(qLat),
      qPe: buf(qPe),
      latent: buf(latent.data),
      format,
      pages: onePageTable(buf(table), table.length, pageSize),
      positions: buf(positions),
      indices: indices ? buf(indices) : null,
      k,
      nKeys: table.length * pageSize,
      shape: { rows, heads, r, dr },
      scale,
    });
    const got = new Float32Array(await gpu().read(out, want.byteLength));
    let max = 0;
    let mag = 0;
    for (let i = 0; i < want.length; i++) {
      assert.ok(Number.isFinite(got[i]), `output ${i} is ${got[i]}`);
      max = Math.max(max, Math.abs(got[i]! - want[i]!));
      mag = Math.max(mag, Math.abs(want[i]!));
    }
    console.log(`mlaAttention ${c.name}: max abs diff ${max} (max |out| ${mag})`);
    assert.ok(max <= 2e-5 * Math.max(mag, 1), `max abs diff ${max} (max |out| ${mag})`);
  });
}

test('mlaAttention: a sparse row of only −1 gives zeros', async () => {
  const [heads, r, dr, pageSize] = [2, 16, 4, 4];
  const latent = packLatent(random(8 * r, 1), random(8 * dr, 2), 8, r, dr, 'f32');
  const buf = (a: ArrayBufferView) => upload(gpu(), a);
  const out = mlaAttentionGpu(gpu(), {
    qLat: buf(random(heads * r, 3)),
    qPe: buf(random(heads * dr, 4)),
    latent: buf(latent.data),
    format: 'f32',
    pages: onePageTable(buf(Int32Array.of(1, 0)), 2, pageSize),
    positions: buf(Int32Array.of(5)),
    indices: buf(Int32Array.of(-1, -1, -1)),
    k: 3,
    nKeys: 2 * pageSize,
    shape: { rows: 1, heads, r, dr },
    scale: 0.5,
  });
  const got = new Float32Array(await gpu().read(out, heads * r * 4));
  assert.deepEqual([...got], new Array(heads * r).fill(0));
});
