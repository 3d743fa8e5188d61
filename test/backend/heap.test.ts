import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALIGN, Heap, HeapFullError } from '../../src/backend/cpu/heap.js';

test('blocks are aligned, disjoint, reused after release, and coalesce', () => {
  const heap = new Heap(1024, 64 * 2 ** 20);
  const a = heap.alloc(100);
  const b = heap.alloc(5000);
  const c = heap.alloc(1);
  for (const p of [a, b, c]) assert.equal(p % ALIGN, 0);
  assert.ok(a >= 1024 && b >= a + 100 && c >= b + 5000);
  heap.release(b);
  // A smaller block fits into the hole b left.
  const d = heap.alloc(4000);
  assert.equal(d, b);
  heap.release(a);
  heap.release(d);
  // a and d's hole merge: a block as large as both fits at a.
  const e = heap.alloc(5100);
  assert.equal(e, a);
  heap.release(c);
  heap.release(e);
  assert.equal(heap.usedBytes, 0);
  // Everything returned: the next block starts at the base again.
  assert.equal(heap.alloc(10), a);
});

test('memory grows on demand and refuses beyond its maximum', () => {
  const heap = new Heap(0, 4 * 2 ** 20);
  const before = heap.capacityBytes;
  const p = heap.alloc(3 * 2 ** 20);
  assert.ok(heap.capacityBytes > before);
  const view = new Float32Array(heap.memory.buffer, p, 16);
  view[3] = 7;
  assert.throws(() => heap.alloc(2 * 2 ** 20), HeapFullError);
  // Views made before a grow keep working (shared memory is never detached).
  heap.alloc(512 * 1024);
  assert.equal(view[3], 7);
  assert.throws(() => heap.release(p + 64), /unknown block/);
});

test('a full heap falls back to JavaScript memory and the TypeScript kernels, with the same results', async () => {
  const { CpuBackend } = await import('../../src/backend/cpu.js');
  const small = new CpuBackend({ kernels: 'wasm', threads: 1, maxHeapBytes: 1 << 20 });
  const js = new CpuBackend({ kernels: 'js' });
  const k = 256;
  const n = 512; // a 512 KiB f32 weight fits the 1 MiB heap; 600 rows of activations (600 KiB) do not
  const w = Float32Array.from({ length: n * k }, (_, i) => Math.sin(i) * 0.05);
  const x = Float32Array.from({ length: 600 * k }, (_, i) => Math.cos(i));
  const run = (b: InstanceType<typeof CpuBackend>) =>
    b.readSync(b.linear(b.upload(x, [600, k]), b.uploadWeight({ format: 'f32', outDim: n, inDim: k, data: w }), null)) as Float32Array;
  const got = run(small);
  const want = run(js);
  let max = 0;
  for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(got[i]! - want[i]!));
  assert.ok(max <= 1e-5, `max abs diff ${max}`);
  // Beyond the heap, tensors live in JavaScript memory.
  const big = small.zeros([1 << 20], 'f32');
  assert.equal(big.size, 1 << 20);
});
