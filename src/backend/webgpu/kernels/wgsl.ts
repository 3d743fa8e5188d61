/**
 * WGSL helper functions shared by several kernels, interpolated into their shader sources.
 */

/**
 * fn e4m3(code) -> f32: the value of an e4m3fn code (low 8 bits), decoded from its bits: exponent
 * field 0 is subnormal (m · 2^-9), 0x7f / 0xff are NaN (with the code's sign).
 */
export const E4M3_DECODE_WGSL = /* wgsl */ `
fn e4m3(code: u32) -> f32 {
  let exp = (code >> 3u) & 0xfu;
  let mant = code & 7u;
  let neg = (code & 0x80u) != 0u;
  if (exp == 15u && mant == 7u) { return bitcast<f32>(select(0x7fc00000u, 0xffc00000u, neg)); }
  if (exp == 0u) {
    let v = f32(mant) * (1.0 / 512.0);
    return select(v, -v, neg);
  }
  return bitcast<f32>(((code & 0x80u) << 24u) | ((exp + 120u) << 23u) | (mant << 20u));
}
`;

/**
 * fn dec2(c) -> vec2<f16>: two e4m3fn codes (bits 0–7 and 16–23 of c) as two f16, exactly (every
 * e4m3 value is an f16): each code's magnitude bits moved under f16's exponent make an f16 of 2⁻⁸
 * times its value — normal codes and subnormal ones alike (those become f16 subnormals) — then the
 * signs, and one multiplication of the pair by 256. Needs `enable f16` and f16 subnormals kept by
 * the GPU's multiplier (checked per device by the kernel lab's subnormal-keys rows). 0x7f / 0xff
 * decode as ±480, not NaN (callers assume NaN-free codes, like the indexer).
 */
export const E4M3_PAIR_TO_F16_WGSL = /* wgsl */ `
fn dec2(c: u32) -> vec2<f16> {
  let bits = ((c & 0x007f007fu) << 7u) | ((c & 0x00800080u) << 8u);
  return bitcast<vec2<f16>>(bits) * vec2<f16>(256.0h);
}
`;

/** fn bf16Unpack(word, i) -> f32: element i of bf16 values packed two per u32 word (even i low). */
export const BF16_UNPACK_WGSL = /* wgsl */ `
fn bf16Unpack(word: u32, i: u32) -> f32 {
  let half = select(word & 0xffffu, word >> 16u, (i & 1u) == 1u);
  return bitcast<f32>(half << 16u);
}
`;

/**
 * fn orderKey(bits) -> u32: an order-preserving u32 key of a float's bits (larger float ⇔ larger
 * key; -0 and +0 give the same key). Comparisons stay in integers, so the compiler's float
 * assumptions about NaN and infinities do not matter.
 */
export const ORDER_KEY_WGSL = /* wgsl */ `
fn orderKey(raw: u32) -> u32 {
  let bits = select(raw, 0u, raw == 0x80000000u);
  return select(bits | 0x80000000u, ~bits, (bits & 0x80000000u) != 0u);
}
`;

/**
 * Histogram counts added in runs (the top-k kernels): an invocation's keys often share a bin (the
 * high digits of similar scores, or equal keys), and one atomic per run of equal bins keeps the
 * workgroup from serializing on one bin. `var run = Run()` per invocation; runAdd(&h, &run, bin)
 * per key (a bin ≥ bins counts nothing), runEnd(&h, &run) once after the last key. Generated for
 * a workgroup histogram of `bins` atomics (names suffixed by bins, so two sizes can share a module).
 */
export function runCountWgsl(bins: number): string {
  return /* wgsl */ `
struct Run${bins} { bin: u32, len: u32 }
fn runEnd${bins}(h: ptr<workgroup, array<atomic<u32>, ${bins}>>, run: ptr<function, Run${bins}>) {
  if ((*run).len > 0u) { atomicAdd(&(*h)[(*run).bin], (*run).len); }
  (*run).len = 0u;
}
fn runAdd${bins}(h: ptr<workgroup, array<atomic<u32>, ${bins}>>, run: ptr<function, Run${bins}>, bin: u32) {
  if (bin != (*run).bin) { runEnd${bins}(h, run); }
  (*run).bin = bin;
  (*run).len += select(0u, 1u, bin < ${bins}u);
}
`;
}
