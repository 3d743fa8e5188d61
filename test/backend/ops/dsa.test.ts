/**
 * Backend ops vs naive references: the DSA attention path: lightning indexer scores, top-k selection
 * and MLA attention (dense and sparse, over f32, bf16 and fp8 latent caches). The case structure,
 * tolerances and the backends run are in ./harness.ts.
 */
import assert from 'node:assert/strict';
import type { Backend } from '../../../src/backend/backend.js';
import {
  type ErrorCase,
  type OpCase,
  type Arr,
  TOL,
  assertClose,
  meta,
  pagesOf,
  randomCodes,
  readAll,
  refE4m3,
  refSlot,
  Rng,
  runCases,
} from './harness.js';
import { refPackRow, refUnpackRow } from './latent-ref.js';

const cases: OpCase[] = [];
const errorCases: ErrorCase[] = [];

// ---- lightning indexer and top-k -----------------------------------------------------------------

{
  const r = new Rng(808);
  const T = 4;
  const H = 3;
  const D = 32;
  const table = [2, 0, 3];
  const pageSize = 4;
  const slots = 16;
  const nKeys = 11;
  const positions = Int32Array.of(10, 3, 7, 0);
  const q8 = randomCodes(r, T * H * D, 3);
  const w = r.normals(T * H, 0.5);
  // Unused slots hold NaN codes and scales: reading them would poison the scores.
  const kCache = new Uint8Array(slots * D).fill(0x7f);
  const kScale = new Float32Array(slots).fill(NaN);
  const keys = randomCodes(r, nKeys * D, 3);
  const keyScales = r.uniforms(nKeys, 0.01, 0.2);
  for (let s = 0; s < nKeys; s++) {
    const slot = refSlot(table, pageSize, s);
    kCache.set(keys.subarray(s * D, (s + 1) * D), slot * D);
    kScale[slot] = keyScales[s]!;
  }
  cases.push({
    name: 'indexerScores: paged FP8 key cache, kScale · Σ_h w · ReLU(q8 · k8), −∞ after each query position',
    async run(b) {
      const out = b.indexerScores(
        b.upload(q8, [T, H, D]),
        b.upload(w, [T, H]),
        b.upload(kCache, [slots, D]),
        b.upload(kScale, [slots]),
        pagesOf(b, table, pageSize),
        nKeys,
        b.upload(positions, [T]),
      );
      const [ro] = await readAll(b, out);
      return [ro!, out.shape];
    },
    reference() {
      const out = new Float64Array(T * nKeys).fill(-Infinity);
      for (let t = 0; t < T; t++) {
        for (let s = 0; s <= positions[t]!; s++) {
          let sum = 0;
          for (let h = 0; h < H; h++) {
            let d = 0;
            for (let j = 0; j < D; j++) d += refE4m3(q8[(t * H + h) * D + j]!) * refE4m3(keys[s * D + j]!);
            sum += w[t * H + h]! * Math.max(0, d);
          }
          out[t * nKeys + s] = keyScales[s]! * sum;
        }
      }
      return [out, [T, nKeys]];
    },
    tol: [TOL.indexer, TOL.exact],
  });
  const scoresOf = (b: Backend, o: { w?: Float32Array; wShape?: number[]; keyWidth?: number; nKeys?: number }) =>
    b.read(
      b.indexerScores(
        b.upload(q8, [T, H, D]),
        b.upload(o.w ?? w, o.wShape ?? [T, H]),
        b.upload(kCache.subarray(0, slots * (o.keyWidth ?? D)), [slots, o.keyWidth ?? D]),
        b.upload(kScale, [slots]),
        pagesOf(b, table, pageSize),
        o.nKeys ?? nKeys,
        b.upload(positions, [T]),
      ),
    );
  errorCases.push({
    name: 'indexerScores: head weights of another shape than [T, H] throw',
    run: (b) => scoresOf(b, { wShape: [H, T] }),
    error: /indexerScores: weights has shape \[3, 4\], expected \[4, 3\]/,
  });
  errorCases.push({
    name: 'indexerScores: key cache rows of another width than the queries throw',
    run: (b) => scoresOf(b, { keyWidth: 16 }),
    error: /indexerScores: key cache rows have 16 values, queries 32/,
  });
  errorCases.push({
    name: 'indexerScores: more keys than the block table holds throw',
    run: (b) => scoresOf(b, { nKeys: 13 }),
    // The CPU's message comes from its page lookup, the GPU's from its launcher; both name the pages.
    error: /beyond the sequence's 3 cache pages|13 keys exceed the sequence's 3 cache pages/,
  });
}

