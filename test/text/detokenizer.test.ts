import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IncrementalDetokenizer } from '../../src/text/detokenizer.js';
import { Rng } from '../../src/generate/sampler.js';
import { deepseekTokenizer } from '../helpers/deepseek-tokenizer.js';

function stream(ids: number[], opts: { skipSpecialTokens?: boolean; promptIds?: number[] } = {}): string[] {
  const d = new IncrementalDetokenizer(deepseekTokenizer(), opts);
  const pieces = ids.map((id) => d.push(id));
  pieces.push(d.flush());
  return pieces;
}

test('an emoji split over byte-level tokens is emitted whole, once its last byte arrives', () => {
  const tok = deepseekTokenizer();
  const ids = tok.encode(' 😀', { addSpecialTokens: false });
  assert.deepEqual(ids.map((i) => tok.idToToken(i)), ['ĠðŁĺ', 'Ģ'], 'the emoji spans two tokens');
  assert.deepEqual(stream(ids), ['', ' 😀', '']);
});

test('streamed text of CJK, emoji sequences and mixed scripts equals the full decode, and no piece holds a broken character', () => {
  const tok = deepseekTokenizer();
  const texts = ['你好，世界 😀 🇺🇸 👩‍👩‍👧 end', 'Привет 🤖🚀✨ こんにちは 深度求索', 'a\u0301 e\u0301 — “quotes” 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🧑🏽‍💻'];
  for (const t of texts) {
    const ids = tok.encode(t, { addSpecialTokens: false });
    const pieces = stream(ids);
    assert.equal(pieces.join(''), t);
    assert.equal(pieces.join(''), tok.decode(ids));
    for (const p of pieces) {
      assert.ok(!p.includes('\uFFFD'), `piece ${JSON.stringify(p)} has a replacement character`);
      // No lone surrogate: each piece is well-formed UTF-16.
      assert.equal(Buffer.from(p, 'utf8').toString('utf8'), p);
    }
    assert.ok(pieces.filter((p) => p === '').length > 1, 'some tokens completed no character');
  }
});

test('random token sequences (invalid UTF-8 included): the stream concatenates to the full decode', () => {
  const tok = deepseekTokenizer();
  const rng = new Rng(7);
  for (let trial = 0; trial < 20; trial++) {
    const ids = Array.from({ length: 40 }, () => Math.floor(rng.next() * 128815));
    assert.equal(stream(ids).join(''), tok.decode(ids, { skipSpecialTokens: true }));
    assert.equal(stream(ids, { skipSpecialTokens: false }).join(''), tok.decode(ids));
  }
});

test('special tokens are skipped by default and kept on request; an incomplete character is released by flush', () => {
  const tok = deepseekTokenizer();
  const hi = tok.encode('hi', { addSpecialTokens: false });
  assert.deepEqual(stream([...hi, 1]), ['hi', '', '']);
  assert.deepEqual(stream([...hi, 1], { skipSpecialTokens: false }), ['hi', '<｜end▁of▁sentence｜>', '']);
  const [first] = tok.encode(' 😀', { addSpecialTokens: false });
  const pieces = stream([first!]);
  assert.equal(pieces[0], '');
  assert.equal(pieces[1], tok.decode([first!]));
  assert.ok(pieces[1]!.endsWith('\uFFFD'));
});

test('prompt ids give context: the generated text continues the prompt', () => {
  const tok = deepseekTokenizer();
  const prompt = tok.encode('Say: 你', { addSpecialTokens: false });
  const gen = tok.encode('好 world', { addSpecialTokens: false });
  assert.equal(stream(gen, { promptIds: prompt }).join(''), '好 world');
});

test('a long stream keeps a bounded window and still matches the full decode', () => {
  const tok = deepseekTokenizer();
  const text = 'Sparse attention 稀疏注意力 🚀 '.repeat(300);
  const ids = tok.encode(text, { addSpecialTokens: false });
  assert.ok(ids.length > 2048);
  assert.equal(stream(ids).join(''), text);
});
