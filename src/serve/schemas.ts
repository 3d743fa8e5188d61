/**
 * Request bodies of the OpenAI-compatible endpoints, validated with zod. Sampling fields
 * (temperature, top_p, stop, seed, max_tokens, …) are parsed separately by parseSamplingParams;
 * these schemas cover the rest and refuse what the server does not do (logprobs, tools, JSON mode,
 * echo, suffix) with a 400 that says so, instead of quietly ignoring it.
 */
import { z } from 'zod';
import { badRequest } from './errors.js';

const tokenIds = z.array(z.number().int().min(0).max(2 ** 31 - 1)).min(1, 'must not be empty');

const common = {
  model: z.string().min(1),
  stream: z.boolean().default(false),
  stream_options: z.object({ include_usage: z.boolean().default(false) }).nullish(),
  /** Choices per prompt (each its own generation; a seeded choice j draws with seed + j). */
  n: z.number().int().min(1).max(64).default(1),
  user: z.string().optional(),
};

const unsupported = (what: string) =>
  z
    .unknown()
    .refine((v) => v === undefined || v === null || v === false || v === 0, `${what} are not supported by this server`)
    .optional();

export const completionSchema = z.object({
  ...common,
  /** A string, a list of token ids, or a list of up to 64 of either (one choice per prompt and n). */
  prompt: z.union([z.string(), tokenIds, z.array(z.string()).min(1).max(64), z.array(tokenIds).min(1).max(64)], {
    error: 'must be a string, a non-empty list of token ids (integers ≥ 0), or a list of 1 to 64 of either',
  }),
  /** vLLM: add the generated token ids to each choice as `token_ids`. */
  return_token_ids: z.boolean().default(false),
  /** Add BOS/EOS as the tokenizer config says when encoding a text prompt (vLLM default true). */
  add_special_tokens: z.boolean().default(true),
  echo: z.literal(false, 'echo is not supported by this server').default(false),
  suffix: z.null('suffix is not supported by this server').optional(),
  best_of: z.literal(1, 'best_of > 1 is not supported').nullish(),
  logprobs: unsupported('logprobs'),
});
export type CompletionRequest = z.output<typeof completionSchema>;

const message = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.null(), z.array(z.looseObject({ type: z.string(), text: z.string().optional() }))]).optional(),
  name: z.string().optional(),
});

export const chatSchema = z.object({
  ...common,
  messages: z.array(message).min(1, 'must hold at least one message'),
  /** OpenAI's newer name for max_tokens. */
  max_completion_tokens: z.number().int().min(1).nullish(),
  /** vLLM: variables for the chat template (e.g. {"thinking": true}). */
  chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
  add_generation_prompt: z.boolean().default(true),
  return_token_ids: z.boolean().default(false),
  logprobs: unsupported('logprobs'),
  top_logprobs: unsupported('top_logprobs'),
  tools: z.array(z.unknown()).max(0, 'tools are not supported by this server').nullish(),
  tool_choice: z.literal('none', 'tools are not supported by this server').nullish(),
  response_format: z.object({ type: z.literal('text', 'only response_format {"type": "text"} is supported') }).nullish(),
});
export type ChatRequest = z.output<typeof chatSchema>;

export const tokenizeSchema = z.union([
  z.object({ model: z.string().optional(), prompt: z.string(), add_special_tokens: z.boolean().default(true) }),
  z.object({ model: z.string().optional(), messages: z.array(message).min(1), add_generation_prompt: z.boolean().default(true) }),
]);

export const detokenizeSchema = z.object({ model: z.string().optional(), tokens: z.array(z.number().int().min(0)) });

/** Parses a body with a schema; the first problem becomes a 400 naming the field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = issue.path.length > 0 ? issue.path.map(String).join('.') : null;
  throw badRequest(param ? `${param}: ${issue.message}` : issue.message, param);
}