/**
 * Top-k check: per row, the selection is ascending, distinct, within 0..pos, min(k, pos+1) long,
 * −1 padded; its scores equal the reference full sort's top scores as a multiset; its minimum is ≥
 * the best excluded score; and where the k-th score is not tied, the set equals the reference's.
 */
function topkCase(name: string, scores: Float32Array, T: number, S: number, k: number, positions: Int32Array): OpCase {
  const width = Math.min(k, S);
  /** Valid keys of row t, best first (ties: lower position first). */
  const fullSort = (t: number): number[] => {
    const valid = Math.min(positions[t]! + 1, S);
    const sc = (s: number) => scores[t * S + s]!;
    return Array.from({ length: valid }, (_, s) => s).sort((a, b) => (sc(a) > sc(b) ? -1 : sc(a) < sc(b) ? 1 : a - b));
  };
  return {
    name,
    async run(b) {
      const out = b.topk(b.upload(scores, [T, S]), k, b.upload(positions, [T]));
      const [ro] = await readAll(b, out);
      return [ro!, [...meta(out)]];
    },
    reference() {
      const out = new Int32Array(T * width).fill(-1);
      for (let t = 0; t < T; t++) {
        const order = fullSort(t);
        const take = Math.min(k, order.length);
        order
          .slice(0, take)
          .sort((a, b) => a - b)
          .forEach((s, j) => (out[t * width + j] = s));
      }
      return [out, [1, T * width, T, width]];
    },
    tol: TOL.exact,
    check(got, want) {
      assertClose(got[1]!, want[1]!, TOL.exact, `${name}: output metadata [dtype, size, ...shape]`);
      const g = got[0]!;
      assert.equal(g.length, T * width);
      for (let t = 0; t < T; t++) {
        const order = fullSort(t);
        const take = Math.min(k, order.length);
        const row = Array.from({ length: width }, (_, j) => g[t * width + j]!);
        const sel = row.slice(0, take);
        const what = `${name}, row ${t} (position ${positions[t]}): [${row.join(', ')}]`;
        assert.ok(
          row.slice(take).every((v) => v === -1),
          `${what}: −1 padding after ${take} selected`,
        );
        for (let j = 0; j < take; j++) {
          assert.ok(sel[j]! >= 0 && sel[j]! < order.length, `${what}: ${sel[j]} is not a valid key`);
          if (j > 0) assert.ok(sel[j]! > sel[j - 1]!, `${what}: not strictly ascending`);
        }
        const sc = (s: number) => scores[t * S + s]!;
        const gotScores = sel.map(sc).sort((a, b) => b - a);
        const refScores = order.slice(0, take).map(sc);
        assert.deepEqual(gotScores, refScores, `${what}: selected scores differ from the full sort's top ${take}`);
        const chosen = new Set(sel);
        const minSel = Math.min(...sel.map(sc));
        const bestExcluded = Math.max(-Infinity, ...order.filter((s) => !chosen.has(s)).map(sc));
        assert.ok(minSel >= bestExcluded, `${what}: selected minimum ${minSel} < excluded ${bestExcluded}`);
        if (take < order.length && sc(order[take - 1]!) > sc(order[take]!)) {
          assert.deepEqual(sel, Array.from(want[0]!).slice(t * width, t * width + take), `${what}: untied selection differs`);
        }
      }
    },
  };
}

