/**
 * Sampling parameters as OpenAI requests carry them (snake_case, the same names), plus the
 * extensions vLLM and llama.cpp accept (top_k, min_p, repetition_penalty, stop_token_ids, …),
 * validated with zod. Defaults are OpenAI's: temperature 1, top_p 1, no penalties.
 */
import { z } from 'zod';

/** Longest stop string: matching holds back up to this much text per request. */
export const MAX_STOP_LENGTH = 1024;
const stopString = z.string().min(1).max(MAX_STOP_LENGTH);

const finite = () => z.number().refine(Number.isFinite, 'must be a finite number');

/**
 * The sampling fields of a completion request. Unknown keys are stripped, so a request schema can
 * `.extend()` this one (or parse the whole body with it to pick out the sampling fields).
 */
export const samplingParamsSchema = z.object({
  /** 0 = greedy. */
  temperature: finite().min(0).default(1),
  /** Nucleus: the smallest set of most likely tokens whose probability adds up to at least top_p. */
  top_p: finite().gt(0).max(1).default(1),
  /** Keep the k most likely tokens; 0 or -1 = all (vLLM's convention). */
  top_k: z.number().int().min(-1).default(0),
  /** Keep tokens at least min_p times as likely as the most likely one. */
  min_p: finite().min(0).max(1).default(0),
  /** Penalties over the generated tokens (OpenAI): subtract presence once, frequency × count. */
  presence_penalty: finite().min(-2).max(2).default(0),
  frequency_penalty: finite().min(-2).max(2).default(0),
  /** Over prompt and generated tokens (transformers/vLLM): logits > 0 divided by it, < 0 multiplied. */
  repetition_penalty: finite().gt(0).default(1),
  /** Token id (as a string key, OpenAI) → bias added to its logit, −100…100. */
  logit_bias: z.record(z.string().regex(/^\d+$/, 'keys must be token ids'), finite().min(-100).max(100)).nullish(),
  /** Same seed, same logits → same tokens. Without a seed every request draws its own. */
  seed: z.number().int().refine(Number.isSafeInteger, 'must be a safe integer').nullish(),
  /** Stop strings: generation ends before the first occurrence, which is not part of the output. */
  stop: z
    .union([stopString, z.array(stopString).max(64)], { error: `must be a string of 1 to ${MAX_STOP_LENGTH} characters or a list of up to 64 of them` })
    .nullish(),
  /** Token ids that end generation (as EOS does). */
  stop_token_ids: z.array(z.number().int().min(0)).max(1024).nullish(),
  /** Keep generating past EOS (benchmarks). */
  ignore_eos: z.boolean().default(false),
  /** Upper bound on generated tokens; null = up to the context length. */
  max_tokens: z.number().int().min(1).nullish(),
  /** No stop condition other than max_tokens before this many tokens. */
  min_tokens: z.number().int().min(0).default(0),
  /** Drop special tokens from the text (vLLM default true). */
  skip_special_tokens: z.boolean().default(true),
  /** Put the matched stop string at the end of the output (default false, as OpenAI). */
  include_stop_str_in_output: z.boolean().default(false),
});

export type SamplingParams = z.output<typeof samplingParamsSchema>;
export type SamplingParamsInput = z.input<typeof samplingParamsSchema>;

/** A bad sampling field, naming it (`param` goes into the OpenAI error object). */
export class SamplingParamsError extends Error {
  constructor(
    message: string,
    readonly param: string | null,
  ) {
    super(message);
  }
}

/** Validates and fills defaults; throws SamplingParamsError naming the first bad field. */
export function parseSamplingParams(input: unknown): SamplingParams {
  const r = samplingParamsSchema.safeParse(input ?? {});
  if (r.success) {
    const p = r.data;
    if (p.max_tokens != null && p.min_tokens > p.max_tokens) {
      throw new SamplingParamsError(`min_tokens (${p.min_tokens}) must not exceed max_tokens (${p.max_tokens})`, 'min_tokens');
    }
    return p;
  }
  const issue = r.error.issues[0]!;
  const param = issue.path.length > 0 ? issue.path.map(String).join('.') : null;
  throw new SamplingParamsError(`${param ?? 'request'}: ${issue.message}`, param);
}

/** The stop strings as a list. */
export function stopStrings(p: Pick<SamplingParams, 'stop'>): string[] {
  if (p.stop == null) return [];
  return typeof p.stop === 'string' ? [p.stop] : p.stop;
}

/** Whether these parameters make sampling greedy (vLLM: temperature below 1e-5). */
export function isGreedy(p: Pick<SamplingParams, 'temperature'>): boolean {
  return p.temperature < 1e-5;
}
