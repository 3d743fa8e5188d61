/** Float32 ↔ bit-pattern helpers for the numerics tests. */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bitsToF32(bits: number): number {
  u32[0] = bits;
  return f32[0]!;
}

export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}