{
  const r = new Rng(909);
  // 24 keys, k 8, integer scores (many exact ties); beyond each position, large decoys that must be ignored.
  {
    const T = 6;
    const S = 24;
    const positions = Int32Array.of(23, 3, 7, 12, 0, 20);
    const scores = new Float32Array(T * S);
    for (let t = 0; t < T; t++) for (let s = 0; s < S; s++) scores[t * S + s] = s <= positions[t]! ? r.int(5) : 100 + s;
    cases.push(topkCase('topk: k 8 of 24, integer scores with exact ties, rows with fewer valid keys than k, decoys after the position', scores, T, S, 8, positions));
    cases.push(topkCase('topk: k 30 > 24 keys (width 24)', scores, T, S, 30, positions));
  }
  {
    const T = 5;
    const S = 300;
    const positions = Int32Array.of(299, 150, 63, 40, 200);
    const scores = new Float32Array(T * S).fill(-Infinity);
    for (let t = 0; t < T; t++) {
      for (let s = 0; s <= positions[t]!; s++) scores[t * S + s] = t === 4 ? r.normal() : r.int(12) * 0.25 - 1; // row 4: no ties
    }
    cases.push(topkCase('topk: k 64 of 300, 12 tied levels and a tie-free row, −∞ after the position', scores, T, S, 64, positions));
    errorCases.push({
      name: 'topk: positions of another length than the rows throw',
      run: (b) => b.read(b.topk(b.upload(scores, [T, S]), 64, b.upload(positions.subarray(0, 3), [3]))),
      error: /topk: positions has shape \[3\], expected \[5\]/,
    });
  }
}

// ---- MLA attention -------------------------------------------------------------------------------

