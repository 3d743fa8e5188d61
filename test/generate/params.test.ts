import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isGreedy, parseSamplingParams, SamplingParamsError, samplingParamsSchema, stopStrings } from '../../src/generate/params.js';

test('SamplingParams: OpenAI defaults; extra request fields are ignored', () => {
  const p = parseSamplingParams({ model: 'x', messages: [], stream: true });
  assert.equal(p.temperature, 1);
  assert.equal(p.top_p, 1);
  assert.equal(p.top_k, 0);
  assert.equal(p.min_p, 0);
  assert.equal(p.presence_penalty, 0);
  assert.equal(p.repetition_penalty, 1);
  assert.equal(p.seed, undefined);
  assert.equal(p.max_tokens, undefined);
  assert.equal(p.skip_special_tokens, true);
  assert.equal(p.include_stop_str_in_output, false);
  assert.equal('model' in p, false);
  assert.deepEqual(stopStrings(p), []);
  assert.equal(isGreedy(p), false);
  assert.equal(isGreedy(parseSamplingParams({ temperature: 0 })), true);
});

test('SamplingParams: stop is a string or a list; nulls as OpenAI clients send them', () => {
  assert.deepEqual(stopStrings(parseSamplingParams({ stop: 'END' })), ['END']);
  assert.deepEqual(stopStrings(parseSamplingParams({ stop: ['a', 'bc'] })), ['a', 'bc']);
  const p = parseSamplingParams({ stop: null, seed: null, max_tokens: null, logit_bias: null });
  assert.deepEqual(stopStrings(p), []);
  assert.equal(parseSamplingParams({ seed: 2 ** 40 }).seed, 2 ** 40);
});

test('SamplingParams: bad fields are named', () => {
  const bad: Array<[Record<string, unknown>, string]> = [
    [{ temperature: -0.5 }, 'temperature'],
    [{ temperature: 'hot' }, 'temperature'],
    [{ top_p: 0 }, 'top_p'],
    [{ top_p: 1.5 }, 'top_p'],
    [{ top_k: 2.5 }, 'top_k'],
    [{ top_k: -2 }, 'top_k'],
    [{ min_p: 2 }, 'min_p'],
    [{ presence_penalty: 3 }, 'presence_penalty'],
    [{ repetition_penalty: 0 }, 'repetition_penalty'],
    [{ seed: 1.5 }, 'seed'],
    [{ stop: '' }, 'stop'],
    [{ stop: ['ok', 3] }, 'stop'],
    [{ stop: 'x'.repeat(1025) }, 'stop'],
    [{ max_tokens: 0 }, 'max_tokens'],
    [{ stop_token_ids: [-1] }, 'stop_token_ids.0'],
    [{ logit_bias: { abc: 1 } }, 'logit_bias.abc'],
    [{ logit_bias: { '5': 101 } }, 'logit_bias.5'],
    [{ min_tokens: 5, max_tokens: 2 }, 'min_tokens'],
  ];
  for (const [input, param] of bad) {
    assert.throws(
      () => parseSamplingParams(input),
      (e: Error) => e instanceof SamplingParamsError && e.param === param && e.message.startsWith(param),
      `${JSON.stringify(input)} → ${param}`,
    );
  }
});

test('samplingParamsSchema can be extended into a request schema', () => {
  const req = samplingParamsSchema.extend({ prompt: samplingParamsSchema.shape.stop });
  assert.equal(req.parse({ prompt: 'x', top_k: 3 }).top_k, 3);
});
