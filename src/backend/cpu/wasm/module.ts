/**
 * The WebAssembly SIMD kernels of the CPU backend (source asm/*.ts, entry asm/kernels.ts, built by
 * `npm run build:wasm` into kernels-wasm.ts): compiled once, instantiated on a shared memory by the
 * main thread and by each worker.
 *
 * Conventions of every kernel:
 *  - All pointers (`Ptr`) are byte offsets into the one imported memory (`env.memory`, shared,
 *    at most 65536 pages). Offsets at or above 2^31 may be passed as plain numbers; wasm reads the
 *    argument as unsigned. 16-byte alignment of arrays is not required but helps (64 is best).
 *  - The module has no static data and no globals (its data section is empty): the whole memory
 *    belongs to the allocator. It also allocates nothing; kernels that need scratch take a pointer
 *    sized by the matching *_scratch_bytes export, one scratch area per concurrently running call.
 *  - The last two parameters `begin, end` choose the sub-range of the parallel dimension (named for
 *    each kernel below) that this call computes; calls on disjoint ranges write disjoint outputs, so
 *    a pool can run them at once on different threads.
 *  - Math is float32 SIMD (f32x4) with float32 accumulation: results differ from the float64-
 *    accumulating TypeScript reference kernels by float32 rounding (~1e-6 relative).
 *  - Element formats: f32; bf16 as u16 (the top half of a float32); e4m3fn as u8 (NaN codes 0x7f
 *    and 0xff decode to NaN, subnormals exactly).
 */
import { KERNELS_WASM_BASE64 } from './kernels-wasm.js';

/** A byte offset into the shared memory. */
export type Ptr = number;

/** Latent cache element formats for the MLA kernels. */
export const LATENT_F32 = 0;
export const LATENT_BF16 = 1;
/** FlashMLA's fp8 rows (see LatentFormat in backend.ts): r e4m3 codes, r/128 f32 scales, dr bf16. */
export const LATENT_FP8 = 2;

/** The kernels' format flag of a latent cache format. */
export function latentFlag(format: 'f32' | 'bf16' | 'fp8'): number {
  return format === 'f32' ? LATENT_F32 : format === 'bf16' ? LATENT_BF16 : LATENT_FP8;
}

export interface KernelExports {
  /** The imported memory, re-exported. */
  readonly memory: WebAssembly.Memory;

  // ---- element conversions (parallel over elements i) ----
  /** dst f32[i] = e4m3(src u8[i]) for i in [begin, end). */
  decode_e4m3(src: Ptr, dst: Ptr, begin: number, end: number): void;
  /** dst f32[i] = bf16(src u16[i]) for i in [begin, end). */
  decode_bf16(src: Ptr, dst: Ptr, begin: number, end: number): void;
  /** dst u16[i] = bf16 of src f32[i], round to nearest even (NaN → 0x7fc0 with its sign), i in [begin, end). */
  encode_bf16(src: Ptr, dst: Ptr, begin: number, end: number): void;