{
  const r = new Rng(1010);
  const T = 5;
  const H = 4;
  const rk = 16; // kv_lora_rank
  const dr = 8; // rope dim
  const table = [2, 0, 5, 3];
  const pageSize = 4;
  const slots = 24;
  const nKeys = 14;
  const positions = Int32Array.of(13, 2, 7, 0, 10);
  const scale = 0.3;
  const qLat = r.normals(T * H * rk);
  const qPe = r.normals(T * H * dr);
  const logical = r.normals(nKeys * (rk + dr)); // [c_kv | k_rope] per position
  const latent = new Float32Array(slots * (rk + dr)).fill(NaN); // unused slots poison
  for (let s = 0; s < nKeys; s++) latent.set(logical.subarray(s * (rk + dr), (s + 1) * (rk + dr)), refSlot(table, pageSize, s) * (rk + dr));

  /**
   * MHA expanded explicitly: per head, q_h = [qLat_h | qPe_h], K_h rows = [c_kv(s) | k_rope(s)],
   * V_h rows = c_kv(s) over the attended positions; softmax(q_h · K_hᵀ · scale) · V_h.
   */
  const refMla = (attended: (t: number) => number[]): Float64Array => {
    const out = new Float64Array(T * H * rk);
    for (let t = 0; t < T; t++) {
      const set = attended(t);
      for (let h = 0; h < H; h++) {
        const q = [...qLat.subarray((t * H + h) * rk, (t * H + h + 1) * rk), ...qPe.subarray((t * H + h) * dr, (t * H + h + 1) * dr)];
        const K = set.map((s) => Array.from(logical.subarray(s * (rk + dr), (s + 1) * (rk + dr))));
        const V = set.map((s) => Array.from(logical.subarray(s * (rk + dr), s * (rk + dr) + rk)));
        const logits = K.map((k) => k.reduce((acc, v, j) => acc + v * q[j]!, 0) * scale);
        const mx = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let c = 0; c < rk; c++) {
          let o = 0;
          for (let j = 0; j < set.length; j++) o += (e[j]! / z) * V[j]![c]!;
          out[(t * H + h) * rk + c] = o;
        }
      }
    }
    return out;
  };
  const runMla = async (b: Backend, idx: Int32Array | null, width: number, pos = positions): Promise<Arr[]> => {
    const out = b.mlaAttention(
      b.upload(qLat, [T, H, rk]),
      b.upload(qPe, [T, H, dr]),
      b.upload(latent, [slots, rk + dr]),
      pagesOf(b, table, pageSize),
      b.upload(pos, [pos.length]),
      idx ? b.upload(idx, [idx.length / width, width]) : null,
      scale,
    );
    const [ro] = await readAll(b, out);
    return [ro!, out.shape];
  };
  cases.push({
    name: 'mlaAttention: dense causal through a paged cache vs explicit per-head MHA',
    run: (b) => runMla(b, null, 0),
    reference: () => [refMla((t) => Array.from({ length: positions[t]! + 1 }, (_, s) => s)), [T, H, rk]],
    tol: [TOL.attention, TOL.exact],
  });

  // Sparse: random duplicate-free subsets in random order, −1 padding (one row interleaved).
  const K = 6;
  const idx = new Int32Array(T * K).fill(-1);
  const sizes = [5, 3, 6, 1, 4];
  for (let t = 0; t < T; t++) {
    const pick = r.shuffle(Array.from({ length: positions[t]! + 1 }, (_, s) => s)).slice(0, sizes[t]!);
    pick.forEach((s, j) => (idx[t * K + j] = s));
  }
  // Row 0: move its −1 into the middle.
  idx[0 * K + 5] = idx[0 * K + 1]!;
  idx[0 * K + 1] = -1;
  const subset = (t: number) => Array.from(idx.subarray(t * K, (t + 1) * K)).filter((s) => s >= 0);
  cases.push({
    name: 'mlaAttention: sparse indices (random subsets, −1 padding) vs the dense reference restricted to them',
    run: (b) => runMla(b, idx, K),
    reference: () => [refMla(subset), [T, H, rk]],
    tol: [TOL.attention, TOL.exact],
  });
  cases.push({
    name: 'mlaAttention: sparse differs from dense where the subset is partial',
    async run(b) {
      const [dense] = await runMla(b, null, 0);
      const [sparse] = await runMla(b, idx, K);
      const rowDiffers = (t: number) => {
        let d = 0;
        for (let j = t * H * rk; j < (t + 1) * H * rk; j++) d = Math.max(d, Math.abs(dense![j]! - sparse![j]!));
        return d > 1e-3 ? 1 : 0;
      };
      return [Array.from({ length: T }, (_, t) => rowDiffers(t))];
    },
    // Rows 0, 2 and 4 attend to a strict subset; row 1 (3 of 3) and row 3 (1 of 1) are complete.
    reference: () => [[1, 0, 1, 0, 1]],
    tol: TOL.exact,
  });
  const future = idx.slice();
  future[1 * K + 2] = 3; // query at position 2 selects position 3
  errorCases.push({
    name: 'mlaAttention: a selected future position throws',
    run: (b) => runMla(b, future, K),
    error: /mlaAttention: query at position 2 selects future position 3/,
    // The indices are on the device: the kernel skips the future entry.
    gpu: {
      does: 'skips',
      expect: () => [refMla((t) => Array.from(future.subarray(t * K, (t + 1) * K)).filter((s) => s >= 0 && s <= positions[t]!)), [T, H, rk]],
      tol: [TOL.attention, TOL.exact],
    },
  });
  errorCases.push({
    name: 'mlaAttention: indices with another number of rows than the queries throw',
    run: (b) => runMla(b, idx.subarray(0, 4 * K), K),
    error: /mlaAttention: indices have 4 rows, queries 5/,
  });
  errorCases.push({
    name: 'mlaAttention: positions of another length than the rows throw',
    run: (b) => runMla(b, null, 0, positions.subarray(0, 4)),
    error: /mlaAttention: positions has shape \[4\], expected \[5\]/,
  });
}

// ---- mlaAttention over bf16 / fp8 latent caches --------------------------------------------------

