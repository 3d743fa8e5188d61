import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StoppingCriteria, StopStrings } from '../../src/generate/stopping.js';
import { TokenStreamer } from '../../src/generate/streamer.js';
import { parseSamplingParams } from '../../src/generate/params.js';
import type { Decoder } from '../../src/text/detokenizer.js';
import { deepseekTokenizer } from '../helpers/deepseek-tokenizer.js';

test('StopStrings: text that may begin a stop string is held back until resolved; the stop string is not emitted', () => {
  const s = new StopStrings(['STOP', '\n\n']);
  assert.deepEqual(s.push('Hello S'), { text: 'Hello ' });
  assert.deepEqual(s.push('T'), { text: '' });
  assert.deepEqual(s.push('x'), { text: 'STx' }, 'not a stop string after all: released');
  assert.deepEqual(s.push('ab\n'), { text: 'ab' });
  assert.deepEqual(s.push('\nrest'), { text: '', stop: '\n\n' });

  const t = new StopStrings(['STOP']);
  assert.deepEqual(t.push('aS'), { text: 'a' });
  assert.deepEqual(t.push('TO'), { text: '' });
  assert.deepEqual(t.push('P and more'), { text: '', stop: 'STOP' });

  // The earliest match wins; at the same place the longer string.
  assert.deepEqual(new StopStrings(['c', 'ab']).push('xxabc'), { text: 'xx', stop: 'ab' });
  assert.deepEqual(new StopStrings(['a', 'ab']).push('xab'), { text: 'x', stop: 'ab' });
  assert.deepEqual(new StopStrings(['ab'], true).push('xaby'), { text: 'xab', stop: 'ab' });
  // Held text comes back when generation ends otherwise.
  const u = new StopStrings(['END']);
  assert.deepEqual(u.push('the EN'), { text: 'the ' });
  assert.equal(u.release(), 'EN');
  // With matching off (before min_tokens) nothing stops.
  assert.deepEqual(new StopStrings(['ab']).push('xaby', false), { text: 'xaby' });
  assert.throws(() => new StopStrings(['']), /empty/);
});

test('StoppingCriteria: stop ids and EOS → stop, max tokens → length, min tokens, ignore_eos', () => {
  const c = new StoppingCriteria({ eosTokenIds: [1], stopTokenIds: [7], maxTokens: 3 });
  assert.equal(c.check(5), null);
  assert.deepEqual(c.check(7), { finishReason: 'stop', stopReason: 7 });
  const l = new StoppingCriteria({ eosTokenIds: [1], maxTokens: 2 });
  assert.equal(l.check(5), null);
  assert.deepEqual(l.check(5), { finishReason: 'length' });
  assert.deepEqual(new StoppingCriteria({ eosTokenIds: [1], maxTokens: 1 }).check(1), { finishReason: 'stop', stopReason: 1 }, 'a stop id on the last allowed token is a stop');
  const m = new StoppingCriteria({ eosTokenIds: [1], minTokens: 2 });
  assert.equal(m.check(1), null);
  assert.deepEqual(m.check(1), { finishReason: 'stop', stopReason: 1 });
  const i = new StoppingCriteria({ eosTokenIds: [1], stopTokenIds: [2], ignoreEos: true });
  assert.equal(i.check(1), null);
  assert.deepEqual(i.check(2), { finishReason: 'stop', stopReason: 2 });
  assert.throws(() => new StoppingCriteria({ maxTokens: 0 }), /max tokens/);
});

/** Streams `text`'s tokens through a TokenStreamer and returns the pieces and the last step. */
function streamText(text: string, params: Record<string, unknown>, extra: number[] = []) {
  const tok = deepseekTokenizer();
  const ids = [...tok.encode(text, { addSpecialTokens: false }), ...extra];
  const s = new TokenStreamer(parseSamplingParams(params), { tokenizer: tok, eosTokenIds: tok.eosTokenIds });
  const pieces: string[] = [];
  let last;
  for (const id of ids) {
    last = s.push(id);
    pieces.push(last.text);
    if (last.finishReason) break;
  }
  return { pieces, last: last!, streamer: s, ids };
}

test('TokenStreamer: a stop string spanning tokens ends the stream; no piece of it is ever emitted', () => {
  const stop = '<|END|>';
  const { pieces, last, streamer } = streamText('Answer: 42 <|END|> ignored after', { stop: [stop, 'never'] });
  assert.equal(pieces.join(''), 'Answer: 42 ');
  assert.equal(last.finishReason, 'stop');
  assert.equal(last.stopReason, stop);
  assert.equal(streamer.text, 'Answer: 42 ');
  for (const p of pieces) assert.ok(!p.includes('<|'), `piece ${JSON.stringify(p)} leaks the stop string`);
  // With include_stop_str_in_output the stop string ends the text.
  assert.equal(streamText('Answer: 42 <|END|> ignored', { stop: stop, include_stop_str_in_output: true }).streamer.text, 'Answer: 42 <|END|>');
});

