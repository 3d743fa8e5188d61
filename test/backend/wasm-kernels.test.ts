/**
 * The WebAssembly SIMD kernels (asm/kernels.ts via src/backend/cpu/wasm/module.ts) against the
 * TypeScript reference kernels of the CPU backend.
 *
 * Each kernel runs on a fresh shared memory with its inputs copied in at 64-byte-aligned offsets
 * (a bump allocator below), once over its whole parallel range and once as two or three uneven
 * sub-ranges stitched together, the way the worker pool splits work. The kernels accumulate in
 * float32 and the references in float64, so results are compared with |got − want| ≤
 * TOL · max|want| (TOL = 1e-5, relative to the output's scale) element-wise; −∞ must match exactly.
 * Decoders and the bf16 encoder are exact.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { instantiateKernels, kernelsModule, latentFlag, type KernelExports, type Ptr } from '../../src/backend/cpu/wasm/module.js';
import { LATENT_FORMATS, latentRowWidth } from '../../src/backend/backend.js';
import { packLatent } from '../../src/backend/cpu/kernels/latent.js';
import { KERNELS_WASM_BASE64 } from '../../src/backend/cpu/wasm/kernels-wasm.js';
import { CpuWeight } from '../../src/backend/cpu/weight.js';
import { linearFp8, linearPlain } from '../../src/backend/cpu/kernels/linear.js';
import { indexerScores, slotOf, type PageMap } from '../../src/backend/cpu/kernels/indexer.js';
import { mlaAttention } from '../../src/backend/cpu/kernels/mla-attention.js';
import { E4M3_TABLE } from '../../src/numerics/e4m3.js';
import { bf16ToF32, f32BitsToBf16, f32ToBf16 } from '../../src/numerics/bf16.js';
import { actQuant, quantizeBlockWeight, type ScaleFormat } from '../../src/numerics/block-quant.js';

const TOL = 1e-5;

// ------------------------------------------------------------------------------------------------
// Memory: a fresh shared memory per test and a bump allocator over it
// ------------------------------------------------------------------------------------------------

class Arena {
  readonly memory: WebAssembly.Memory;
  readonly k: KernelExports;
  private top = 64; // keep offset 0 unused

  constructor(pages = 64) {
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: 65536, shared: true });
    this.k = instantiateKernels(this.memory);
  }

  /** Inputs (compared with their source at check()) and guard bytes after scratch areas. */
  private readonly inputs: { p: Ptr; bytes: Uint8Array }[] = [];
  private readonly guards: Ptr[] = [];

  alloc(bytes: number): Ptr {
    const p = this.top;
    this.top = (p + Math.max(bytes, 1) + 63) & ~63;
    const need = this.top - this.memory.buffer.byteLength;
    if (need > 0) this.memory.grow(Math.ceil(need / 65536));
    return p;
  }

  /** Scratch of the given size followed by 256 guard bytes that no kernel may touch. */
  scratch(bytes: number): Ptr {
    const p = this.alloc(bytes + 256);
    const guard = (p + bytes + 15) & ~15; // kernels round scratch up to 16 bytes at most
    new Uint8Array(this.memory.buffer, guard, 192).fill(0xa5);
    this.guards.push(guard);
    return p;
  }

  private input(p: Ptr, a: ArrayBufferView): Ptr {
    this.inputs.push({ p, bytes: new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice() });
    return p;
  }

  /** Asserts that every input is unchanged and every scratch guard intact. */
  check(): void {
    for (const { p, bytes } of this.inputs) {
      assert.ok(Buffer.from(new Uint8Array(this.memory.buffer, p, bytes.length)).equals(Buffer.from(bytes)), `input at ${p} was modified`);
    }
    for (const g of this.guards) assert.ok(new Uint8Array(this.memory.buffer, g, 192).every((b) => b === 0xa5), `scratch overrun before ${g}`);
  }

  f32(a: ArrayLike<number>): Ptr {
    const p = this.alloc(a.length * 4);
    const v = new Float32Array(this.memory.buffer, p, a.length);
    v.set(a);
    return this.input(p, v);
  }
  u8(a: ArrayLike<number>): Ptr {
    const p = this.alloc(a.length);
    const v = new Uint8Array(this.memory.buffer, p, a.length);
    v.set(a);
    return this.input(p, v);
  }
  u16(a: ArrayLike<number>): Ptr {
    const p = this.alloc(a.length * 2);
    const v = new Uint16Array(this.memory.buffer, p, a.length);
    v.set(a);
    return this.input(p, v);
  }
  i32(a: ArrayLike<number>): Ptr {
    const p = this.alloc(a.length * 4);
    const v = new Int32Array(this.memory.buffer, p, a.length);
    v.set(a);
    return this.input(p, v);
  }
  /** An output area pre-filled with NaN, so that unwritten elements show up. */
  outF32(n: number): Ptr {
    const p = this.alloc(n * 4);
    new Float32Array(this.memory.buffer, p, n).fill(NaN);
    return p;
  }
  readF32(p: Ptr, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, p, n).slice();
  }
  readU16(p: Ptr, n: number): Uint16Array {
    return new Uint16Array(this.memory.buffer, p, n).slice();
  }
}