{
  const r = new Rng(1414);
  const T = 5;
  const H = 3;
  const rk = 256;
  const dr = 16;
  const table = [2, 0, 5, 3];
  const pageSize = 4;
  const slots = 24;
  const nKeys = 14;
  const positions = Int32Array.of(13, 2, 7, 0, 10);
  const scale = 0.05;
  const qLat = r.normals(T * H * rk);
  const qPe = r.normals(T * H * dr);
  const ckv = r.normals(nKeys * rk, 1.5);
  const kPe = r.normals(nKeys * dr, 2);
  const K = 6;
  const idx = new Int32Array(T * K).fill(-1);
  const sizes = [5, 3, 6, 1, 4];
  for (let t = 0; t < T; t++) {
    r.shuffle(Array.from({ length: positions[t]! + 1 }, (_, s) => s))
      .slice(0, sizes[t]!)
      .forEach((s, j) => (idx[t * K + j] = s));
  }
  for (const format of ['bf16', 'fp8'] as const) {
    const width = format === 'bf16' ? rk + dr : rk + 4 * (rk / 128) + 2 * dr;
    // The cache as packed rows; unused slots hold NaN patterns (bf16 0x7fc0; fp8 codes and scales 0x7f…).
    const cache = format === 'bf16' ? new Uint16Array(slots * width).fill(0x7fc0) : new Uint8Array(slots * width).fill(0x7f);
    const logical: number[][] = [];
    for (let s = 0; s < nKeys; s++) {
      const row = refPackRow(ckv.subarray(s * rk, (s + 1) * rk), kPe.subarray(s * dr, (s + 1) * dr), format);
      cache.set(row, refSlot(table, pageSize, s) * width);
      logical.push(refUnpackRow(row, format, rk, dr));
    }
    /** The f32 attention reference over the decoded rows. */
    const refMla = (attended: (t: number) => number[]): Float64Array => {
      const out = new Float64Array(T * H * rk);
      for (let t = 0; t < T; t++) {
        const set = attended(t);
        for (let h = 0; h < H; h++) {
          const q = [...qLat.subarray((t * H + h) * rk, (t * H + h + 1) * rk), ...qPe.subarray((t * H + h) * dr, (t * H + h + 1) * dr)];
          const logits = set.map((s) => logical[s]!.reduce((acc, v, j) => acc + v * q[j]!, 0) * scale);
          const mx = Math.max(...logits);
          const e = logits.map((l) => Math.exp(l - mx));
          const z = e.reduce((a, b) => a + b, 0);
          for (let c = 0; c < rk; c++) {
            let o = 0;
            for (let j = 0; j < set.length; j++) o += (e[j]! / z) * logical[set[j]!]![c]!;
            out[(t * H + h) * rk + c] = o;
          }
        }
      }
      return out;
    };
    const run = async (b: Backend, sparse: boolean): Promise<Arr[]> => {
      const out = b.mlaAttention(
        b.upload(qLat, [T, H, rk]),
        b.upload(qPe, [T, H, dr]),
        b.upload(cache, [slots, width]),
        pagesOf(b, table, pageSize),
        b.upload(positions, [T]),
        sparse ? b.upload(idx, [T, K]) : null,
        scale,
      );
      const [ro] = await readAll(b, out);
      return [ro!, out.shape];
    };
    cases.push({
      name: `mlaAttention over a ${format} latent cache, dense causal: the decoded rows' f32 attention`,
      run: (b) => run(b, false),
      reference: () => [refMla((t) => Array.from({ length: positions[t]! + 1 }, (_, s) => s)), [T, H, rk]],
      tol: [TOL.attention, TOL.exact],
    });
    cases.push({
      name: `mlaAttention over a ${format} latent cache, sparse indices with −1 padding`,
      run: (b) => run(b, true),
      reference: () => [refMla((t) => Array.from(idx.subarray(t * K, (t + 1) * K)).filter((s) => s >= 0)), [T, H, rk]],
      tol: [TOL.attention, TOL.exact],
    });
  }
  errorCases.push({
    name: 'mlaAttention: a u8 (fp8) latent cache with the wrong row width throws',
    run: async (b) =>
      b.read(
        b.mlaAttention(
          b.upload(qLat, [T, H, rk]),
          b.upload(qPe, [T, H, dr]),
          b.zeros([slots, rk + dr], 'u8'),
          pagesOf(b, table, pageSize),
          b.upload(positions, [T]),
          null,
          scale,
        ),
      ),
    error: /mlaAttention/,
  });
}

runCases('DSA indexer, top-k and attention', cases, errorCases);
