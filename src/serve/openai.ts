/**
 * POST /v1/completions and POST /v1/chat/completions: validate, build the prompt ids, start a
 * Generation, and answer with one JSON object or an SSE stream of chunks (`data: {json}` events,
 * `: keep-alive` comments while nothing else is sent, `data: [DONE]` at the end). A client that
 * goes away cancels its generation, which frees its cache pages at once.
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Engine } from '../engine/engine.js';
import { EngineClosedError, QueueFullError, RequestError } from '../engine/request.js';
import { parseSamplingParams, SamplingParamsError, stopStrings, type SamplingParams } from '../generate/params.js';
import { TokenizerError, type TextTokenizer } from '../text/tokenizer.js';
import { ApiError, badRequest, modelNotFound, queueFull, serverError, unavailable } from './errors.js';
import { Generation, type Delta } from './generation.js';
import type { ServeMetrics } from './metrics.js';
import { chatSchema, completionSchema, parseBody } from './schemas.js';

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

/** Starts the generation, mapping the engine's refusals to API errors. */
function start(ctx: ServeContext, prompt: Int32Array, params: SamplingParams, maxTokens: number | null, promptParam: string): Generation {
  if (!ctx.tokenizer && stopStrings(params).length > 0) throw badRequest('stop strings need a tokenizer (this model has none): use stop_token_ids', 'stop');
  const room = ctx.engine.maxContext - prompt.length;
  if (room < 1) {
    throw badRequest(`this model's maximum context length is ${ctx.engine.maxContext} tokens; the prompt has ${prompt.length}, leaving no room to generate`, promptParam, 'context_length_exceeded');
  }
  try {
    return new Generation({ engine: ctx.engine, tokenizer: ctx.tokenizer, metrics: ctx.metrics, eosTokenIds: ctx.eosTokenIds }, prompt, params, maxTokens ?? room);
  } catch (e) {
    if (e instanceof RequestError) throw badRequest(e.message, promptParam, e.code);
    if (e instanceof QueueFullError) throw queueFull(e.message);
    if (e instanceof EngineClosedError) throw unavailable(e.message, 'shutting_down');
    throw e;
  }
}

function usage(gen: Generation) {
  const prompt = gen.prompt.length;
  const completion = gen.completionTokens;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: gen.req.cachedTokens } };
}

function finishReason(gen: Generation): 'stop' | 'length' {
  if (gen.finishReason === 'error') throw serverError(`generation failed: ${gen.error?.message ?? 'unknown error'}`);
  return gen.finishReason === 'length' ? 'length' : 'stop';
}

interface StreamShape {
  /** A chunk for a delta (finish null) or the final one; null skips the delta. */
  chunk(delta: Delta | null, finish: 'stop' | 'length' | null): Record<string, unknown> | null;
  /** Sent before any delta (chat: the assistant role). */
  first?: Record<string, unknown>;
  includeUsage: boolean;
  base: Record<string, unknown>;
}

function streamResponse(c: Context, ctx: ServeContext, gen: Generation, shape: StreamShape): Response {
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => gen.cancel());
    let last = Date.now();
    const send = async (obj: unknown) => {
      last = Date.now();
      await stream.writeSSE({ data: typeof obj === 'string' ? obj : JSON.stringify(obj) });
    };
    // Long prefills send nothing for a while: comment lines keep proxies from closing the stream.
    const timer = setInterval(() => {
      if (Date.now() - last < ctx.keepAliveMs || stream.aborted || stream.closed) return;
      last = Date.now();
      void stream.write(': keep-alive\n\n');
    }, Math.max(10, ctx.keepAliveMs / 2));
    const withUsage = (o: Record<string, unknown>) => (shape.includeUsage ? { ...o, usage: null } : o);
    try {
      if (shape.first) await send(withUsage(shape.first));
      for await (const d of gen.deltas()) {
        const chunk = shape.chunk(d, null);
        if (chunk) await send(withUsage(chunk));
      }
      if (gen.finishReason === 'abort') return; // the client went away
      await send(withUsage(shape.chunk(null, finishReason(gen))!));
      if (shape.includeUsage) await send({ ...shape.base, choices: [], usage: usage(gen) });
      await send('[DONE]');
    } catch (e) {
      gen.cancel();
      const err = e instanceof ApiError ? e : serverError((e as Error).message);
      if (!stream.aborted) await send(err.body());
    } finally {
      clearInterval(timer);
    }
  });
}

