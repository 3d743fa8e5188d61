/**
 * The serving target under load: 64 concurrent greedy requests (streaming and not, some sharing a
 * long prompt prefix, some clients disconnecting mid-stream) get exactly the tokens the same
 * requests get one at a time — nothing lost, nothing duplicated — and afterwards no request runs
 * and no cache page is held (read from /metrics).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type OpenAI from 'openai';
import { promptIds, randomModelDir, startTestServer, waitForMetrics, type TestServer } from '../helpers/serve.js';

type Extra = { return_token_ids?: boolean };
type Choice = { token_ids?: number[]; finish_reason: string | null };

const { dir, cleanup } = randomModelDir();
let t: TestServer;
before(async () => {
  // A batch of 16 and a cache smaller than 64 requests need: admission has to make them wait.
  t = await startTestServer(dir, { maxBatch: 16, cacheTokens: 64 * 48, maxStepTokens: 64 });
});
after(async () => {
  await t.close();
  cleanup();
});

const N = 64;
const sharedPrefix = promptIds(140, 999);
const requests = Array.from({ length: N }, (_, i) => ({
  prompt: i % 4 === 0 ? [...sharedPrefix, ...promptIds(1 + (i % 7), i)] : promptIds(3 + ((i * 13) % 90), i + 1),
  maxTokens: 4 + (i % 9),
  stream: i % 2 === 1,
  disconnect: i % 8 === 3,
}));

async function run(r: (typeof requests)[number]): Promise<{ ids: number[]; finish: string | null }> {
  const body = { model: t.modelName, prompt: r.prompt, max_tokens: r.maxTokens, temperature: 0, return_token_ids: true };
  if (!r.stream) {
    const res = await t.client.completions.create(body as OpenAI.CompletionCreateParamsNonStreaming & Extra);
    const c = res.choices[0] as unknown as Choice;
    return { ids: c.token_ids ?? [], finish: c.finish_reason };
  }
  const controller = new AbortController();
  const stream = await t.client.completions.create({ ...body, stream: true } as OpenAI.CompletionCreateParamsStreaming & Extra, { signal: controller.signal });
  const ids: number[] = [];
  let finish: string | null = null;
  for await (const chunk of stream) {
    const c = chunk.choices[0] as unknown as Choice | undefined;
    if (!c) continue;
    ids.push(...(c.token_ids ?? []));
    finish = c.finish_reason ?? finish;
    if (r.disconnect && ids.length >= 2) controller.abort();
  }
  return { ids, finish };
}

test('64 concurrent greedy requests equal the same requests one at a time; nothing held afterwards', async () => {
  const alone: number[][] = [];
  for (const r of requests) alone.push((await run({ ...r, disconnect: false })).ids);
  for (let i = 0; i < N; i++) assert.ok(alone[i]!.length >= 1 && alone[i]!.length <= requests[i]!.maxTokens);

  const together = await Promise.all(requests.map((r) => run(r)));
  let disconnected = 0;
  for (let i = 0; i < N; i++) {
    const got = together[i]!;
    if (requests[i]!.disconnect) {
      // A client that left saw a prefix of the tokens, and no end.
      assert.deepEqual(got.ids, alone[i]!.slice(0, got.ids.length), `request ${i}`);
      if (got.finish === null) disconnected++;
    } else {
      assert.deepEqual(got.ids, alone[i], `request ${i}`);
      assert.ok(got.finish === 'length' || got.finish === 'stop');
    }
  }
  assert.ok(disconnected >= 1, 'some clients left before their end');

  const m = await waitForMetrics(t, (x) => x.get('dsa:num_requests_running') === 0 && x.get('dsa:num_requests_waiting') === 0 && x.get('dsa:cache_pages_used') === 0);
  assert.ok(m.get('dsa:cache_pages_total')! === 48);
  assert.ok(m.get('dsa:prefix_cache_hit_tokens_total')! >= 128, 'requests sharing the 140-token prefix reused its pages');
  assert.ok(m.get('dsa:time_to_first_token_seconds_count')! >= 2 * N - 8);
});
