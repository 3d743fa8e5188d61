import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/generate/sampler.js';
import { accuracyPlot, createTask, evaluate, evalSample, passkeyTask, recallTask, TaskBatchLoader, taskTable, type SyntheticTask, type TaskSample } from '../../src/train/tasks/index.js';
import { MemoryTokens, MixedBatchLoader, TokenBatchLoader } from '../../src/train/data/index.js';

/** Checks what every sample must satisfy: length, BOS, mask = answer spans, answers copied from the record with the asked key. */
function checkSample(task: SyntheticTask & { keyLength: number; valueLength: number }, s: TaskSample, L: number): void {
  const v = task.vocab;
  const { keyLength: kl, valueLength: vl } = task;
  assert.equal(s.tokens.length, L + 1);
  assert.equal(s.mask.length, L);
  assert.equal(s.tokens[0], v.bos);
  const masked = Array.from(s.mask.keys()).filter((p) => s.mask[p] === 1);
  assert.deepEqual(masked, s.answers.flatMap((a) => Array.from({ length: a.length }, (_, j) => a.start + j)));
  for (const a of s.answers) {
    assert.equal(a.length, vl);
    const q = a.start + 1 - kl - 2; // the QUERY token
    assert.equal(s.tokens[q], v.query);
    assert.equal(s.tokens[a.start], v.sep);
    const key = Array.from(s.tokens.subarray(q + 1, q + 1 + kl));
    const answer = Array.from(s.tokens.subarray(a.start + 1, a.start + 1 + vl));
    // Exactly one record carries that key, at the reported depth, with that value.
    const at: number[] = [];
    for (let p = 0; p + kl + 1 < s.tokens.length; p++) {
      if (s.tokens[p] === v.needle && key.every((k, j) => s.tokens[p + 1 + j] === k)) at.push(p);
    }
    assert.equal(at.length, 1);
    assert.equal(s.tokens[at[0]! + 1 + kl], v.sep);
    assert.deepEqual(Array.from(s.tokens.subarray(at[0]! + 2 + kl, at[0]! + 2 + kl + vl)), answer);
    assert.ok(Math.abs(a.depth - at[0]! / (L - 1)) < 1e-12);
    for (const id of key) assert.ok(id >= v.keys.lo && id < v.keys.hi);
    for (const id of answer) assert.ok(id >= v.values.lo && id < v.values.hi);
  }
  // Everything else is filler.
  const special = new Set([v.bos, v.needle, v.sep, v.query]);
  let filler = 0;
  for (const id of s.tokens) {
    assert.ok(id >= 0 && id < v.vocabSize);
    if (id >= v.filler.lo && id < v.filler.hi) filler++;
    else assert.ok(special.has(id) || (id >= v.keys.lo && id < v.values.hi));
  }
  assert.ok(filler > 0 || L < 2 * task.minContextLength);
}

test('passkey: one needle at a random depth, the question at the end, for any length and vocabulary', () => {
  for (const V of [10, 259, 129280]) {
    const task = passkeyTask(V);
    for (const L of [task.minContextLength, 64, 1000]) {
      const depths: number[] = [];
      for (let i = 0; i < 40; i++) {
        const s = task.sample(L, new Rng(i));
        checkSample(task, s, L);
        assert.equal(s.answers.length, 1);
        assert.equal(s.answers[0]!.start, L - task.valueLength);
        depths.push(s.answers[0]!.depth);
      }
      if (L === 1000) assert.ok(Math.min(...depths) < 0.15 && Math.max(...depths) > 0.85, `depths ${depths}`);
    }
  }
  const t = passkeyTask(259);
  assert.deepEqual(t.sample(300, new Rng(5)), t.sample(300, new Rng(5)));
  assert.notDeepEqual(t.sample(300, new Rng(5)).tokens, t.sample(300, new Rng(6)).tokens);
  assert.throws(() => t.sample(t.minContextLength - 1, new Rng(1)), /context length must be an integer ≥ 16/);
  assert.throws(() => passkeyTask(9), /at least 10 ids/);
  assert.throws(() => passkeyTask(259, { valueLength: 0 }), /passkey: value length must be an integer ≥ 1, got 0/);
});

