/**
 * `dsa bench matmul` pieces: the hand-written ONNX model runs in onnxruntime-node and computes our
 * linear's product; the CLI prints its setup and table and writes JSON with every field. No timing
 * is asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../../src/backend/cpu.js';
import { loadOrt, matmulModel, OrtMatmul, ProtoWriter, transpose } from '../../src/bench/onnx-matmul.js';
import { parseShapes } from '../../src/bench/matmul.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The CLI in a child process (capturing process.stdout in-process would also capture the test runner's own reports). */
function cli(argv: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...argv], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

test('protobuf writer: varints and nested length-delimited fields', () => {
  const inner = new ProtoWriter().varint(1, 300);
  const bytes = new ProtoWriter().varint(1, 1).string(2, 'ab').message(3, inner).bytesOut();
  // 08 01 | 12 02 'a' 'b' | 1a 03 08 ac 02
  assert.deepEqual(Array.from(bytes), [0x08, 0x01, 0x12, 0x02, 0x61, 0x62, 0x1a, 0x03, 0x08, 0xac, 0x02]);
  assert.throws(() => new ProtoWriter().varint(1, -1), /non-negative/);
});

test('transpose: [N, K] → [K, N]', () => {
  const w = Float32Array.from([1, 2, 3, 4, 5, 6]); // 2 × 3
  assert.deepEqual(Array.from(transpose(w, 2, 3)), [1, 4, 2, 5, 3, 6]);
});

test('the ONNX MatMul model runs in onnxruntime-node and matches our linear', async (t) => {
  const loaded = await loadOrt();
  if (!loaded.ort) {
    t.skip(`onnxruntime-node unavailable: ${loaded.reason}`);
    return;
  }
  const [m, k, n] = [5, 200, 130];
  const x = rand(m * k, 1);
  const w = rand(n * k, 2);
  assert.ok(matmulModel(m, k, n, transpose(w, n, k)).length > 4 * k * n);
  const mm = await OrtMatmul.create(loaded.ort, m, k, n, w, 1);
  const got = await mm.run(x);
  await mm.release();
  const b = new CpuBackend();
  const ours = b.readSync(b.linear(b.upload(x, [m, k]), b.uploadWeight({ format: 'f32', outDim: n, inDim: k, data: w }), null)) as Float32Array;
  assert.equal(got.length, m * n);
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < ours.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ours[i]!));
    maxAbs = Math.max(maxAbs, Math.abs(ours[i]!));
  }
  assert.ok(maxDiff <= 1e-5 * maxAbs, `max |ORT − ours| = ${maxDiff}, max |y| = ${maxAbs}`);
});

test('parseShapes names model shapes and rejects malformed ones', () => {
  assert.deepEqual(parseShapes('1,7168,1536; 4,10,20'), [
    { name: 'q_a', m: 1, k: 7168, n: 1536 },
    { name: '10x20', m: 4, k: 10, n: 20 },
  ]);
  assert.throws(() => parseShapes('1,2'), /M,K,N/);
  assert.throws(() => parseShapes('0,2,3'), /M,K,N/);
});

test('dsa bench matmul prints setup and table and writes JSON with every field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsa-bench-matmul-'));
  try {
    const file = join(dir, 'out.json');
    const r = cli(['bench', 'matmul', '--shapes', '1,64,48;3,256,40', '--runs', '1', '--bandwidth-mib', '4', '--json', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^machine: .* cores/);
    assert.match(r.stdout, /^ours: backend cpu/m);
    assert.match(r.stdout, /^peer: onnxruntime-node/m);
    assert.match(r.stdout, /^memory bandwidth/m);
    assert.match(r.stdout, /^64x48 +1 +64×48/m);
    const j = JSON.parse(readFileSync(file, 'utf8'));
    for (const key of ['machine', 'ours', 'ort', 'rotateMiB', 'bandwidth', 'rows']) assert.ok(key in j, key);
    for (const key of ['copyGBs', 'readGBs', 'bytes']) assert.equal(typeof j.bandwidth[key], 'number', key);
    assert.equal(j.rows.length, 2);
    for (const row of j.rows) {
      for (const key of ['name', 'm', 'k', 'n', 'flop', 'ours', 'ort', 'ort1', 'oursOverOrt', 'maxRelErr']) assert.ok(key in row, key);
      for (const f of ['f32', 'bf16', 'fp8', 'fp8aq']) {
        for (const key of ['ms', 'gflops', 'runs', 'weightBytes', 'weightGBs']) assert.equal(typeof row.ours[f][key], 'number', `${f}.${key}`);
      }
      if (j.ort.available) {
        assert.equal(typeof row.ort.gflops, 'number');
        assert.ok(row.maxRelErr < 1e-5, `max rel err ${row.maxRelErr}`);
      }
    }
    const noOrt = cli(['bench', 'matmul', '--shapes', '1,32,16', '--runs', '1', '--bandwidth-mib', '0', '--no-ort', '--formats', 'f32']);
    assert.equal(noOrt.code, 0, noOrt.stderr);
    assert.match(noOrt.stdout, /peer: onnxruntime-node unavailable \(disabled/);
    const bad = cli(['bench', 'matmul', '--formats', 'f16']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unknown format 'f16'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