// ------------------------------------------------------------------------------------------------
// Inputs and comparisons
// ------------------------------------------------------------------------------------------------

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randF32(n: number, rand: () => number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

/** Random e4m3 codes, NaN codes excluded. */
function randCodes(n: number, rand: () => number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let c = Math.floor(rand() * 256);
    if ((c & 0x7f) === 0x7f) c -= 1;
    a[i] = c;
  }
  return a;
}

function assertClose(got: Float32Array, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) if (Number.isFinite(want[i])) scale = Math.max(scale, Math.abs(want[i]));
  const allow = TOL * Math.max(scale, 1e-30);
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (!Number.isFinite(w)) {
      assert.ok(Object.is(g, w), `${what}[${i}]: got ${g}, want ${w}`);
      continue;
    }
    assert.ok(Math.abs(g - w) <= allow, `${what}[${i}]: got ${g}, want ${w} (allowed ±${allow.toExponential(2)})`);
  }
}

/** [0, n) split into pieces at the given fractions (uneven, not multiples of 4). */
function splits(n: number, cuts: readonly number[]): [number, number][] {
  const points = [0, ...cuts.map((c) => Math.min(n, Math.max(0, Math.round(n * c)))), n];
  const out: [number, number][] = [];
  for (let i = 0; i + 1 < points.length; i++) out.push([points[i]!, points[i + 1]!]);
  return out;
}

/** Runs fn over the full range, and over 2 and 3 sub-ranges; returns the three results. */
function ranged(n: number, fn: (ranges: [number, number][]) => Float32Array): Float32Array[] {
  return [fn([[0, n]]), fn(splits(n, [0.37])), fn(splits(n, [0.21, 0.66]))];
}

// ------------------------------------------------------------------------------------------------
// The module itself
// ------------------------------------------------------------------------------------------------

describe('wasm kernels module', () => {
  test('imports only env.memory and has no data or globals', () => {
    const mod = kernelsModule();
    assert.deepEqual(WebAssembly.Module.imports(mod), [{ module: 'env', name: 'memory', kind: 'memory' }]);
    const bytes = Buffer.from(KERNELS_WASM_BASE64, 'base64');
    const sections = new Set<number>();
    let p = 8;
    while (p < bytes.length) {
      const id = bytes[p++]!;
      let size = 0;
      let shift = 0;
      for (;;) {
        const b = bytes[p++]!;
        size |= (b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80)) break;
      }
      sections.add(id);
      p += size;
    }
    assert.ok(!sections.has(11), 'no data section');
    assert.ok(!sections.has(6), 'no globals');
  });

  test('instantiation writes nothing to the memory', () => {
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 65536, shared: true });
    new Uint8Array(memory.buffer).fill(0xa5);
    instantiateKernels(memory);
    assert.ok(new Uint8Array(memory.buffer).every((b) => b === 0xa5));
  });
});

// ------------------------------------------------------------------------------------------------
// Element conversions
// ------------------------------------------------------------------------------------------------

