import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TextTokenizer, TokenizerError } from '../../src/text/tokenizer.js';
import { DEEPSEEK_TOKENIZER_DIR, deepseekTokenizer } from '../helpers/deepseek-tokenizer.js';

const BOS = '<｜begin▁of▁sentence｜>';
const EOS = '<｜end▁of▁sentence｜>';

test('DeepSeek tokenizer: special tokens, vocabulary size, BOS added as add_bos_token asks', () => {
  const tok = deepseekTokenizer();
  assert.equal(tok.bosToken, BOS);
  assert.equal(tok.eosToken, EOS);
  assert.equal(tok.bosTokenId, 0);
  assert.equal(tok.eosTokenId, 1);
  assert.deepEqual(tok.eosTokenIds, [1]);
  // 128000 BPE tokens + added tokens up to <｜tool▁sep｜> = 128814.
  assert.equal(tok.vocabSize, 128815);
  assert.equal(tok.idToToken(0), BOS);
  assert.equal(tok.tokenToId('<｜User｜>'), 128803);
  assert.equal(tok.idToToken(2058), 'Ġworld');
  assert.deepEqual(tok.encode('Hello world!'), [0, 19923, 2058, 3]);
  assert.deepEqual(tok.encode('Hello world!', { addSpecialTokens: false }), [19923, 2058, 3]);
  assert.ok(tok.isSpecial(0) && tok.isSpecial(1) && !tok.isSpecial(19923));
});

test('DeepSeek tokenizer: multilingual text and emoji round-trip', () => {
  const tok = deepseekTokenizer();
  const texts = [
    'The quick brown fox jumps over the lazy dog.',
    '你好，世界！深度求索稀疏注意力。',
    'こんにちは、世界。カタカナ ひらがな',
    'Привет, мир! Ünïcödé façade — naïve café',
    'مرحبا بالعالم',
    '😀 🇺🇸 👩‍👩‍👧 🤖🚀 ✨',
    'code:\n\tfor (let i = 0; i < 10; i++) { x += i ** 2; }\n\n  ',
    'numbers 1234567890 3.14159 -42',
  ];
  for (const t of texts) {
    const ids = tok.encode(t);
    assert.equal(ids[0], 0, 'starts with BOS');
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), t);
    assert.equal(tok.decode(ids), BOS + t);
    assert.equal(tok.decode(tok.encode(t, { addSpecialTokens: false })), t);
  }
});

test('DeepSeek tokenizer: special tokens in text become one id each; decode skips ids without a token', () => {
  const tok = deepseekTokenizer();
  assert.deepEqual(tok.encode('<｜User｜>hi<｜Assistant｜>', { addSpecialTokens: false }), [128803, 6366, 128804]);
  // The model's vocabulary is padded to 129280: ids past the tokenizer's decode to nothing.
  assert.equal(tok.decode([6366, 129000, 129279]), 'hi');
  assert.equal(tok.decode([]), '');
  assert.throws(() => tok.decode([-1]), /not a non-negative integer/);
});

test("DeepSeek chat template renders a conversation exactly as DeepSeek's format", () => {
  const tok = deepseekTokenizer();
  const messages = [
    { role: 'system', content: 'You are helpful.' },
    { role: 'user', content: 'Hi!' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: '2+2?' },
  ];
  assert.equal(tok.applyChatTemplate(messages), `${BOS}You are helpful.<｜User｜>Hi!<｜Assistant｜>Hello.${EOS}<｜User｜>2+2?<｜Assistant｜>`);
  assert.equal(tok.applyChatTemplate(messages, { addGenerationPrompt: false }), `${BOS}You are helpful.<｜User｜>Hi!<｜Assistant｜>Hello.${EOS}<｜User｜>2+2?`);
  // OpenAI content parts are joined.
  assert.equal(tok.applyChatTemplate([{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }]), `${BOS}<｜User｜>ab<｜Assistant｜>`);
  assert.throws(() => tok.applyChatTemplate([{ role: 'user', content: [{ type: 'image_url' }] }]), /only text parts/);
  // Encoded without adding a second BOS.
  const ids = tok.encodeChat([{ role: 'user', content: 'Hi!' }]);
  assert.deepEqual(ids.slice(0, 2), [0, 128803]);
  assert.equal(ids.filter((i) => i === 0).length, 1);
  assert.equal(ids[ids.length - 1], 128804);
});

test('DeepSeek chat template: tool calls and tool outputs', () => {
  const tok = deepseekTokenizer();
  const text = tok.applyChatTemplate([
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', content: '18C' },
  ]);
  assert.equal(
    text,
    `${BOS}<｜User｜>Weather in Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n\`\`\`json\n{"city":"Paris"}\n\`\`\`<｜tool▁call▁end｜><｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>`,
  );
});

test('TextTokenizer.load: null without tokenizer.json; clear errors for corrupt files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsa-tok-'));
  assert.equal(TextTokenizer.load(dir), null);
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
  assert.throws(() => TextTokenizer.load(dir), /tokenizer\.json: not valid JSON/);
  writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
  assert.throws(() => TextTokenizer.load(dir), (e: Error) => e instanceof TokenizerError && /no "model" object/.test(e.message));
  copyFileSync(join(DEEPSEEK_TOKENIZER_DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), '[1, 2]');
  assert.throws(() => TextTokenizer.load(dir), /tokenizer_config\.json: expected a JSON object/);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<nope>' }));
  assert.throws(() => TextTokenizer.load(dir), /eos_token "<nope>" is not in the vocabulary/);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: 5 }));
  assert.throws(() => TextTokenizer.load(dir), /chat_template must be a string/);
  // No config: loads, has no chat template, and says so when asked for one.
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: EOS, chat_template: '{% for m in messages %}{{ m.content' }));
  const broken = TextTokenizer.load(dir)!;
  assert.throws(() => broken.applyChatTemplate([{ role: 'user', content: 'x' }]), /chat template does not parse/);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: EOS, chat_template: "{{ raise_exception('roles must alternate') }}" }));
  assert.throws(() => TextTokenizer.load(dir)!.applyChatTemplate([{ role: 'user', content: 'x' }]), /chat template failed to render: roles must alternate/);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: EOS }));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [1, 128803] }));
  const plain = TextTokenizer.load(dir)!;
  assert.equal(plain.hasChatTemplate, false);
  assert.deepEqual(plain.eosTokenIds, [1, 128803]);
  assert.throws(() => plain.applyChatTemplate([{ role: 'user', content: 'x' }]), /has no chat template/);
  // A chat_template.jinja beside the config is used when the config has none.
  writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}');
  assert.equal(TextTokenizer.load(dir)!.applyChatTemplate([{ role: 'user', content: 'x' }]), '[user]x');
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 'x' }));
  assert.throws(() => TextTokenizer.load(dir), /generation_config\.json: eos_token_id must be/);
});
