/**
 * `dsa serve` through the `openai` client (and raw fetch where the client hides the wire): token-id
 * completions streaming and not, return_token_ids, stop token ids, seeds, errors as OpenAI error
 * objects (400, 401, 404, 413, context_length_exceeded), a model without tokenizer, keep-alive
 * comments, and a client that disconnects mid-stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { CpuBackend } from '../../src/backend/cpu.js';
import { runGenerate } from '../../src/cli/generate.js';
import type { Backend } from '../../src/backend/backend.js';
import { Model } from '../../src/model/model.js';
import { startServer } from '../../src/serve/server.js';
import { API_KEY, promptIds, randomModelDir, startTestServer, waitForMetrics, type TestServer } from '../helpers/serve.js';

type Extra = { return_token_ids?: boolean; stop_token_ids?: number[]; ignore_eos?: boolean };
type Choice = OpenAI.Completions.CompletionChoice & { token_ids?: number[]; prompt_token_ids?: number[] };

const { dir, cleanup } = randomModelDir();
let t: TestServer;

before(async () => {
  t = await startTestServer(dir, { keepAliveMs: 1, maxStepTokens: 16 });
});
after(async () => {
  await t.close();
  cleanup();
});

async function complete(body: OpenAI.CompletionCreateParamsNonStreaming & Extra): Promise<{ ids: number[]; choice: Choice; res: OpenAI.Completion }> {
  const res = await t.client.completions.create(body);
  const choice = res.choices[0] as Choice;
  return { ids: choice.token_ids ?? [], choice, res };
}

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${t.server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('dsa serve', () => {
  const prompt = promptIds(20, 3);

  test('GET /health and /v1/models', async () => {
    assert.deepEqual(await (await fetch(`${t.server.url}/health`)).json(), { status: 'ok' });
    const models = await t.client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), [t.modelName]);
  });

  test('greedy token-id completion equals `dsa generate`; usage and return_token_ids', async () => {
    const { ids, choice, res } = await complete({ model: t.modelName, prompt, max_tokens: 8, temperature: 0, return_token_ids: true });
    const model = Model.load(dir, new CpuBackend({ batchInvariant: true }));
    const direct = await runGenerate({ model, prompt: Int32Array.from(prompt), maxNewTokens: 8, temperature: 0, seed: 0, stopAtEos: false });
    assert.deepEqual(ids, direct);
    assert.equal(choice.finish_reason, 'length');
    assert.deepEqual(choice.prompt_token_ids, prompt);
    assert.equal(choice.text, '', 'no tokenizer: no text');
    assert.deepEqual(res.usage && [res.usage.prompt_tokens, res.usage.completion_tokens, res.usage.total_tokens], [20, 8, 28]);
  });

  test('streaming gives the same tokens, then a usage chunk and [DONE]', async () => {
    const { ids } = await complete({ model: t.modelName, prompt, max_tokens: 8, temperature: 0, return_token_ids: true });
    const stream = await t.client.completions.create({ model: t.modelName, prompt, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true }, return_token_ids: true } as OpenAI.CompletionCreateParamsStreaming & Extra);
    const got: number[] = [];
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices as Choice[]) {
        got.push(...(c.token_ids ?? []));
        finish = c.finish_reason ?? finish;
      }
    }
    assert.deepEqual(got, ids);
    assert.equal(finish, 'length');
    assert.equal(usage?.completion_tokens, 8);
  });

  test('stop_token_ids end generation with finish_reason stop; seeds reproduce sampled tokens', async () => {
    const { ids } = await complete({ model: t.modelName, prompt, max_tokens: 8, temperature: 0, return_token_ids: true });
    const stopAt = ids[3]!;
    const first = ids.indexOf(stopAt);
    const stopped = await complete({ model: t.modelName, prompt, max_tokens: 8, temperature: 0, stop_token_ids: [stopAt], return_token_ids: true });
    assert.equal(stopped.choice.finish_reason, 'stop');
    assert.deepEqual(stopped.ids, ids.slice(0, first + 1));
    const a = await complete({ model: t.modelName, prompt, max_tokens: 10, temperature: 1.5, seed: 42, return_token_ids: true });
    const b = await complete({ model: t.modelName, prompt, max_tokens: 10, temperature: 1.5, seed: 42, return_token_ids: true });
    const c = await complete({ model: t.modelName, prompt, max_tokens: 10, temperature: 1.5, seed: 43, return_token_ids: true });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids, c.ids);
  });

  test('several prompts and n choices: one choice each, in order, each what it gets alone', async () => {
    const prompts = [promptIds(7, 1), promptIds(12, 2), promptIds(3, 3)];
    const alone = [];
    for (const p of prompts) alone.push((await complete({ model: t.modelName, prompt: p, max_tokens: 5, temperature: 0, return_token_ids: true })).ids);
    const res = await t.client.completions.create({ model: t.modelName, prompt: prompts, max_tokens: 5, temperature: 0, n: 2, return_token_ids: true } as OpenAI.CompletionCreateParamsNonStreaming & Extra);
    assert.deepEqual(res.choices.map((c) => c.index), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(res.choices.map((c) => (c as Choice).token_ids), [alone[0], alone[0], alone[1], alone[1], alone[2], alone[2]]);
    assert.equal(res.usage?.prompt_tokens, 7 + 12 + 3);
    assert.equal(res.usage?.completion_tokens, 30);
    // Streaming: chunks of the choices interleave; per index they add up to the same ids.
    const stream = await t.client.completions.create({ model: t.modelName, prompt: prompts, max_tokens: 5, temperature: 0, stream: true, return_token_ids: true } as OpenAI.CompletionCreateParamsStreaming & Extra);
    const got: number[][] = [[], [], []];
    const finished: (string | null)[] = [null, null, null];
    for await (const chunk of stream) {
      for (const c of chunk.choices as Choice[]) {
        got[c.index]!.push(...(c.token_ids ?? []));
        finished[c.index] = c.finish_reason ?? finished[c.index]!;
      }
    }
    assert.deepEqual(got, alone);
    assert.deepEqual(finished, ['length', 'length', 'length']);
    // Seeded choices differ from each other and repeat across requests.
    const sampled = async () =>
      (await t.client.completions.create({ model: t.modelName, prompt: prompts[0]!, max_tokens: 8, temperature: 1.5, seed: 7, n: 2, return_token_ids: true } as OpenAI.CompletionCreateParamsNonStreaming & Extra)).choices.map((c) => (c as Choice).token_ids);
    const [a, b] = [await sampled(), await sampled()];
    assert.deepEqual(a, b);
    assert.notDeepEqual(a[0], a[1]);
  });

  test('errors are OpenAI error objects with the right status', async () => {
    const expectError = async (p: Promise<unknown>, status: number, match: RegExp, code?: string) => {
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof OpenAI.APIError, String(e));
        assert.equal(e.status, status);
        assert.match(e.message, match);
        if (code !== undefined) assert.equal(e.code, code);
        return true;
      });
    };
    const bad = new OpenAI({ baseURL: `${t.server.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await expectError(bad.completions.create({ model: t.modelName, prompt, max_tokens: 2 }), 401, /API key/, 'invalid_api_key');
    await expectError(t.client.completions.create({ model: 'gpt-5', prompt, max_tokens: 2 }), 404, /gpt-5/, 'model_not_found');
    await expectError(t.client.completions.create({ model: t.modelName, prompt, max_tokens: 2, temperature: -1 }), 400, /temperature/);
    await expectError(t.client.completions.create({ model: t.modelName, prompt: [], max_tokens: 2 }), 400, /prompt/);
    await expectError(t.client.completions.create({ model: t.modelName, prompt: [1, 100000], max_tokens: 2 }), 400, /outside the vocabulary/);
    await expectError(t.client.completions.create({ model: t.modelName, prompt, max_tokens: 600 }), 400, /maximum context length is 512/, 'context_length_exceeded');
    await expectError(t.client.completions.create({ model: t.modelName, prompt, n: 100 }), 400, /n: .*64/);
    await expectError(t.client.completions.create({ model: t.modelName, prompt: 'hello' }), 400, /no tokenizer\.json/, 'no_tokenizer');
    await expectError(t.client.completions.create({ model: t.modelName, prompt, stop: 'x' }), 400, /stop strings need a tokenizer/);
    await expectError(t.client.chat.completions.create({ model: t.modelName, messages: [{ role: 'user', content: 'hi' }] }), 400, /chat needs a tokenizer/, 'no_tokenizer');
    // What the client cannot send: broken JSON, a body that is not an object, a huge body.
    const broken = await post('/v1/completions', '{"model": ');
    assert.equal(broken.status, 400);
    assert.match(((await broken.json()) as { error: { message: string } }).error.message, /not valid JSON/);
    assert.equal((await post('/v1/completions', [1, 2])).status, 400);
    const huge = await post('/v1/completions', { model: t.modelName, prompt: new Array(3_000_000).fill(1) });
    assert.equal(huge.status, 413);
    const missing = await fetch(`${t.server.url}/v1/nothing`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
    assert.equal((await post('/tokenize', { prompt: 'hi' })).status, 400);
  });

  test('SSE: keep-alive comments while a long prompt is prefilled', async () => {
    const res = await post('/v1/completions', { model: t.modelName, prompt: promptIds(400, 9), max_tokens: 2, temperature: 0, stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await res.text();
    const firstData = text.indexOf('data: ');
    assert.ok(text.indexOf(': keep-alive') >= 0 && text.indexOf(': keep-alive') < firstData, 'a keep-alive comment before the first token');
    assert.ok(text.trimEnd().endsWith('data: [DONE]'));
  });

  test('a client that disconnects mid-stream stops its generation and frees its pages', async () => {
    const controller = new AbortController();
    const stream = await t.client.completions.create(
      { model: t.modelName, prompt: promptIds(100, 5), max_tokens: 400, temperature: 0, stream: true, ignore_eos: true } as OpenAI.CompletionCreateParamsStreaming & Extra,
      { signal: controller.signal },
    );
    let chunks = 0;
    // The client ends the iteration quietly when aborted.
    for await (const _ of stream) if (++chunks === 3) controller.abort();
    assert.ok(chunks >= 3 && chunks < 400);
    const m = await waitForMetrics(t, (x) => x.get('dsa:num_requests_running') === 0 && x.get('dsa:cache_pages_used') === 0);
    assert.ok(m.get('dsa:request_success_total{finished_reason="abort"}')! >= 1);
    assert.ok(m.get('dsa:generation_tokens_total')! < 400, 'generation stopped early');
  });
});

describe('dsa serve under pressure', () => {
  test('a non-streaming client that disconnects stops its generation too', async () => {
    const controller = new AbortController();
    const started = t.client.completions.create({ model: t.modelName, prompt: promptIds(30, 8), max_tokens: 450, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming & Extra, { signal: controller.signal });
    await waitForMetrics(t, (x) => x.get('dsa:num_requests_running') === 1);
    const before = (await t.metrics()).get('dsa:request_success_total{finished_reason="abort"}') ?? 0;
    controller.abort();
    await assert.rejects(started, /abort/i);
    const m = await waitForMetrics(t, (x) => x.get('dsa:num_requests_running') === 0 && x.get('dsa:cache_pages_used') === 0);
    assert.equal(m.get('dsa:request_success_total{finished_reason="abort"}'), before + 1);
  });

  test('a full waiting queue answers 429', async () => {
    const small = await startTestServer(dir, { maxBatch: 1, maxWaiting: 1 });
    try {
      const body = { model: small.modelName, prompt: promptIds(10, 2), max_tokens: 300, temperature: 0, ignore_eos: true };
      const results = await Promise.allSettled([0, 1, 2].map(() => small.client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming & Extra)));
      const refused = results.filter((r) => r.status === 'rejected');
      assert.ok(refused.length >= 1, 'at least one of three is refused');
      for (const r of refused) {
        const e = (r as PromiseRejectedResult).reason as InstanceType<typeof OpenAI.APIError>;
        assert.equal(e.status, 429);
        assert.equal(e.code, 'queue_full');
      }
      assert.ok(results.some((r) => r.status === 'fulfilled'));
    } finally {
      await small.close();
    }
  });
});

describe('dsa serve while loading', () => {
  test('/health and requests answer 503 while the model loads, and name the problem when loading failed', async () => {
    let release!: (b: Backend) => void;
    const s = await startServer({ model: dir, port: 0, backend: new Promise<Backend>((r) => (release = r)) });
    const health = await fetch(`${s.url}/health`);
    assert.equal(health.status, 503);
    assert.equal(((await health.json()) as { error: { code: string } }).error.code, 'model_loading');
    assert.equal((await fetch(`${s.url}/v1/models`)).status, 503);
    const backend = new CpuBackend({ batchInvariant: true });
    release(backend);
    await s.ready;
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    await s.close();
    backend.close();

    const broken = await startServer({ model: `${dir}-missing`, port: 0 });
    try {
      await assert.rejects(broken.ready, /model directory not found/);
      const res = await fetch(`${broken.url}/health`);
      assert.equal(res.status, 503);
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /failed to load.*model directory not found/);
    } finally {
      await broken.close();
    }
  });
});
