import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CpuTrainBackend } from '../../src/autograd/cpu-backend.js';
import { WasmTrainBackend } from '../../src/autograd/wasm-backend.js';
import { TrainModel } from '../../src/train/model.js';
import { defaultTrainOptions, Trainer } from '../../src/train/trainer.js';
import { Rng } from '../../src/generate/sampler.js';
import { CountLoader, tinyTrainConfig } from '../train/model-helpers.js';
import { assertClose, randn } from './gradcheck.js';

const wasm = new WasmTrainBackend(2);
after(() => wasm.close());
const ts = new CpuTrainBackend();

const close = (a: Float32Array, b: Float32Array, what: string) => assertClose(a, b, 1e-5, what);

test('WASM matmuls (x·wᵀ, dx += dy·w, dw += dyᵀ·x) equal the TypeScript ones, at sizes split across threads', () => {
  const rng = new Rng(3);
  for (const [m, k, n] of [[5, 7, 3], [1024, 64, 256], [300, 130, 33]] as const) {
    const x = randn(rng, m * k);
    const w = randn(rng, n * k);
    const dy = randn(rng, m * n);
    close(wasm.matmulNT(x, w, m, k, n), ts.matmulNT(x, w, m, k, n), `NT ${m}×${k}×${n}`);
    const dx0 = randn(rng, m * k);
    const [a, b] = [Float32Array.from(dx0), Float32Array.from(dx0)];
    wasm.matmulNNAcc(dy, w, m, n, k, a);
    ts.matmulNNAcc(dy, w, m, n, k, b);
    close(a, b, `NN ${m}×${n}×${k}`);
    const [c, d] = [new Float32Array(n * k), new Float32Array(n * k)];
    wasm.matmulTNAcc(dy, x, m, n, k, c);
    ts.matmulTNAcc(dy, x, m, n, k, d);
    close(c, d, `TN ${m}×${n}×${k}`);
  }
});

test('training on the WASM backend is deterministic and tracks the TypeScript backend', () => {
  const run = (backend: CpuTrainBackend) => {
    const t = new Trainer(TrainModel.init(tinyTrainConfig(), 2), backend, new CountLoader(1, 32, 2, 16), defaultTrainOptions('sparse', { steps: 4, batch: 2, seqLen: 16 }));
    const out: number[] = [];
    while (!t.done) out.push(t.trainStep().loss);
    return out;
  };
  const a = run(wasm);
  assert.deepEqual(run(wasm), a);
  run(ts).forEach((l, i) => assert.ok(Math.abs(l - a[i]!) < 1e-3, `step ${i}: ${l} vs ${a[i]}`));
});
