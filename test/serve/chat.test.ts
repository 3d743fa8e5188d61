/**
 * `dsa serve` on a model with a tokenizer (`dsa make-tiny`), through the `openai` client: chat
 * streaming and not, text completions, stop sequences (never streamed, not in the output),
 * /tokenize and /detokenize.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type OpenAI from 'openai';
import { TextTokenizer } from '../../src/text/tokenizer.js';
import { API_KEY, startTestServer, tinyTextModelDir, type TestServer } from '../helpers/serve.js';

type Extra = { return_token_ids?: boolean };
const { dir, cleanup } = tinyTextModelDir();
let t: TestServer;
let tok: TextTokenizer;
before(async () => {
  t = await startTestServer(dir);
  tok = TextTokenizer.load(dir)!;
});
after(async () => {
  await t.close();
  cleanup();
});

const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Name a colour.' },
];

async function streamText(stream: AsyncIterable<{ choices: Array<{ delta?: { content?: string | null }; text?: string; finish_reason: string | null }> }>) {
  const parts: string[] = [];
  let finish: string | null = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      const piece = c.delta ? c.delta.content : c.text;
      if (piece) parts.push(piece);
      finish = c.finish_reason ?? finish;
    }
  }
  return { parts, text: parts.join(''), finish };
}

describe('dsa serve with a tokenizer', () => {
  test('chat completion: the message is the decoded tokens; streaming gives the same text', async () => {
    const res = await t.client.chat.completions.create({ model: t.modelName, messages, max_tokens: 16, temperature: 0, return_token_ids: true } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming & Extra);
    const choice = res.choices[0]! as OpenAI.Chat.ChatCompletion.Choice & { token_ids: number[] };
    assert.equal(res.object, 'chat.completion');
    assert.equal(choice.message.role, 'assistant');
    assert.equal(choice.message.content, tok.decode(choice.token_ids, { skipSpecialTokens: true }));
    assert.equal(res.usage?.prompt_tokens, tok.encodeChat(messages as never).length);
    const stream = await t.client.chat.completions.create({ model: t.modelName, messages, max_tokens: 16, temperature: 0, stream: true });
    const s = await streamText(stream);
    assert.equal(s.text, choice.message.content);
    assert.equal(s.finish, choice.finish_reason);
    const two = await t.client.chat.completions.create({ model: t.modelName, messages, max_tokens: 16, temperature: 0, n: 2 });
    assert.deepEqual(two.choices.map((c) => [c.index, c.message.content]), [[0, choice.message.content], [1, choice.message.content]]);
    assert.equal(two.usage?.prompt_tokens, res.usage?.prompt_tokens);
  });

  test('text completions; stop sequences end the text before them, streaming or not', async () => {
    const full = await t.client.completions.create({ model: t.modelName, prompt: 'The colour of the sky', max_tokens: 24, temperature: 0 });
    const text = full.choices[0]!.text;
    // A two-character stop string from the middle of the greedy text.
    let at = -1;
    for (let i = 2; i + 2 < text.length; i++) if (!/[\uFFFD\s]/.test(text.slice(i, i + 2))) {
      at = i;
      break;
    }
    assert.ok(at > 0, `no usable stop string in ${JSON.stringify(text)}`);
    const stop = text.slice(at, at + 2);
    const expected = text.slice(0, text.indexOf(stop));
    const stopped = await t.client.completions.create({ model: t.modelName, prompt: 'The colour of the sky', max_tokens: 24, temperature: 0, stop: [stop, 'never-seen'] });
    assert.equal(stopped.choices[0]!.text, expected);
    assert.equal(stopped.choices[0]!.finish_reason, 'stop');
    const streamed = await streamText(await t.client.completions.create({ model: t.modelName, prompt: 'The colour of the sky', max_tokens: 24, temperature: 0, stop, stream: true }));
    assert.equal(streamed.text, expected);
    assert.equal(streamed.finish, 'stop');
    assert.ok(streamed.parts.every((p) => !p.includes(stop)));
    const chat = await t.client.chat.completions.create({ model: t.modelName, messages, max_tokens: 16, temperature: 0, stop: 'zzzz' });
    assert.ok(chat.choices[0]!.finish_reason === 'length' || chat.choices[0]!.finish_reason === 'stop');
  });

  test('/tokenize and /detokenize round-trip; bad chat bodies are 400s', async () => {
    const post = async (path: string, body: unknown) =>
      fetch(`${t.server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` }, body: JSON.stringify(body) });
    const enc = (await (await post('/tokenize', { prompt: 'Hello, world' })).json()) as { tokens: number[]; count: number };
    assert.deepEqual(enc.tokens, tok.encode('Hello, world'));
    assert.equal(enc.count, enc.tokens.length);
    const chat = (await (await post('/tokenize', { messages })).json()) as { tokens: number[] };
    assert.deepEqual(chat.tokens, tok.encodeChat(messages as never));
    const dec = (await (await post('/detokenize', { tokens: tok.encode('Hello, world', { addSpecialTokens: false }) })).json()) as { prompt: string };
    assert.equal(dec.prompt, 'Hello, world');
    for (const [body, match] of [
      [{ model: t.modelName, messages: [] }, /messages: must hold at least one message/],
      [{ model: t.modelName, messages: [{ role: 'wizard', content: 'hi' }] }, /messages\.0\.role/],
      [{ model: t.modelName, messages, tools: [{ type: 'function' }] }, /tools are not supported/],
      [{ model: t.modelName, messages, logprobs: true }, /logprobs are not supported/],
      [{ model: t.modelName, messages, top_p: 2 }, /top_p/],
    ] as const) {
      const res = await post('/v1/chat/completions', body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(((await res.json()) as { error: { message: string } }).error.message, match);
    }
  });
});