/** Cancels the generation when a non-streaming client disconnects. */
function cancelOnDisconnect(c: Context, gen: Generation): void {
  const signal = c.req.raw.signal;
  if (signal.aborted) gen.cancel();
  else signal.addEventListener('abort', () => gen.cancel(), { once: true });
}

export async function completions(c: Context, ctx: ServeContext, raw: unknown): Promise<Response> {
  const body = parseBody(completionSchema, raw);
  checkModel(ctx, body.model);
  const params = sampling(raw);
  let p: string | number[] = body.prompt as string | number[];
  if (Array.isArray(p) && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0] as string | number[];
  let prompt: Int32Array;
  if (typeof p === 'string') {
    const tok = needTokenizer(ctx, 'a text prompt');
    prompt = Int32Array.from(tok.encode(p, { addSpecialTokens: body.add_special_tokens }));
    if (prompt.length === 0) throw badRequest('the prompt encodes to no tokens', 'prompt');
  } else {
    prompt = Int32Array.from(p);
  }
  const maxTokens = params.max_tokens ?? Math.min(COMPLETION_DEFAULT_MAX_TOKENS, Math.max(1, ctx.engine.maxContext - prompt.length));
  const gen = start(ctx, prompt, params, maxTokens, 'prompt');
  // Without a tokenizer the ids are the output: always include them.
  const withIds = body.return_token_ids || !ctx.tokenizer;
  const base = { id: `cmpl-${randomUUID()}`, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: ctx.modelName };
  const choice = (text: string, ids: number[] | null, finish: 'stop' | 'length' | null, first: boolean) => ({
    index: 0,
    text,
    logprobs: null,
    finish_reason: finish,
    ...(finish === 'stop' && gen.stopString !== undefined ? { stop_reason: gen.stopString } : {}),
    ...(withIds && ids ? { token_ids: ids } : {}),
    ...(withIds && first ? { prompt_token_ids: Array.from(prompt) } : {}),
  });
  if (body.stream) {
    let first = true;
    return streamResponse(c, ctx, gen, {
      base,
      includeUsage: body.stream_options?.include_usage ?? false,
      chunk: (d, finish) => {
        const out = { ...base, choices: [choice(d?.text ?? '', d ? d.tokenIds : [], finish, first)] };
        first = false;
        return out;
      },
    });
  }
  cancelOnDisconnect(c, gen);
  const all = await gen.collect();
  return c.json({ ...base, choices: [choice(all.text, all.tokenIds, finishReason(gen), true)], usage: usage(gen) });
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
  const gen = start(ctx, Int32Array.from(ids), params, body.max_completion_tokens ?? params.max_tokens ?? null, 'messages');
  const base = { id: `chatcmpl-${randomUUID()}`, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: ctx.modelName };
  const ids_ = (list: number[]) => (body.return_token_ids ? { token_ids: list } : {});
  if (body.stream) {
    const chunkBase = { ...base, object: 'chat.completion.chunk' };
    return streamResponse(c, ctx, gen, {
      base: chunkBase,
      includeUsage: body.stream_options?.include_usage ?? false,
      first: { ...chunkBase, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] },
      // A token that completes no text yet (part of a character) sends nothing, unless ids were asked for.
      chunk: (d, finish) =>
        d && d.text === '' && !body.return_token_ids
          ? null
          : { ...chunkBase, choices: [{ index: 0, delta: d ? { content: d.text } : {}, logprobs: null, finish_reason: finish, ...ids_(d ? d.tokenIds : []) }] },
    });
  }
  cancelOnDisconnect(c, gen);
  const all = await gen.collect();
  const finish = finishReason(gen);
  return c.json({
    ...base,
    choices: [{ index: 0, message: { role: 'assistant', content: all.text }, logprobs: null, finish_reason: finish, ...ids_(all.tokenIds) }],
    usage: usage(gen),
  });
}
