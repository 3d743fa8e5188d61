/**
 * POST /v1/completions and POST /v1/chat/completions: validate, build the prompt ids, start one
 * Generation per choice (each prompt × n), and answer with one JSON object or an SSE stream (see
 * sse.ts). A client that goes away cancels its generations, which frees their cache pages at once.
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import type { Engine } from '../engine/engine.js';
import { EngineClosedError, QueueFullError, RequestError } from '../engine/request.js';
import { parseSamplingParams, SamplingParamsError, stopStrings, type SamplingParams } from '../generate/params.js';
import { TokenizerError, type TextTokenizer } from '../text/tokenizer.js';
import { badRequest, modelNotFound, queueFull, unavailable } from './errors.js';
import { Generation } from './generation.js';
import type { ServeMetrics } from './metrics.js';
import { chatSchema, completionSchema, parseBody } from './schemas.js';
import { streamChoices } from './sse.js';

export interface ServeContext {
  engine: Engine;
  tokenizer: TextTokenizer | null;
  metrics: ServeMetrics;
  modelName: string;
  modelDir: string;
  /** Stop ids without a tokenizer (the config's eos_token_id). */
  eosTokenIds: number[];
  /** Milliseconds without output after which a stream gets a keep-alive comment. */
  keepAliveMs: number;
}

/** OpenAI's default max_tokens for completions. */
const COMPLETION_DEFAULT_MAX_TOKENS = 16;

export function checkModel(ctx: ServeContext, name: string | undefined): void {
  if (name !== undefined && name !== ctx.modelName) throw modelNotFound(name, ctx.modelName);
}

export function needTokenizer(ctx: ServeContext, what: string): TextTokenizer {
  if (!ctx.tokenizer) throw badRequest(`${what} needs a tokenizer, and the model directory ${ctx.modelDir} has no tokenizer.json: send token ids to /v1/completions instead`, null, 'no_tokenizer');
  return ctx.tokenizer;
}

function sampling(body: unknown): SamplingParams {
  try {
    return parseSamplingParams(body);
  } catch (e) {
    if (e instanceof SamplingParamsError) throw badRequest(e.message, e.param);
    throw e;
  }
}

/**
 * Starts n generations per prompt (choice index = prompt × n + j; choice j > 0 of a seeded request
 * draws with seed + j), mapping the engine's refusals to API errors. When one is refused, those
 * already started are cancelled.
 */
function startChoices(ctx: ServeContext, prompts: Int32Array[], params: SamplingParams, n: number, maxTokens: (prompt: Int32Array) => number | null, promptParam: string): Generation[] {
  if (!ctx.tokenizer && stopStrings(params).length > 0) throw badRequest('stop strings need a tokenizer (this model has none): use stop_token_ids', 'stop');
  if (prompts.length * n > ctx.engine.maxWaiting) throw badRequest(`${prompts.length * n} choices in one request; at most ${ctx.engine.maxWaiting}`, 'n');
  const setup = { engine: ctx.engine, tokenizer: ctx.tokenizer, metrics: ctx.metrics, eosTokenIds: ctx.eosTokenIds };
  const gens: Generation[] = [];
  try {
    for (const prompt of prompts) {
      const room = ctx.engine.maxContext - prompt.length;
      if (room < 1) {
        throw badRequest(`this model's maximum context length is ${ctx.engine.maxContext} tokens; the prompt has ${prompt.length}, leaving no room to generate`, promptParam, 'context_length_exceeded');
      }
      for (let j = 0; j < n; j++) {
        const p = j > 0 && params.seed != null ? { ...params, seed: params.seed + j } : params;
        gens.push(new Generation(setup, prompt, p, maxTokens(prompt) ?? room));
      }
    }
    return gens;
  } catch (e) {
    gens.forEach((g) => g.cancel());
    if (e instanceof RequestError) throw badRequest(e.message, promptParam, e.code);
    if (e instanceof QueueFullError) throw queueFull(e.message);
    if (e instanceof EngineClosedError) throw unavailable(e.message, 'shutting_down');
    throw e;
  }
}

/** Usage over all choices: each prompt counted once, every choice's generated tokens. */
function usage(gens: readonly Generation[], n: number) {
  let prompt = 0;
  let cached = 0;
  let completion = 0;
  gens.forEach((g, i) => {
    if (i % n === 0) {
      prompt += g.prompt.length;
      cached += g.req.cachedTokens;
    }
    completion += g.completionTokens;
  });
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
}

/**
 * Waits for every choice of a non-streaming request. A client that disconnects, or a choice that
 * fails, cancels them all.
 */
async function collectAll(c: Context, gens: readonly Generation[]) {
  const signal = c.req.raw.signal;
  const cancel = () => gens.forEach((g) => g.cancel());
  if (signal.aborted) cancel();
  else signal.addEventListener('abort', cancel, { once: true });
  try {
    return await Promise.all(gens.map((g) => g.collect()));
  } catch (e) {
    cancel();
    throw e;
  } finally {
    signal.removeEventListener('abort', cancel);
  }
}