describe('wasm element conversions', () => {
  test('decode_e4m3: all 256 codes equal E4M3_TABLE (vector and scalar paths)', () => {
    const a = new Arena();
    const n = 256 * 3 + 11;
    const codes = new Uint8Array(n);
    for (let i = 0; i < n; i++) codes[i] = (i * 1 + (i >> 8) * 37) & 0xff;
    const src = a.u8(codes);
    for (const [b, e] of [[0, n], [5, n - 3], [0, 256], [17, 33]] as const) {
      const dst = a.outF32(n);
      a.k.decode_e4m3(src, dst, b, e);
      const got = new Uint32Array(new Float32Array(a.readF32(dst, n)).buffer);
      const want = new Uint32Array(new Float32Array(Array.from(codes, (c) => E4M3_TABLE[c]!)).buffer);
      for (let i = b; i < e; i++) {
        const c = codes[i]!;
        if ((c & 0x7f) === 0x7f) assert.ok(Number.isNaN(new Float32Array(got.buffer)[i]), `code ${c} is NaN`);
        else assert.equal(got[i], want[i], `code 0x${c.toString(16)}: bits 0x${got[i]!.toString(16)} vs 0x${want[i]!.toString(16)}`);
      }
      // nothing outside [b, e) written
      const out = a.readF32(dst, n);
      for (let i = 0; i < b; i++) assert.ok(Number.isNaN(out[i]));
      for (let i = e; i < n; i++) assert.ok(Number.isNaN(out[i]));
    }
  });

  test('decode_bf16: exact, including negatives and specials', () => {
    const a = new Arena();
    const rand = rng(1);
    const n = 1000 + 5;
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) bits[i] = Math.floor(rand() * 65536);
    bits.set([0x0000, 0x8000, 0x7f80, 0xff80, 0x3f80, 0xbf80, 0x0001, 0x7fc0], 0);
    const src = a.u16(bits);
    const dst = a.outF32(n);
    for (const [b, e] of splits(n, [0.3, 0.71])) a.k.decode_bf16(src, dst, b, e);
    const got = a.readF32(dst, n);
    for (let i = 0; i < n; i++) {
      const w = bf16ToF32(bits[i]!);
      if (Number.isNaN(w)) assert.ok(Number.isNaN(got[i]));
      else assert.ok(Object.is(got[i], w), `bits 0x${bits[i]!.toString(16)}: ${got[i]} vs ${w}`);
    }
  });

  test('encode_bf16: round to nearest even, NaN and infinities as the TypeScript encoder', () => {
    const a = new Arena();
    const rand = rng(2);
    const n = 2000 + 3;
    const x = new Float32Array(n);
    const xb = new Uint32Array(x.buffer);
    for (let i = 0; i < n; i++) xb[i] = Math.floor(rand() * 2 ** 32) >>> 0;
    // ties (exactly half an ulp of bf16), both parities, and specials
    xb.set([0x3f808000, 0x3f818000, 0xbf808000, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00001, 0xffc00000, 0x00000001, 0x80000000], 0);
    x[20] = 1 / 3;
    x[21] = -2.5e-3;
    const src = a.f32(x);
    const dst = a.alloc(n * 2);
    for (const [b, e] of splits(n, [0.5])) a.k.encode_bf16(src, dst, b, e);
    const got = a.readU16(dst, n);
    for (let i = 0; i < n; i++) assert.equal(got[i], f32BitsToBf16(xb[i]!), `0x${xb[i]!.toString(16)}`);
    assert.equal(got[20], f32ToBf16(1 / 3));
  });
});

// ------------------------------------------------------------------------------------------------
// Linear layers
// ------------------------------------------------------------------------------------------------

type Fmt = 'f32' | 'bf16' | 'fp8';

