/**
 * Fast Walsh–Hadamard transform in Sylvester (natural) order:
 * H_1 = [1], H_2n = [[H_n, H_n], [H_n, -H_n]], so (H_n)[i][j] = (-1)^popcount(i & j).
 *
 * The butterflies run in float64 on a reused scratch buffer and the float32 result is written
 * once at the end. For float32 inputs of similar magnitude the float64 sums are exact, so the
 * output is the correctly rounded exact transform.
 */

/** Scratch buffer shared by all calls; grown when a larger n is seen. */
let scratch = new Float64Array(256);

/** True when n is a positive integer power of two. */
function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0 && n <= 2 ** 30;
}

/**
 * In place y = (H_n x) * scale on x[offset .. offset + n). n must be a power of two.
 */
export function fwht(x: Float32Array, offset: number, n: number, scale: number): void {
  if (!isPowerOfTwo(n)) {
    throw new Error(`fwht: length must be a power of two, got ${n}`);
  }
  if (offset < 0 || offset + n > x.length) {
    throw new Error(`fwht: range [${offset}, ${offset + n}) is outside an array of length ${x.length}`);
  }
  if (scratch.length < n) {
    scratch = new Float64Array(n);
  }
  const t = scratch;
  for (let i = 0; i < n; i++) {
    t[i] = x[offset + i];
  }
  for (let h = 1; h < n; h *= 2) {
    for (let i = 0; i < n; i += 2 * h) {
      for (let j = i; j < i + h; j++) {
        const a = t[j];
        const b = t[j + h];
        t[j] = a + b;
        t[j + h] = a - b;
      }
    }
  }
  for (let i = 0; i < n; i++) {
    x[offset + i] = t[i] * scale;
  }
}

/** Normalized transform (scale n^-0.5) of each row of a row-major [rows, n] matrix, in place. */
export function hadamardRows(x: Float32Array, rows: number, n: number): void {
  if (x.length < rows * n) {
    throw new Error(`hadamardRows: array has ${x.length} values, need ${rows}x${n}`);
  }
  const scale = 1 / Math.sqrt(n);
  for (let r = 0; r < rows; r++) {
    fwht(x, r * n, n, scale);
  }
}