test('TokenStreamer: a stop string inside a multibyte character sequence (CJK, emoji)', () => {
  const r = streamText('你好世界🚀再见', { stop: '世界🚀' });
  assert.equal(r.streamer.text, '你好');
  assert.equal(r.last.stopReason, '世界🚀');
  const e = streamText('ok 🚀🚀 done', { stop: '🚀 d' });
  assert.equal(e.streamer.text, 'ok 🚀');
});

test('TokenStreamer: EOS stops with held text released; max_tokens → length with the full text', () => {
  const tok = deepseekTokenizer();
  const eos = streamText('wait for EN', { stop: 'END' }, [1]);
  assert.equal(eos.last.finishReason, 'stop');
  assert.equal(eos.last.stopReason, 1);
  assert.equal(eos.streamer.text, 'wait for EN');
  assert.equal(eos.streamer.tokenIds[eos.streamer.tokenIds.length - 1], 1);
  // A stop token's own text is left out even when special tokens are kept, unless asked for.
  const tok2 = deepseekTokenizer();
  const marker = tok2.tokenToId('<｜User｜>')!;
  const kept = streamText('hi', { skip_special_tokens: false, stop_token_ids: [marker] }, [marker]);
  assert.deepEqual([kept.streamer.text, kept.last.stopReason], ['hi', marker]);
  const shown = streamText('hi', { skip_special_tokens: false, stop_token_ids: [marker], include_stop_str_in_output: true }, [marker]);
  assert.equal(shown.streamer.text, 'hi<｜User｜>');

  const text = '日本語のテキスト 🎌 and more words here';
  const n = tok.encode(text, { addSpecialTokens: false }).length;
  const len = streamText(text, { max_tokens: n });
  assert.equal(len.last.finishReason, 'length');
  assert.equal(len.streamer.text, text);
  assert.equal(len.streamer.generatedCount, n);
  // Cut inside the emoji: the partial character is flushed at the end, as the full decode has it.
  const ids = tok.encode(text, { addSpecialTokens: false });
  const cut = ids.findIndex((_, i) => tok.decode(ids.slice(0, i + 1)).endsWith('\uFFFD')) + 1;
  const short = streamText(text, { max_tokens: cut });
  assert.equal(short.streamer.text, tok.decode(ids.slice(0, cut)));
  assert.throws(() => short.streamer.push(5), /already finished/);
});

test('TokenStreamer: no text of the stream ever differs from the text so far (pieces concatenate to the output)', () => {
  const r = streamText('a "quoted" string, then STO and STOP', { stop: 'STOP' });
  assert.equal(r.pieces.join(''), r.streamer.text);
  assert.equal(r.streamer.text, 'a "quoted" string, then STO and ');
});

test('TokenStreamer without a tokenizer: ids and length stop, text empty; stop strings refused', () => {
  const s = new TokenStreamer(parseSamplingParams({ max_tokens: 3, stop_token_ids: [9] }), { tokenizer: null, eosTokenIds: [1] });
  assert.deepEqual(s.push(4), { text: '', finishReason: null });
  assert.deepEqual(s.push(9), { text: '', finishReason: 'stop', stopReason: 9 });
  const l = new TokenStreamer(parseSamplingParams({ max_tokens: 2 }), { eosTokenIds: [1] });
  l.push(3);
  assert.equal(l.push(3).finishReason, 'length');
  assert.throws(() => new TokenStreamer(parseSamplingParams({ stop: 'x' }), { tokenizer: null }), /stop strings need a tokenizer/);
});

test('TokenStreamer.end: generation cut off outside the stream releases held text', () => {
  const dec: Decoder = { decode: (ids) => Array.from(ids, (i) => String.fromCharCode(97 + i)).join('') };
  const s = new TokenStreamer(parseSamplingParams({ stop: 'xyz' }), { tokenizer: dec });
  assert.equal(s.push(0).text, 'a');
  assert.equal(s.push(23).text, '', 'x may begin xyz');
  assert.deepEqual(s.end('length'), { text: 'x', finishReason: 'length' });
  assert.equal(s.text, 'ax');
  assert.deepEqual(s.end(), { text: '', finishReason: 'length' });
});