function makeWeight(fmt: Fmt, n: number, k: number, rand: () => number, block: [number, number]): CpuWeight {
  const w = randF32(n * k, rand, 0.5);
  if (fmt === 'f32') return new CpuWeight({ format: 'f32', outDim: n, inDim: k, data: w });
  if (fmt === 'bf16') {
    const d = new Uint16Array(n * k);
    for (let i = 0; i < d.length; i++) d[i] = f32ToBf16(w[i]!);
    return new CpuWeight({ format: 'bf16', outDim: n, inDim: k, data: d });
  }
  const [bo, bi] = block;
  if (bo === bi) {
    // realistic scales: quantize a random matrix
    const { w8, scaleInv } = quantizeBlockWeight(w, n, k, 'none', bo);
    return new CpuWeight({ format: 'fp8', outDim: n, inDim: k, data: w8, scaleInv, block });
  }
  const scaleInv = randF32(Math.ceil(n / bo) * Math.ceil(k / bi), rand, 0.01).map((s) => Math.abs(s) + 1e-4);
  return new CpuWeight({ format: 'fp8', outDim: n, inDim: k, data: randCodes(n * k, rand), scaleInv, block });
}

function runLinear(a: Arena, w: CpuWeight, xp: Ptr, wp: Ptr, sp: Ptr, rows: number, ranges: [number, number][]): Float32Array {
  const n = w.outDim;
  const k = w.inDim;
  const out = a.outF32(rows * n);
  const scratch = a.scratch(a.k.linear_scratch_bytes(rows, k));
  for (const [b, e] of ranges) {
    if (w.format === 'f32') a.k.linear_f32(xp, wp, out, rows, k, n, scratch, b, e);
    else if (w.format === 'bf16') a.k.linear_bf16(xp, wp, out, rows, k, n, scratch, b, e);
    else {
      const h = w.host as Extract<typeof w.host, { format: 'fp8' }>;
      a.k.linear_fp8(xp, wp, sp, h.block[0], h.block[1], out, rows, k, n, scratch, b, e);
    }
  }
  return a.readF32(out, rows * n);
}

function uploadWeight(a: Arena, w: CpuWeight): { wp: Ptr; sp: Ptr } {
  const h = w.host;
  if (h.format === 'f32') return { wp: a.f32(h.data), sp: 0 };
  if (h.format === 'bf16') return { wp: a.u16(h.data), sp: 0 };
  return { wp: a.u8(h.data), sp: a.f32(h.scaleInv) };
}

describe('wasm linear', () => {
  const shapes: { rows: number; k: number; n: number; block: [number, number] }[] = [
    { rows: 1, k: 320, n: 200, block: [128, 128] },
    { rows: 3, k: 320, n: 200, block: [128, 128] },
    { rows: 64, k: 320, n: 200, block: [128, 128] },
    { rows: 1, k: 133, n: 7, block: [3, 50] },
    { rows: 5, k: 133, n: 7, block: [3, 50] },
    { rows: 2, k: 600, n: 9, block: [4, 24] },
  ];
  for (const fmt of ['f32', 'bf16', 'fp8'] as const) {
    for (const { rows, k, n, block } of shapes) {
      test(`linear_${fmt}: M ${rows}, K ${k}, N ${n}${fmt === 'fp8' ? `, blocks ${block}` : ''}`, () => {
        const a = new Arena();
        const rand = rng(rows * 1000 + k + n);
        const w = makeWeight(fmt, n, k, rand, block);
        const x = randF32(rows * k, rand);
        const want = linearPlain(x, rows, w);
        const xp = a.f32(x);
        const { wp, sp } = uploadWeight(a, w);
        for (const got of ranged(n, (r) => runLinear(a, w, xp, wp, sp, rows, r))) assertClose(got, want, `linear_${fmt}`);
        a.check();
      });
    }
  }

  for (const fmt of ['none', 'ue8m0'] as const satisfies readonly ScaleFormat[]) {
    for (const { rows, k, n, block } of shapes) {
      test(`linear_fp8_aq (${fmt}): M ${rows}, K ${k}, N ${n}, blocks ${block}`, () => {
        const a = new Arena();
        const rand = rng(rows * 7 + k * 3 + n);
        const w = makeWeight('fp8', n, k, rand, block);
        const h = w.host as Extract<typeof w.host, { format: 'fp8' }>;
        const [bo, bi] = h.block;
        const x = randF32(rows * k, rand, 3);
        const want = linearFp8(x, rows, w, fmt);
        const { q, s } = actQuant(x, rows, k, bi, fmt);
        const xq = a.u8(q);
        const sx = a.f32(s);
        const { wp, sp } = uploadWeight(a, w);
        const results = ranged(n, (ranges) => {
          const out = a.outF32(rows * n);
          const scratch = a.scratch(a.k.linear_fp8_aq_scratch_bytes(rows, k, bi));
          for (const [b, e] of ranges) a.k.linear_fp8_aq(xq, sx, wp, sp, bo, bi, out, rows, k, n, scratch, b, e);
          return a.readF32(out, rows * n);
        });
        for (const got of results) assertClose(got, want, 'linear_fp8_aq');
        a.check();
      });
    }
  }
});