  // ---- linear layers: out f32 [rows, N] = x f32 [rows, K] · Wᵀ; parallel over outputs o ----
  /**
   * Scratch bytes of linear_f32 / linear_bf16 / linear_fp8: max(4 KiB, 4·K) for rows == 1,
   * 4 KiB + 1088·rows otherwise (the weight tile and the packed activation chunk).
   */
  linear_scratch_bytes(rows: number, K: number): number;
  /**
   * W f32 [N, K]: out[t, o] = Σ_k x[t, k] · W[o, k] for all t < rows and o in [begin, end).
   * Rows == 1 reads x and W in place (scratch unused); more rows work in K chunks of 256: the
   * activation chunk is packed into scratch and each 4 × 256 weight tile is reused for every row.
   * Scratch: linear_scratch_bytes(rows, K).
   */
  linear_f32(x: Ptr, w: Ptr, out: Ptr, rows: number, K: number, N: number, scratch: Ptr, begin: number, end: number): void;
  /**
   * As linear_f32 with W bf16 (u16) [N, K]. Rows == 1 reads the weights once, splitting bf16 pairs
   * with integer ops against a permuted copy of x in scratch; more rows decode 4 × 256 weight tiles
   * to scratch and reuse them for every row. Scratch: linear_scratch_bytes(rows, K).
   */
  linear_bf16(x: Ptr, w: Ptr, out: Ptr, rows: number, K: number, N: number, scratch: Ptr, begin: number, end: number): void;
  /**
   * As linear_f32 with W e4m3 (u8) [N, K] at its real value e4m3(W[o, k]) · scaleInv[o/bo][k/bi],
   * scaleInv f32 [ceil(N/bo), ceil(K/bi)]. Rows == 1 decodes weights on the fly (scale applied per
   * K block to the block's dot); more rows decode 4 × 256 weight tiles to scratch and reuse them for
   * every row. Scratch: linear_scratch_bytes(rows, K).
   */
  linear_fp8(
    x: Ptr, w: Ptr, scaleInv: Ptr, bo: number, bi: number, out: Ptr,
    rows: number, K: number, N: number, scratch: Ptr, begin: number, end: number,
  ): void;
  /** Scratch bytes of linear_fp8_aq: 8·K for rows == 1, else (4·bi + 64)·(rows + 4) (K, bi rounded up to 4). */
  linear_fp8_aq_scratch_bytes(rows: number, K: number, bi: number): number;
  /**
   * The reference FP8 GEMM on activations already quantized in blocks of bi (JS does the
   * quantization): out[t, o] = Σ_b (x8[t, blk b] · w8[o, blk b]) · (sx[t, b] · sw[o/bo, b]), each
   * block dot in f32, then acc = acc + dot · (sx · sw) in f32 in block order. xq u8 [rows, K],
   * sx f32 [rows, ceil(K/bi)], W u8 [N, K], sw f32 [ceil(N/bo), ceil(K/bi)].
   * Parallel over outputs o in [begin, end). Scratch: linear_fp8_aq_scratch_bytes(rows, K, bi).
   */
  linear_fp8_aq(
    xq: Ptr, sx: Ptr, w: Ptr, sw: Ptr, bo: number, bi: number, out: Ptr,
    rows: number, K: number, N: number, scratch: Ptr, begin: number, end: number,
  ): void;

  // ---- lightning indexer: parallel over keys s ----
  /** Scratch bytes of indexer_scores (32·D·4 + 128). */
  indexer_scratch_bytes(D: number): number;
  /**
   * out[t, s] = kScale[slots[s]] · Σ_h w[t, h] · ReLU(q[t, h, :] · e4m3(kCache[slots[s], :])) for
   * every query t < T and keys s in [begin, end); −∞ where s > positions[t]. q f32 [T, H, D] (decoded
   * query codes; fold per-head query scales into w), w f32 [T, H], kCache u8 [slots, D],
   * kScale f32 [slots], slots i32 [nKeys] (the cache slot of each key), positions i32 [T],
   * out f32 [T, nKeys] (row stride nKeys). D must be a multiple of 16. Each tile of 32 keys is
   * decoded once and reused for all queries and heads. Scratch: indexer_scratch_bytes(D).
   */
  indexer_scores(
    q: Ptr, w: Ptr, kCache: Ptr, kScale: Ptr, slots: Ptr, positions: Ptr, out: Ptr,
    T: number, H: number, D: number, nKeys: number, scratch: Ptr, begin: number, end: number,
  ): void;
  /**
   * indexer_scores over several sequences in one call: the query rows are grouped by sequence
   * (groupStart i32 [G + 1]: group g is rows [groupStart[g], groupStart[g + 1])), and group g's key s
   * lives at slot slots[g · nKeys + s] (slots i32 [G, nKeys]; entries past a group's keys must be
   * valid slots: decoded at most, never used). Every row's scores equal what indexer_scores gives it
   * for its sequence alone. Parallel over keys s in [begin, end). Scratch: indexer_scratch_bytes(D).
   */
  indexer_scores_multi(
    q: Ptr, w: Ptr, kCache: Ptr, kScale: Ptr, slots: Ptr, groupStart: Ptr, G: number, positions: Ptr, out: Ptr,
    T: number, H: number, D: number, nKeys: number, scratch: Ptr, begin: number, end: number,
  ): void;

