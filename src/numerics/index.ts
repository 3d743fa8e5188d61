/** Numeric building blocks: low-precision codecs, block FP8 quantization, Hadamard transform. */

export { bf16ToF32, f32ToBf16, f32BitsToBf16, decodeBf16, encodeBf16 } from './bf16.js';
export { f16ToF32, f32ToF16, f32BitsToF16, decodeF16, encodeF16 } from './f16.js';
export {
  E4M3_MAX,
  E4M3_TABLE,
  e4m3ToF32,
  f32ToE4m3,
  f32BitsToE4m3,
  decodeE4m3,
  encodeE4m3,
} from './e4m3.js';
export {
  type ScaleFormat,
  FP8_INV_MAX,
  ue8m0Ceil,
  blockScale,
  actQuantRow,
  actQuant,
  dequantBlockWeight,
  quantizeBlockWeight,
} from './block-quant.js';
export { fwht, hadamardRows } from './hadamard.js';