// ------------------------------------------------------------------------------------------------
// Lightning indexer
// ------------------------------------------------------------------------------------------------

/** A page table over `pages` shuffled pages of the cache. */
function pageMap(nKeys: number, pageSize: number, rand: () => number): { pages: PageMap; slots: number } {
  const nPages = Math.ceil(nKeys / pageSize);
  const total = nPages + 3;
  const order = Array.from({ length: total }, (_, i) => i);
  for (let i = total - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return { pages: { table: Int32Array.from(order.slice(0, nPages)), pageSize }, slots: total * pageSize };
}

describe('wasm indexer_scores', () => {
  const cases = [
    { T: 1, H: 64, D: 128, nKeys: 100, positions: [99] },
    { T: 1, H: 8, D: 64, nKeys: 77, positions: [50] },
    { T: 5, H: 3, D: 32, nKeys: 70, positions: [0, 13, 69, 40, -1] },
    { T: 4, H: 16, D: 128, nKeys: 131, positions: [130, 3, 64, 200] },
  ];
  for (const { T, H, D, nKeys, positions } of cases) {
    test(`T ${T}, H ${H}, D ${D}, ${nKeys} keys, positions ${positions}`, () => {
      const a = new Arena();
      const rand = rng(T * 100 + H + D + nKeys);
      const { pages, slots: nSlots } = pageMap(nKeys, 16, rand);
      const q8 = randCodes(T * H * D, rand);
      const w = randF32(T * H, rand, 0.2);
      const kCache = randCodes(nSlots * D, rand);
      const kScale = randF32(nSlots, rand, 0.05).map((s) => Math.abs(s));
      const pos = Int32Array.from(positions);
      const want = indexerScores(q8, T, H, D, w, kCache, kScale, pages, nKeys, pos);
      const q = Float32Array.from(q8, (c) => E4M3_TABLE[c]!);
      const slotList = Int32Array.from({ length: nKeys }, (_, s) => slotOf(pages, s));
      const ptr = { q: a.f32(q), w: a.f32(w), k: a.u8(kCache), ks: a.f32(kScale), slots: a.i32(slotList), pos: a.i32(pos) };
      const results = ranged(nKeys, (ranges) => {
        const out = a.outF32(T * nKeys);
        const scratch = a.scratch(a.k.indexer_scratch_bytes(D));
        for (const [b, e] of ranges) a.k.indexer_scores(ptr.q, ptr.w, ptr.k, ptr.ks, ptr.slots, ptr.pos, out, T, H, D, nKeys, scratch, b, e);
        return a.readF32(out, T * nKeys);
      });
      let masked = 0;
      for (let i = 0; i < want.length; i++) if (want[i] === -Infinity) masked++;
      if (positions.some((p) => p < nKeys - 1)) assert.ok(masked > 0, 'the case masks some keys');
      for (const got of results) assertClose(got, want, 'indexer_scores');
      a.check();
    });
  }
});

// ------------------------------------------------------------------------------------------------
// MLA attention
// ------------------------------------------------------------------------------------------------

describe('wasm MLA attention', () => {
  interface Case {
    name: string;
    T: number;
    H: number;
    r: number;
    dr: number;
    seq: number;
    sparse: number | null; // selection width, null = dense causal
  }
  const cases: Case[] = [
    { name: 'sparse, -1 entries', T: 3, H: 16, r: 64, dr: 16, seq: 90, sparse: 40 },
    { name: 'dense causal', T: 4, H: 5, r: 36, dr: 8, seq: 70, sparse: null },
    { name: 'decode, one row, many entries', T: 1, H: 8, r: 128, dr: 32, seq: 300, sparse: null },
    { name: 'sparse, two rows', T: 2, H: 3, r: 256, dr: 64, seq: 120, sparse: 50 },
  ];
  for (const c of cases) {
    for (const fmt of LATENT_FORMATS) {
      if (fmt === 'fp8' && c.r % 128 !== 0) continue;
      test(`${c.name}, ${fmt} latents (T ${c.T}, H ${c.H}, r ${c.r}, dr ${c.dr})`, () => {
        const { T, H, r, dr, seq } = c;
        const a = new Arena();
        const rand = rng(T + H * 3 + r + seq + fmt.length);
        const { pages, slots: nSlots } = pageMap(seq, 8, rand);
        const latent = packLatent(randF32(nSlots * r, rand), randF32(nSlots * dr, rand), nSlots, r, dr, fmt);
        const latentWidth = latentRowWidth(fmt, r, dr);
        const qLat = randF32(T * H * r, rand, 0.5);
        const qPe = randF32(T * H * dr, rand, 0.5);
        const positions = Int32Array.from({ length: T }, (_, t) => seq - T + t);
        if (c.sparse === null && T > 1) positions[0] = 0; // a row with a single entry
        let indices: Int32Array | null = null;
        let width: number;
        if (c.sparse !== null) {
          width = c.sparse;
          indices = new Int32Array(T * width).fill(-1);
          for (let t = 0; t < T; t++) {
            // a random selection among 0..positions[t], with −1 holes; the last row selects nothing
            if (t === T - 1 && T > 2) continue;
            for (let j = 0; j < width; j++) if (rand() < 0.8) indices[t * width + j] = Math.floor(rand() * (positions[t]! + 1));
          }
        } else {
          width = Math.max(...positions) + 1;
        }
        const scale = 1 / Math.sqrt(192);
        const want = mlaAttention(qLat, qPe, latent, latentWidth, pages, positions, indices, width, { rows: T, heads: H, r, dr }, scale);
        // JS side: resolve positions to slots (dense: every position ≤ positions[t], −1 after)
        const list = new Int32Array(T * width).fill(-1);
        for (let t = 0; t < T; t++) {
          for (let j = 0; j < width; j++) {
            const p = indices ? indices[t * width + j]! : j <= positions[t]! ? j : -1;
            if (p >= 0) list[t * width + j] = slotOf(pages, p);
          }
        }
        const kind = latentFlag(fmt);
        const ptr = {
          qLat: a.f32(qLat),
          qPe: a.f32(qPe),
          latent: latent.format === 'f32' ? a.f32(latent.data) : latent.format === 'bf16' ? a.u16(latent.data) : a.u8(latent.data),
          list: a.i32(list),
        };
        const scratch = a.scratch(a.k.mla_scratch_bytes(H, r, dr));

        // mla_attention over all rows, and over row sub-ranges
        const results = ranged(T, (ranges) => {
          const out = a.outF32(T * H * r);
          for (const [b, e] of ranges) a.k.mla_attention(ptr.qLat, ptr.qPe, ptr.latent, kind, ptr.list, width, H, r, dr, scale, out, scratch, b, e);
          return a.readF32(out, T * H * r);
        });
        for (const got of results) assertClose(got, want, 'mla_attention');

        // mla_partial over 1, 2 and 3 entry ranges per row, merged by mla_merge (itself over head ranges)
        for (const cuts of [[], [0.45], [0.1, 0.62], [0.5, 0.5]]) {
          const parts = splits(width, cuts);
          const P = parts.length;
          const accP = a.outF32(P * H * r);
          const mP = a.outF32(P * H);
          const lP = a.outF32(P * H);
          const got = new Float32Array(T * H * r);
          for (let t = 0; t < T; t++) {
            parts.forEach(([b, e], p) =>
              a.k.mla_partial(ptr.qLat, ptr.qPe, ptr.latent, kind, ptr.list, width, H, r, dr, scale, t, accP + p * H * r * 4, mP + p * H * 4, lP + p * H * 4, scratch, b, e),
            );
            const out = a.outF32(H * r);
            for (const [hb, he] of splits(H, [0.4])) a.k.mla_merge(accP, mP, lP, P, H, r, out, hb, he);
            got.set(a.readF32(out, H * r), t * H * r);
          }
          assertClose(got, want, `mla_partial + mla_merge over ${P} ranges`);
        }
        a.check();
      });
    }
  }
});

// ------------------------------------------------------------------------------------------------
// NaN codes, and several threads on one memory
// ------------------------------------------------------------------------------------------------

describe('wasm linear: special cases', () => {
  test('an e4m3 NaN code in the weight gives NaN outputs, as the reference (M 1, M 3, activation-quantized)', () => {
    const a = new Arena();
    const rand = rng(99);
    const n = 9;
    const k = 300;
    const w = makeWeight('fp8', n, k, rand, [128, 128]);
    const h = w.host as Extract<typeof w.host, { format: 'fp8' }>;
    h.data[2 * k + 17] = 0x7f; // row 2, vector part
    h.data[6 * k + 299] = 0xff; // row 6, scalar tail of the last block
    for (const rows of [1, 3]) {
      const x = randF32(rows * k, rand);
      const want = linearPlain(x, rows, w);
      const xp = a.f32(x);
      const { wp, sp } = uploadWeight(a, w);
      const got = runLinear(a, w, xp, wp, sp, rows, [[0, n]]);
      for (let i = 0; i < want.length; i++) assert.equal(Number.isNaN(got[i]), Number.isNaN(want[i]), `element ${i}`);
      assert.ok(Number.isNaN(got[2]) && Number.isNaN(got[6]));
      const { q, s } = actQuant(x, rows, k, 128, 'none');
      const out = a.outF32(rows * n);
      a.k.linear_fp8_aq(a.u8(q), a.f32(s), wp, sp, 128, 128, out, rows, k, n, a.scratch(a.k.linear_fp8_aq_scratch_bytes(rows, k, 128)), 0, n);
      const aq = a.readF32(out, rows * n);
      const wantAq = linearFp8(x, rows, w, 'none');
      for (let i = 0; i < wantAq.length; i++) assert.equal(Number.isNaN(aq[i]), Number.isNaN(wantAq[i]), `aq element ${i}`);
    }
  });
});

describe('wasm kernels on worker threads', () => {
  test('two workers, one shared memory, disjoint output ranges of linear_fp8', async () => {
    const { Worker } = await import('node:worker_threads');
    const a = new Arena();
    const rand = rng(7);
    const rows = 3;
    const k = 320;
    const n = 200;
    const w = makeWeight('fp8', n, k, rand, [128, 128]);
    const h = w.host as Extract<typeof w.host, { format: 'fp8' }>;
    const x = randF32(rows * k, rand);
    const want = linearPlain(x, rows, w);
    const xp = a.f32(x);
    const { wp, sp } = uploadWeight(a, w);
    const out = a.outF32(rows * n);
    const scratchBytes = a.k.linear_scratch_bytes(rows, k);
    const scratches = [a.alloc(scratchBytes), a.alloc(scratchBytes)];
    // each worker instantiates the module on the same memory and runs its range
    const code = `
      const { parentPort, workerData: d } = require('node:worker_threads');
      const k = new WebAssembly.Instance(d.module, { env: { memory: d.memory } }).exports;
      k.linear_fp8(d.x, d.w, d.s, 128, 128, d.out, d.rows, d.k, d.n, d.scratch, d.begin, d.end);
      parentPort.postMessage('done');
    `;
    const ranges: [number, number][] = [[0, 97], [97, n]];
    await Promise.all(
      ranges.map(
        ([begin, end], i) =>
          new Promise<void>((resolve, reject) => {
            const worker = new Worker(code, {
              eval: true,
              workerData: { module: kernelsModule(), memory: a.memory, x: xp, w: wp, s: sp, out, rows, k, n, scratch: scratches[i], begin, end },
            });
            worker.once('message', () => {
              void worker.terminate();
              resolve();
            });
            worker.once('error', reject);
          }),
      ),
    );
    assert.equal(h.block[0], 128);
    assertClose(a.readF32(out, rows * n), want, 'linear_fp8 on two workers');
  });
});