  // ---- MLA attention (absorbed form), flash-decoding style ----
  /** Scratch bytes of mla_partial / mla_attention: 4·(16·H + 16 + 16·(r + dr) + 2·ceil4(H)). */
  mla_scratch_bytes(H: number, r: number, dr: number): number;
  /**
   * Partial attention state of query row t over entries [begin, end) of its list (parallel over
   * entries: one call per range, then mla_merge). Each cached entry is read once for all heads, in
   * blocks of 16: s_j = (qLat[t, h] · c_kv[j] + qPe[t, h] · k_rope[j]) · scale,
   * accOut f32 [H, r] = Σ_j e^(s_j − m_h) · c_kv[j], mOut f32 [H] = max_j s_j (−∞ when the range
   * holds no entry), lOut f32 [H] = Σ_j e^(s_j − m_h).
   * qLat f32 [T, H, r], qPe f32 [T, H, dr], latent [slots, r + dr] in f32 (fmt LATENT_F32) or bf16
   * (fmt LATENT_BF16), or u8 [slots, r + 4·r/128 + 2·dr] FlashMLA fp8 rows (fmt LATENT_FP8, r a
   * multiple of 128); bf16 and fp8 rows are decoded once per block of 16 entries into scratch.
   * list i32 [T, n] of cache slots (−1 = skip; the dense causal case is a list too).
   * r and dr must be multiples of 4. Scratch: mla_scratch_bytes(H, r, dr).
   */
  mla_partial(
    qLat: Ptr, qPe: Ptr, latent: Ptr, fmt: number, list: Ptr, n: number,
    H: number, r: number, dr: number, scale: number, t: number,
    accOut: Ptr, mOut: Ptr, lOut: Ptr, scratch: Ptr, begin: number, end: number,
  ): void;
  /**
   * Merges nParts partial states stored one after another (acc f32 [nParts, H, r], m and l f32
   * [nParts, H]) into out f32 [H, r] = Σ_p e^(m_p − M) acc_p / Σ_p e^(m_p − M) l_p, parallel over
   * heads h in [begin, end). A head with no entry in any part gives zeros.
   */
  mla_merge(acc: Ptr, m: Ptr, l: Ptr, nParts: number, H: number, r: number, out: Ptr, begin: number, end: number): void;
  /**
   * The common case: out f32 [T, H, r] for query rows t in [begin, end) (parallel over rows), each
   * row over all n entries of its list; arguments as in mla_partial. Rows without entries give zeros.
   * Scratch: mla_scratch_bytes(H, r, dr).
   */
  mla_attention(
    qLat: Ptr, qPe: Ptr, latent: Ptr, fmt: number, list: Ptr, n: number,
    H: number, r: number, dr: number, scale: number, out: Ptr, scratch: Ptr, begin: number, end: number,
  ): void;
}

let cached: WebAssembly.Module | undefined;

/** The compiled kernels module (compiled once, synchronously, from the embedded base64). */
export function kernelsModule(): WebAssembly.Module {
  if (!cached) cached = new WebAssembly.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
  return cached;
}

/**
 * Instantiates the kernels on `memory`, which must be shared with a maximum of at most 65536 pages
 * (4 GiB). Instantiation writes nothing to the memory.
 */
export function instantiateKernels(memory: WebAssembly.Memory): KernelExports {
  const instance = new WebAssembly.Instance(kernelsModule(), { env: { memory } });
  return instance.exports as unknown as KernelExports;
}
