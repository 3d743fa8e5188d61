import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Heap } from '../../src/backend/cpu/heap.js';
import { KernelPool } from '../../src/backend/cpu/pool.js';
import { instantiateKernels, kernelsModule } from '../../src/backend/cpu/wasm/module.js';
import { bf16ToF32 } from '../../src/numerics/bf16.js';

test('the pool splits a kernel over threads, reports a worker failure, and stays usable', () => {
  const heap = new Heap(1024, 64 * 2 ** 20);
  const ex = instantiateKernels(heap.memory);
  const pool = new KernelPool(heap.memory, kernelsModule(), ex as unknown as Record<string, unknown>, 3);
  try {
    const n = 1000;
    const src = heap.alloc(2 * n);
    const dst = heap.alloc(4 * n);
    const codes = new Uint16Array(heap.memory.buffer, src, n);
    for (let i = 0; i < n; i++) codes[i] = (i * 37) & 0x7f7f;
    assert.deepEqual(pool.parts(0, n, 16), [[0, 336], [336, 672], [672, 1000]]);
    pool.split('decode_bf16', [src, dst], 0, n, 16);
    const out = new Float32Array(heap.memory.buffer, dst, n);
    for (let i = 0; i < n; i++) assert.equal(out[i], bf16ToF32(codes[i]!));

    // A worker's part reads far outside the memory: the wasm trap becomes an error naming the kernel.
    const beyond = heap.memory.buffer.byteLength + 2 ** 20;
    assert.throws(
      () => pool.runAll('decode_bf16', (i) => (i === 1 ? [beyond, dst, 0, 8] : null)),
      /kernel decode_bf16 failed on worker thread 1/,
    );
    // The pool still works afterwards.
    out.fill(0);
    pool.split('decode_bf16', [src, dst], 0, n, 16);
    assert.equal(out[n - 1], bf16ToF32(codes[n - 1]!));
    assert.throws(() => pool.runAll('no_such_kernel', () => []), /unknown kernel no_such_kernel/);
  } finally {
    pool.close();
  }
  assert.throws(() => pool.runAll('decode_bf16', () => null), /closed/);
});
