/**
 * The HTTP app (hono, a fetch handler): OpenAI-compatible routes plus health, metrics and the
 * tokenizer utilities. /health and /metrics are public; everything else needs the API key when one
 * is set. Bodies are bounded; every error is an OpenAI error object.
 */
import { timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { TokenizerError } from '../text/tokenizer.js';
import { ApiError, badRequest, notFound, sendError, serverError, tooLarge, unauthorized, unavailable } from './errors.js';
import type { ServeMetrics } from './metrics.js';
import { chatCompletions, checkModel, completions, needTokenizer, type ServeContext } from './openai.js';
import { detokenizeSchema, parseBody, tokenizeSchema } from './schemas.js';

export interface AppOptions {
  /** Bearer token clients must send (none: open). */
  apiKey?: string;
  /** Largest request body in bytes (default 4 MiB). */
  maxBodyBytes?: number;
  metrics: ServeMetrics;
  /** The context once the model is loaded; null while loading (503). */
  context: () => ServeContext | null;
  /** Set when loading failed: health and requests answer 503 with it. */
  loadError?: () => Error | null;
}

function sameKey(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function createApp(o: AppOptions): Hono {
  const app = new Hono();
  const maxBody = o.maxBodyBytes ?? 4 * 1024 * 1024;

  const ready = (): ServeContext => {
    const ctx = o.context();
    if (ctx) return ctx;
    const err = o.loadError?.();
    throw err ? unavailable(`the model failed to load: ${err.message}`, 'load_failed') : unavailable('the model is loading', 'model_loading');
  };
  const json = async (c: Context): Promise<unknown> => {
    try {
      return await c.req.json();
    } catch {
      throw badRequest('the request body is not valid JSON');
    }
  };

  app.onError((e, c) => {
    if (e instanceof ApiError) return sendError(c, e);
    return sendError(c, serverError(e.message));
  });
  app.notFound((c) => sendError(c, notFound(`${c.req.method} ${c.req.path}`)));

  app.get('/health', (c) => {
    ready();
    return c.json({ status: 'ok' });
  });
  app.get('/metrics', async (c) => c.body(await o.metrics.text(), 200, { 'Content-Type': o.metrics.contentType }));

  const guarded = ['/v1/*', '/tokenize', '/detokenize'];
  for (const path of guarded) {
    app.use(path, async (c, next) => {
      if (o.apiKey !== undefined) {
        const h = c.req.header('authorization') ?? '';
        const m = /^Bearer\s+(.+)$/i.exec(h);
        if (!m || !sameKey(m[1]!.trim(), o.apiKey)) return sendError(c, unauthorized());
      }
      await next();
    });
    app.use(path, bodyLimit({ maxSize: maxBody, onError: (c) => sendError(c, tooLarge(maxBody)) }));
  }

  app.get('/v1/models', (c) => {
    const ctx = ready();
    return c.json({
      object: 'list',
      data: [{ id: ctx.modelName, object: 'model', created: Math.floor(Date.now() / 1000), owned_by: 'dsa', root: ctx.modelDir, max_model_len: ctx.engine.maxContext }],
    });
  });
  app.post('/v1/completions', async (c) => completions(c, ready(), await json(c)));
  app.post('/v1/chat/completions', async (c) => chatCompletions(c, ready(), await json(c)));

  app.post('/tokenize', async (c) => {
    const ctx = ready();
    const body = parseBody(tokenizeSchema, await json(c));
    checkModel(ctx, body.model);
    const tok = needTokenizer(ctx, '/tokenize');
    let tokens: number[];
    try {
      tokens = 'prompt' in body ? tok.encode(body.prompt, { addSpecialTokens: body.add_special_tokens }) : tok.encodeChat(body.messages, { addGenerationPrompt: body.add_generation_prompt });
    } catch (e) {
      if (e instanceof TokenizerError) throw badRequest(e.message, 'messages');
      throw e;
    }
    return c.json({ count: tokens.length, max_model_len: ctx.engine.maxContext, tokens });
  });
  app.post('/detokenize', async (c) => {
    const ctx = ready();
    const body = parseBody(detokenizeSchema, await json(c));
    checkModel(ctx, body.model);
    const tok = needTokenizer(ctx, '/detokenize');
    const vocab = ctx.engine.model.config.vocabSize;
    const bad = body.tokens.findIndex((t) => t >= Math.max(vocab, tok.vocabSize));
    if (bad >= 0) throw badRequest(`tokens[${bad}]: ${body.tokens[bad]} is outside the vocabulary`, `tokens.${bad}`);
    return c.json({ prompt: tok.decode(body.tokens) });
  });
  return app;
}