/** The prompts of a completion request as ids: one text, one id list, or a list of either. */
function completionPrompts(ctx: ServeContext, prompt: string | number[] | string[] | number[][], addSpecialTokens: boolean): Int32Array[] {
  const list: Array<string | number[]> = typeof prompt === 'string' || typeof prompt[0] === 'number' ? [prompt as string | number[]] : (prompt as Array<string | number[]>);
  return list.map((p, i) => {
    if (typeof p !== 'string') return Int32Array.from(p);
    const ids = needTokenizer(ctx, 'a text prompt').encode(p, { addSpecialTokens });
    if (ids.length === 0) throw badRequest(`prompt ${i} encodes to no tokens`, 'prompt');
    return Int32Array.from(ids);
  });
}

export async function completions(c: Context, ctx: ServeContext, raw: unknown): Promise<Response> {
  const body = parseBody(completionSchema, raw);
  checkModel(ctx, body.model);
  const params = sampling(raw);
  const prompts = completionPrompts(ctx, body.prompt, body.add_special_tokens);
  const n = body.n;
  const maxTokens = (p: Int32Array) => params.max_tokens ?? Math.min(COMPLETION_DEFAULT_MAX_TOKENS, Math.max(1, ctx.engine.maxContext - p.length));
  const gens = startChoices(ctx, prompts, params, n, maxTokens, 'prompt');
  // Without a tokenizer the ids are the output: always include them.
  const withIds = body.return_token_ids || !ctx.tokenizer;
  const base = { id: `cmpl-${randomUUID()}`, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: ctx.modelName };
  const choice = (index: number, text: string, ids: number[] | null, finish: 'stop' | 'length' | null, first: boolean) => ({
    index,
    text,
    logprobs: null,
    finish_reason: finish,
    ...(finish === 'stop' && gens[index]!.stopString !== undefined ? { stop_reason: gens[index]!.stopString } : {}),
    ...(withIds && ids ? { token_ids: ids } : {}),
    ...(withIds && first ? { prompt_token_ids: Array.from(gens[index]!.prompt) } : {}),
  });
  if (body.stream) {
    const started = new Set<number>();
    return streamChoices(c, ctx.keepAliveMs, gens, {
      usage: body.stream_options?.include_usage ? () => ({ ...base, choices: [], usage: usage(gens, n) }) : null,
      chunk: (index, d, finish) => {
        const first = !started.has(index);
        started.add(index);
        return { ...base, choices: [choice(index, d?.text ?? '', d ? d.tokenIds : [], finish, first)] };
      },
    });
  }
  const outs = await collectAll(c, gens);
  const choices = outs.map((o, i) => choice(i, o.text, o.tokenIds, gens[i]!.apiFinishReason(), true));
  return c.json({ ...base, choices, usage: usage(gens, n) });
}

export async function chatCompletions(c: Context, ctx: ServeContext, raw: unknown): Promise<Response> {
  const body = parseBody(chatSchema, raw);
  checkModel(ctx, body.model);
  const tok = needTokenizer(ctx, 'chat');
  const params = sampling(raw);
  let ids: number[];
  try {
    ids = tok.encodeChat(body.messages, { addGenerationPrompt: body.add_generation_prompt, kwargs: body.chat_template_kwargs ?? undefined });
  } catch (e) {
    if (e instanceof TokenizerError) throw badRequest(e.message, 'messages');
    throw e;
  }
  const n = body.n;
  const gens = startChoices(ctx, [Int32Array.from(ids)], params, n, () => body.max_completion_tokens ?? params.max_tokens ?? null, 'messages');
  const base = { id: `chatcmpl-${randomUUID()}`, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: ctx.modelName };
  const withIds = (list: number[]) => (body.return_token_ids ? { token_ids: list } : {});
  if (body.stream) {
    const chunkBase = { ...base, object: 'chat.completion.chunk' };
    const chunk = (index: number, delta: Record<string, unknown>, finish: 'stop' | 'length' | null, extra = {}) => ({
      ...chunkBase,
      choices: [{ index, delta, logprobs: null, finish_reason: finish, ...extra }],
    });
    return streamChoices(c, ctx.keepAliveMs, gens, {
      usage: body.stream_options?.include_usage ? () => ({ ...chunkBase, choices: [], usage: usage(gens, n) }) : null,
      first: (index) => chunk(index, { role: 'assistant', content: '' }, null),
      // A token that completes no text yet (part of a character) sends nothing, unless ids were asked for.
      chunk: (index, d, finish) =>
        d && d.text === '' && !body.return_token_ids ? null : chunk(index, d ? { content: d.text } : {}, finish, withIds(d ? d.tokenIds : [])),
    });
  }
  const outs = await collectAll(c, gens);
  const choices = outs.map((o, i) => ({
    index: i,
    message: { role: 'assistant', content: o.text },
    logprobs: null,
    finish_reason: gens[i]!.apiFinishReason(),
    ...withIds(o.tokenIds),
  }));
  return c.json({ ...base, choices, usage: usage(gens, n) });
}
