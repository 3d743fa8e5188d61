/**
 * WebAssembly SIMD kernels of the CPU backend, in AssemblyScript (built by `npm run build:wasm`
 * into src/backend/cpu/wasm/kernels-wasm.ts; typed and documented in src/backend/cpu/wasm/module.ts).
 * This file is the compiler's entry: the module's exports are exactly what it re-exports below.
 *
 *   asm/common.ts   format flags, small f32x4 helpers (horizontal sums, 1..4-lane loads and stores)
 *   asm/decode.ts   e4m3 / bf16 decoding (scalar and in-register SIMD); decode_*, encode_bf16
 *   asm/linear.ts   linear_f32 / bf16 / fp8 / fp8_aq and their scratch sizes
 *   asm/indexer.ts  indexer_scores (lightning indexer), indexer_scores_multi (several sequences) and their scratch size
 *   asm/mla.ts      mla_partial / mla_merge / mla_attention (online softmax, SIMD e^x), scratch size
 *
 * Rules every kernel follows, because one shared WebAssembly.Memory is used by the main thread and
 * by every worker:
 *  - no allocation and no static data: arguments are byte offsets into the memory plus sizes; any
 *    scratch space is an argument too, sized by the matching *_scratch_bytes export;
 *  - the last two parameters are `begin, end`, the sub-range of the parallel dimension this call
 *    computes, so that a pool can split one operation over threads;
 *  - float math is float32 (f32x4), accumulation in float32.
 * Helper modules export their internals to each other; only the names listed here reach the wasm
 * module's exports.
 */

export { decode_e4m3, decode_bf16, encode_bf16 } from './decode';
export {
  linear_scratch_bytes,
  linear_f32,
  linear_bf16,
  linear_fp8,
  linear_fp8_aq_scratch_bytes,
  linear_fp8_aq,
} from './linear';
export { indexer_scratch_bytes, indexer_scores, indexer_scores_multi } from './indexer';
export { mla_scratch_bytes, mla_partial, mla_merge, mla_attention } from './mla';