test('multi-key recall: distinct keys, every query answered by its record', () => {
  const task = recallTask(259, { pairs: 16, queries: 6, keyLength: 2, valueLength: 2 });
  for (const L of [task.minContextLength, 512, 4096]) {
    for (let i = 0; i < 20; i++) {
      const s = task.sample(L, new Rng(i));
      checkSample(task, s, L);
      assert.equal(s.answers.length, 6);
      assert.equal(new Set(s.answers.map((a) => a.depth)).size, 6, 'queries ask about distinct records');
    }
  }
  assert.throws(() => recallTask(20, { pairs: 8 }), /8 distinct keys of 1 ids do not exist among 4 key symbols/);
  assert.throws(() => recallTask(259, { pairs: 2, queries: 3 }), /3 queries need at least as many pairs/);
  assert.throws(() => recallTask(259, { pairs: 2.5 }), /recall: pairs must be an integer ≥ 1, got 2\.5/);
  assert.throws(() => createTask('sorting', 259), /unknown task 'sorting' \(known: passkey, recall\)/);
});

/** A "model" that reads the answer off the context: after QUERY key SEP it copies the value of the record with that key. */
function cheat(task: SyntheticTask & { keyLength: number }) {
  const v = task.vocab;
  const kl = task.keyLength;
  const predict = (tokens: Int32Array, p: number): number => {
    let q = p;
    while (q >= 0 && tokens[q] !== v.query) q--;
    if (q < 0 || p < q + kl + 1) return v.filler.lo;
    const key = tokens.subarray(q + 1, q + 1 + kl);
    for (let r = 0; r < q; r++) {
      if (tokens[r] === v.needle && key.every((k, j) => tokens[r + 1 + j] === k)) return tokens[r + 2 + kl + (p - q - kl - 1)]!;
    }
    return v.filler.lo;
  };
  const V = v.vocabSize;
  return (tokens: Int32Array, positions: Int32Array | null): Float32Array => {
    const rows = positions ? Array.from(positions) : Array.from(tokens.keys());
    const out = new Float32Array(rows.length * V);
    rows.forEach((p, i) => (out[i * V + predict(tokens, p)] = 1));
    return out;
  };
}

test('evaluate: a model that reads the needle scores 100%, one that guesses scores chance', async () => {
  const task = passkeyTask(259);
  const c = cheat(task);
  for (const L of [64, 2048]) {
    const r = await evaluate(task, (tokens, positions) => c(tokens, positions), { contextLength: L, samples: 30, seed: 1 });
    assert.deepEqual([r.accuracy, r.sampleAccuracy, r.tokenAccuracy, r.questions], [1, 1, 1, 30]);
    assert.equal(r.byDepth.reduce((a, b) => a + b.questions, 0), 30);
  }
  // Every-position logits and the batched form give the same answer.
  const full = await evaluate(task, (tokens) => c(tokens, null), { contextLength: 100, samples: 10, seed: 2 });
  assert.equal(full.accuracy, 1);
  const recall = recallTask(259, { pairs: 12, queries: 4 });
  const rc = cheat(recall);
  const batched = await evaluate(
    recall,
    {
      batch: (tokens, batch, positions) => {
        const T = tokens.length / batch;
        const parts = Array.from({ length: batch }, (_, b) => rc(tokens.subarray(b * T, (b + 1) * T), positions));
        const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
        parts.forEach((p, b) => out.set(p, b * p.length));
        return out;
      },
    },
    { contextLength: 300, samples: 20, seed: 3, batchSize: 8 },
  );
  assert.deepEqual([batched.accuracy, batched.questions], [1, 80]);

  // Random logits: greedy answers are right by chance only.
  const guess = passkeyTask(16, { valueLength: 1 });
  const rng = new Rng(9);
  const random = await evaluate(guess, (_t, positions) => Float32Array.from({ length: positions.length * 16 }, () => rng.next()), { contextLength: 64, samples: 800, seed: 4 });
  assert.equal(random.chance, 1 / 16);
  // Binomial(800, 1/16): standard deviation 0.0086; four of them either side.
  assert.ok(Math.abs(random.accuracy - 1 / 16) < 0.035, `accuracy ${random.accuracy}`);
  assert.equal(random.accuracy, random.tokenAccuracy);

  await assert.rejects(evaluate(task, () => new Float32Array(5), { contextLength: 64, samples: 1, seed: 1 }), /logitsFn returned 5 logits; expected 1 × 64 × 259 \(every position\) or 1 × 4 × 259/);
});

