/** `dsa make-tiny`: a random-weight model with a trained tokenizer and chat template; `dsa generate` with text. */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from '../helpers/cli.js';
import { TextTokenizer } from '../../src/text/tokenizer.js';
import { writeTinyModel } from '../../src/cli/make-tiny.js';

const tmp = mkdtempSync(join(tmpdir(), 'dsa-make-tiny-'));
const dir = join(tmp, 'tiny');
let tok: TextTokenizer;

async function ok(argv: string[]): Promise<string> {
  const r = await cli(argv);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

before(async () => {
  assert.equal(await ok(['make-tiny', '--out', dir]), `${dir}\n`);
  tok = TextTokenizer.load(dir)!;
});

test('make-tiny writes a model and a tokenizer whose vocabulary is the model\'s', () => {
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) assert.ok(existsSync(join(dir, f)), f);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, number>;
  assert.equal(tok.vocabSize, config.vocab_size);
  assert.equal(tok.bosTokenId, config.bos_token_id);
  assert.equal(tok.eosTokenId, config.eos_token_id);
  assert.deepEqual(tok.eosTokenIds, [1]);
  // Trained merges make common words single tokens.
  assert.deepEqual(tok.encode(' attention', { addSpecialTokens: false }).map((i) => tok.idToToken(i)), ['Ġattention']);
  // The same command writes the same tokenizer.
  const again = join(tmp, 'again');
  writeTinyModel(again);
  assert.equal(readFileSync(join(again, 'tokenizer.json'), 'utf8'), readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
});

test('make-tiny tokenizer: any text round-trips (byte fallback for what the corpus lacks)', () => {
  for (const t of ['Hello! How can I help you today?', '你好，世界！深度求索', '日本語 テキスト', 'Ωμέγα ∑ 𝔘𝔫𝔦 🧑🏽‍💻 🚀', 'tabs\tand\nnewlines\r\n  ', '12345678901234']) {
    const ids = tok.encode(t);
    assert.equal(ids[0], 0);
    assert.ok(ids.every((i) => i < tok.vocabSize));
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), t);
  }
});

test('make-tiny chat template: DeepSeek format, thinking switch, markers as single tokens', () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: '<think>greet</think>Hello.' },
    { role: 'user', content: 'Again' },
  ];
  const B = '<｜begin▁of▁sentence｜>';
  const E = '<｜end▁of▁sentence｜>';
  assert.equal(tok.applyChatTemplate(messages), `${B}Be brief.<｜User｜>Hi<｜Assistant｜></think>Hello.${E}<｜User｜>Again<｜Assistant｜></think>`);
  assert.equal(tok.applyChatTemplate(messages, { kwargs: { thinking: true } }), `${B}Be brief.<｜User｜>Hi<｜Assistant｜></think>Hello.${E}<｜User｜>Again<｜Assistant｜><think>`);
  assert.equal(tok.applyChatTemplate(messages.slice(0, 2), { addGenerationPrompt: false }), `${B}Be brief.<｜User｜>Hi`);
  const ids = tok.encodeChat([{ role: 'user', content: 'Hi' }]);
  assert.deepEqual(ids.map((i) => tok.idToToken(i)), [B, '<｜User｜>', 'H', 'i', '<｜Assistant｜>', '</think>']);
  const tools = tok.applyChatTemplate([
    { role: 'user', content: 'Weather?' },
    { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }] },
    { role: 'tool', content: '18C' },
  ]);
  assert.equal(
    tools,
    `${B}<｜User｜>Weather?<｜Assistant｜></think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>weather<｜tool▁sep｜>{"city":"Paris"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>${E}<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>18C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>`,
  );
});

test('make-tiny: vocab_size from --config sizes the tokenizer; too small a vocabulary is refused before writing', async () => {
  const big = join(tmp, 'v300');
  await ok(['make-tiny', '--out', big, '--config', '{"vocab_size": 300}']);
  assert.equal(TextTokenizer.load(big)!.vocabSize, 300);
  const small = join(tmp, 'v200');
  const r = await cli(['make-tiny', '--out', small, '--config', '{"vocab_size": 200}']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /vocabulary size 200 is below the 272 ids the special and byte tokens need/);
  assert.equal(existsSync(small), false);
  const bad = await cli(['make-tiny', '--out', small, '--config', '{"eos_token_id": 5}']);
  assert.match(bad.stderr, /BOS 0 and EOS 1/);
});

test('generate --prompt TEXT prints the decoded continuation; --ids prints its ids; seeds reproduce', async () => {
  const base = ['generate', '--model', dir, '--prompt', 'Hello! How are', '--max-new-tokens', '12'];
  const ids = (await ok([...base, '--ids'])).trim().split(' ').map(Number);
  assert.equal(ids.length, 12);
  assert.equal(await ok(base), `${tok.decode(ids, { skipSpecialTokens: true })}\n`);
  const sampled = [...base, '--temperature', '0.9', '--top-p', '0.9', '--top-k', '50', '--min-p', '0.01', '--seed', '11', '--ids'];
  const a = await ok(sampled);
  assert.equal(await ok(sampled), a);
  assert.notEqual(await ok([...sampled.slice(0, -3), '--seed', '12', '--ids']), a);
  // The same prompt as ids gives the same output.
  const promptFile = join(tmp, 'prompt.json');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(promptFile, JSON.stringify(tok.encode('Hello! How are')));
  assert.equal(await ok(['generate', '--model', dir, '--prompt-ids', promptFile, '--max-new-tokens', '12']), `${ids.join(' ')}\n`);
  // --chat renders the template around the prompt.
  const chat = await ok(['generate', '--model', dir, '--prompt', 'Hi', '--chat', '--system', 'Be brief', '--max-new-tokens', '4', '--ids']);
  assert.match(chat, /^\d+( \d+){3}\n$/);
});

test('generate --stop: the text ends before the first occurrence of the stop string', async () => {
  const base = ['generate', '--model', dir, '--prompt', 'The indexer', '--max-new-tokens', '24'];
  const full = (await ok(base)).slice(0, -1);
  const chars = [...full];
  const stop = chars.slice(5, 7).join('');
  const out = await ok([...base, '--stop', stop, '--stop', 'never-there']);
  assert.equal(out, `${full.slice(0, full.indexOf(stop))}\n`);
});

test('generate: prompt options are checked; text needs a tokenizer', async () => {
  const fails = async (argv: string[], re: RegExp) => {
    const r = await cli(argv);
    assert.equal(r.code, 1);
    assert.match(r.stderr, re);
  };
  await fails(['generate', '--model', dir, '--max-new-tokens', '2'], /exactly one of --prompt TEXT and --prompt-ids FILE/);
  await fails(['generate', '--model', dir, '--prompt', 'x', '--prompt-ids', 'p.json', '--max-new-tokens', '2'], /exactly one/);
  await fails(['generate', '--model', dir, '--prompt-ids', 'p.json', '--chat', '--max-new-tokens', '2'], /--chat needs --prompt/);
  const { writeRandomModel } = await import('../../src/model/random-model.js');
  const bare = join(tmp, 'bare');
  writeRandomModel(bare, { seed: 2 });
  await fails(['generate', '--model', bare, '--prompt', 'hi', '--max-new-tokens', '2'], /has no tokenizer\.json: text prompts and --stop need one/);
});
