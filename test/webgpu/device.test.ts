/**
 * The device layer's recording: many dispatches in one pass with submissions every 64, uniform
 * parameters placed in per-submission arenas (and placed anew when reused after a submission),
 * buffers released while still used by recorded work, and timestamp profiling.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readF32, upload, useGpu } from './helpers.js';

const gpu = useGpu();

const ADD_WGSL = /* wgsl */ `
struct Params { n: u32, add: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < p.n) { y[id.x] = x[id.x] + p.add; }
}
`;

function params(n: number, add: number): ArrayBuffer {
  const b = new ArrayBuffer(8);
  new Uint32Array(b)[0] = n;
  new Float32Array(b)[1] = add;
  return b;
}

test('device: 300 chained dispatches (several submissions and uniform arenas), inputs released while in use', async () => {
  const g = gpu();
  const n = 100;
  let x = upload(g, Float32Array.from({ length: n }, (_, i) => i));
  for (let step = 0; step < 300; step++) {
    const y = g.buffer(n * 4);
    g.dispatch(ADD_WGSL, [x, y, g.uniforms(new Uint32Array(params(n, 1)))], [Math.ceil(n / 64)]);
    g.release(x); // recorded work still reads it: destroyed only after its submission
    x = y;
  }
  const got = await readF32(g, x, n);
  assert.deepEqual(Array.from(got), Array.from({ length: n }, (_, i) => i + 300));
});

test('device: one UniformParams bound again after a submission is placed anew', async () => {
  const g = gpu();
  const n = 8;
  const p = g.uniforms(new Uint32Array(params(n, 2.5)));
  let x = upload(g, new Float32Array(n));
  for (let step = 0; step < 4; step++) {
    const y = g.buffer(n * 4);
    g.dispatch(ADD_WGSL, [x, y, p], [1]);
    await g.finish(); // a submission between the uses
    x = y;
  }
  assert.deepEqual(Array.from(await readF32(g, x, n)), new Array(n).fill(10));
});

test('device: profiling gives one GPU time per dispatch, with the label set at the time', async (t) => {
  const g = gpu();
  if (!g.startProfiling()) {
    t.skip('this adapter has no timestamp-query feature');
    return;
  }
  const n = 64;
  const x = upload(g, new Float32Array(n));
  for (const label of ['a', 'b', 'a']) {
    g.label = label;
    g.dispatch(ADD_WGSL, [x, g.buffer(n * 4), g.uniforms(new Uint32Array(params(n, 1)))], [1]);
  }
  const times = await g.stopProfiling();
  assert.deepEqual(times.map((k) => k.label), ['a', 'b', 'a']);
  for (const k of times) assert.ok(k.ms >= 0 && Number.isFinite(k.ms), `${k.label}: ${k.ms} ms`);
});

test('device: profiling by pass gives one time for consecutive dispatches, labelled by the first', async (t) => {
  const g = gpu();
  if (!g.startProfiling('pass')) {
    t.skip('this adapter has no timestamp-query feature');
    return;
  }
  const n = 64;
  const x = upload(g, new Float32Array(n));
  for (const label of ['first', 'second', 'third']) {
    g.label = label;
    g.dispatch(ADD_WGSL, [x, g.buffer(n * 4), g.uniforms(new Uint32Array(params(n, 1)))], [1]);
  }
  const times = await g.stopProfiling();
  assert.deepEqual(times.map((k) => k.label), ['first']);
  assert.ok(times[0]!.ms >= 0);
});

test('device: a scratch buffer grows by doubling but never past one storage binding (it is bound whole)', () => {
  const g = gpu();
  const limit = g.limits.maxStorageBufferBindingSize;
  const small = g.scratch('test.grow', 1024);
  assert.equal(g.scratch('test.grow', 1500).size, 2 * small.size, 'doubled');
  g.scratch('test.grow', Math.floor(limit * 0.6));
  const grown = g.scratch('test.grow', Math.floor(limit * 0.7));
  assert.ok(grown.size >= limit * 0.7 && grown.size <= limit, `${grown.size} bytes against a binding limit of ${limit}`);
});

test('a buffer past the largest storage binding is refused with the limit named (no kernel could bind it)', () => {
  const g = gpu();
  const max = g.limits.maxStorageBufferBindingSize;
  assert.throws(() => g.buffer(max + 4), (e: Error) => e.name === 'GpuError' && e.message.includes('maxStorageBufferBindingSize') && e.message.includes(String(max)));
  g.release(g.buffer(1024)); // ordinary sizes still work
});

test('device: a released buffer is reused for the next one of its size, zeroed in order with the commands (as a new buffer reads)', async () => {
  const g = gpu();
  const n = 1000;
  const x = upload(g, Float32Array.from({ length: n }, (_, i) => i));
  const y = g.buffer(n * 4);
  g.dispatch(ADD_WGSL, [x, y, g.uniforms(new Uint32Array(params(n, 5)))], [Math.ceil(n / 64)]);
  assert.equal((await readF32(g, y, n))[7], 12);
  g.release(y); // its users submitted: kept for reuse
  const z = g.buffer(n * 4);
  assert.equal(z, y, 'the same GPU buffer back');
  assert.deepEqual(Array.from(await readF32(g, z, n)), new Array(n).fill(0));
  // Released while recorded work still uses it: reused only after that work is submitted, and zeroed after it ran.
  g.dispatch(ADD_WGSL, [x, z, g.uniforms(new Uint32Array(params(n, 1)))], [Math.ceil(n / 64)]);
  g.release(z);
  const w = g.buffer(n * 4);
  g.dispatch(ADD_WGSL, [x, w, g.uniforms(new Uint32Array(params(n, 2)))], [Math.ceil(n / 64)]);
  assert.equal((await readF32(g, w, n))[10], 12);
  // A buffer of another size is not given out, and one released twice is kept once.
  g.release(w);
  g.release(w);
  const a = g.buffer(n * 4);
  const b = g.buffer(n * 4);
  assert.notEqual(a, b);
  assert.notEqual(g.buffer(n * 8), a);
});
