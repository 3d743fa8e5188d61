/** The CPU backend's tensor: a shape, a dtype and a typed array it owns (or shares, for reshapes). */
import { numel, ShapeError, type DType, type HostArray, type Tensor } from '../backend.js';

export class CpuTensor implements Tensor {
  readonly size: number;
  /**
   * @param ptr where `data` lives in the WASM kernels' shared heap (undefined: a plain JavaScript array)
   * @param owner the heap block's keep-alive token, shared by reshapes of the same storage
   */
  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly data: HostArray,
    readonly ptr?: number,
    readonly owner?: object,
  ) {
    this.size = numel(shape);
    if (data.length !== this.size) {
      throw new ShapeError('tensor', `shape [${shape.join(', ')}] has ${this.size} elements but the data has ${data.length}`);
    }
  }
}

export function allocate(shape: readonly number[], dtype: DType): HostArray {
  const n = numel(shape);
  if (dtype === 'f32') return new Float32Array(n);
  if (dtype === 'i32') return new Int32Array(n);
  if (dtype === 'bf16') return new Uint16Array(n);
  return new Uint8Array(n);
}

export function dtypeOf(data: HostArray): DType {
  if (data instanceof Float32Array) return 'f32';
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof Uint16Array) return 'bf16';
  return 'u8';
}

/** Narrows a Tensor to the CPU backend's and checks its dtype. */
export function cpu(t: Tensor, op: string, dtype?: DType): CpuTensor {
  if (!(t instanceof CpuTensor)) throw new ShapeError(op, 'tensor does not belong to the CPU backend');
  if (dtype !== undefined && t.dtype !== dtype) throw new ShapeError(op, `expected a ${dtype} tensor, got ${t.dtype}`);
  return t;
}

export function f32(t: Tensor, op: string): Float32Array {
  return cpu(t, op, 'f32').data as Float32Array;
}

export function i32(t: Tensor, op: string): Int32Array {
  return cpu(t, op, 'i32').data as Int32Array;
}

export function u8(t: Tensor, op: string): Uint8Array {
  return cpu(t, op, 'u8').data as Uint8Array;
}

/** bf16 bit patterns. */
export function bf16(t: Tensor, op: string): Uint16Array {
  return cpu(t, op, 'bf16').data as Uint16Array;
}

/** The size of the last dimension, and the number of rows before it. */
export function rowsCols(t: Tensor): [number, number] {
  const cols = t.shape.length === 0 ? 1 : t.shape[t.shape.length - 1];
  return [cols === 0 ? 0 : t.size / cols, cols];
}

/** Shape checks with the op's name in the message, shared by every backend. */
export { expectShape, sameShape } from '../backend.js';