test('evaluation samples are fixed by the seed and differ from training samples', () => {
  const task = passkeyTask(259);
  assert.deepEqual(evalSample(task, 128, 1, 3), evalSample(task, 128, 1, 3));
  const loader = new TaskBatchLoader(task, { seqLen: 128, batchSize: 4, seed: 1 });
  const b = loader.batchAt(0);
  for (let r = 0; r < 4; r++) assert.notDeepEqual(b.inputs.subarray(r * 128, (r + 1) * 128), evalSample(task, 128, 1, r).tokens.subarray(0, 128));
});

test('task batches: the mask marks the answers, and a restored loader continues the same', () => {
  const task = recallTask(64, { pairs: 6, queries: 3 });
  const opts = { seqLen: 96, batchSize: 3, seed: 11 };
  const a = new TaskBatchLoader(task, opts);
  const batches = Array.from({ length: 6 }, () => a.next());
  for (const b of batches) {
    assert.equal(b.mask!.reduce((x, y) => x + y, 0), 3 * 3);
    for (let i = 0; i < b.inputs.length; i++) {
      if (i % 96 !== 95) assert.equal(b.targets[i], b.inputs[i + 1]);
      if (b.mask![i]) assert.ok(b.targets[i]! >= task.vocab.values.lo && b.targets[i]! < task.vocab.values.hi);
    }
  }
  const r = new TaskBatchLoader(task, opts);
  r.restore(JSON.parse(JSON.stringify({ ...a.state(), index: 2 })));
  assert.deepEqual(r.next(), batches[2]);
  const other = new TaskBatchLoader(recallTask(64, { pairs: 7, queries: 3 }), opts);
  assert.throws(() => other.restore(a.state()), /its data is "recall\(V=64,keyLength=1,valueLength=1,pairs=7,queries=3\)"/);
  assert.throws(() => new TaskBatchLoader(task, { ...opts, seqLen: 20 }), /seq_len 20 is shorter than the task needs \(36\)/);
});

test('a mixture of text and task batches: picked by weight, deterministic, masks made uniform', () => {
  const text = new TokenBatchLoader(new MemoryTokens(Int32Array.from({ length: 2000 }, (_, i) => 100 + (i % 150)), 'text'), { seqLen: 64, batchSize: 2, seed: 1 });
  const task = new TaskBatchLoader(passkeyTask(259), { seqLen: 64, batchSize: 2, seed: 1 });
  const mix = new MixedBatchLoader([{ source: text, weight: 3 }, { source: task, weight: 1 }], 5);
  const parts = Array.from({ length: 400 }, (_, i) => mix.partAt(i));
  const share = parts.filter((p) => p === 1).length / parts.length;
  assert.ok(Math.abs(share - 0.25) < 0.07, `task share ${share}`);
  for (let i = 0; i < 8; i++) {
    const b = mix.next();
    const from = parts[i] === 0 ? text.batchAt(i) : task.batchAt(i);
    assert.deepEqual(b.inputs, from.inputs);
    assert.equal(b.mask!.reduce((a, v) => a + v, 0), parts[i] === 0 ? 128 : 8);
  }
  const again = new MixedBatchLoader([{ source: text, weight: 3 }, { source: task, weight: 1 }], 5);
  again.restore(mix.state());
  assert.deepEqual(again.next(), mix.batchAt(8));
  assert.throws(() => new MixedBatchLoader([{ source: text, weight: 1 }, { source: new TaskBatchLoader(passkeyTask(259), { seqLen: 32, batchSize: 2, seed: 1 }), weight: 1 }], 1), /same shape \(got 2×64 and 2×32\)/);
});

test('reports: a table of results and accuracy against context length', async () => {
  const task = passkeyTask(259);
  const c = cheat(task);
  const rows = [];
  for (const L of [128, 256, 512]) {
    rows.push({ label: 'cheat', result: await evaluate(task, (t, p) => c(t, p), { contextLength: L, samples: 5, seed: 1 }) });
    rows.push({ label: 'random', result: await evaluate(task, (_t, p) => new Float32Array(p.length * 259), { contextLength: L, samples: 5, seed: 1 }) });
  }
  const table = taskTable(rows);
  assert.match(table, /^task\s+model\s+context\s+samples\s+accuracy/);
  assert.match(table, /passkey\s+cheat\s+512\s+5\s+100\.0%\s+100\.0%\s+2\.2e-10/);
  assert.match(table, /passkey\s+random\s+128\s+5\s+0\.0%/);
  const svg = await accuracyPlot(rows, { trainLength: 256 });
  for (const s of ['cheat', 'random', 'training length', 'passkey accuracy by context length']) assert.ok(svg.includes(s), s);
});
