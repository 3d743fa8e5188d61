/**
 * The model's text side: a Hugging Face `tokenizer.json` + `tokenizer_config.json` pair loaded with
 * `@huggingface/tokenizers`, and the chat template from `tokenizer_config.json` (or a
 * `chat_template.jinja` beside it) rendered with `@huggingface/jinja`.
 *
 * Behaviour follows transformers / vLLM: `encode` adds the BOS token when the config says
 * `add_bos_token` (DeepSeek's tokenizer.json has no post-processor that would), a chat prompt is
 * rendered with the BOS already in it and is encoded without special tokens, and ids the tokenizer
 * has no token for (the padded tail of a model's vocabulary) decode to nothing.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { readJsonFile, readTextFile } from '../io/text-file.js';

/** One chat message as the OpenAI API sends it (content may be a list of text parts). */
export interface ChatMessage {
  role: string;
  content?: string | null | Array<{ type: string; text?: string }>;
  name?: string;
  tool_calls?: unknown[];
  tool_call_id?: string;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** End the prompt with the assistant's turn opener (default true: the prompt is for generation). */
  addGenerationPrompt?: boolean;
  /** Tool definitions (OpenAI `tools`), passed to the template as `tools`. */
  tools?: unknown[];
  /** Extra template variables (vLLM's `chat_template_kwargs`, e.g. `{ thinking: true }`). */
  kwargs?: Record<string, unknown>;
  /** A template to use instead of the model's. */
  template?: string;
}

/** Thrown for a tokenizer directory whose files are missing pieces or malformed. */
export class TokenizerError extends Error {}

type TokenSpec = string | { content?: unknown } | null | undefined;

function tokenContent(spec: TokenSpec): string | undefined {
  if (typeof spec === 'string') return spec;
  if (spec && typeof spec === 'object' && typeof spec.content === 'string') return spec.content;
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The template text from a tokenizer_config `chat_template` (a string, or a list of named templates). */
function pickTemplate(raw: unknown, wantTools: boolean, source: string): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw === 'string') return raw;
  if (Array.isArray(raw)) {
    const named = new Map<string, string>();
    for (const t of raw) {
      if (!isObject(t) || typeof t.name !== 'string' || typeof t.template !== 'string') {
        throw new TokenizerError(`${source}: chat_template list entries must be {name, template} objects`);
      }
      named.set(t.name, t.template);
    }
    return (wantTools ? named.get('tool_use') : undefined) ?? named.get('default') ?? null;
  }
  throw new TokenizerError(`${source}: chat_template must be a string or a list of {name, template}`);
}

export class TextTokenizer {
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  /** Ids that end generation: the tokenizer's EOS plus generation_config.json's `eos_token_id`s. */
  readonly eosTokenIds: number[];
  /** One past the largest id the tokenizer has a token for (vocabulary plus added tokens). */
  readonly vocabSize: number;
  /** The raw `chat_template` value (string or named list), or null when the model has none. */
  readonly chatTemplate: unknown;
  private readonly tok: Tokenizer;
  private readonly addBos: boolean;
  private readonly addEos: boolean;
  private readonly specialIds: Set<number>;
  private readonly templates = new Map<string, Template>();

  /**
   * @param tokenizerJson the parsed tokenizer.json
   * @param config the parsed tokenizer_config.json ({} when there is none)
   * @param extra.source a name for error messages; extra.eosTokenIds more stop ids (generation_config.json)
   */
  constructor(tokenizerJson: unknown, config: unknown, extra: { source?: string; eosTokenIds?: number[]; chatTemplate?: string } = {}) {
    const source = extra.source ?? 'tokenizer';
    if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) {
      throw new TokenizerError(`${source}: tokenizer.json has no "model" object (not a Hugging Face tokenizer.json?)`);
    }
    if (!isObject(config)) throw new TokenizerError(`${source}: tokenizer_config.json must be a JSON object`);
    try {
      this.tok = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new TokenizerError(`${source}: tokenizer.json could not be loaded (${(e as Error).message})`);
    }
    const added = Array.isArray(tokenizerJson.added_tokens) ? (tokenizerJson.added_tokens as unknown[]) : [];
    this.specialIds = new Set();
    let maxId = -1;
    for (const t of added) {
      if (!isObject(t) || !Number.isInteger(t.id) || typeof t.content !== 'string') {
        throw new TokenizerError(`${source}: tokenizer.json added_tokens entries need an integer "id" and a string "content"`);
      }
      if (t.special === true) this.specialIds.add(t.id as number);
      maxId = Math.max(maxId, t.id as number);
    }
    for (const id of this.tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    this.bosToken = tokenContent(config.bos_token as TokenSpec);
    this.eosToken = tokenContent(config.eos_token as TokenSpec);
    this.bosTokenId = this.bosToken === undefined ? undefined : this.tok.token_to_id(this.bosToken);
    this.eosTokenId = this.eosToken === undefined ? undefined : this.tok.token_to_id(this.eosToken);
    if (this.bosToken !== undefined && this.bosTokenId === undefined) throw new TokenizerError(`${source}: bos_token ${JSON.stringify(this.bosToken)} is not in the vocabulary`);
    if (this.eosToken !== undefined && this.eosTokenId === undefined) throw new TokenizerError(`${source}: eos_token ${JSON.stringify(this.eosToken)} is not in the vocabulary`);
    for (const id of [this.bosTokenId, this.eosTokenId]) if (id !== undefined) this.specialIds.add(id);
    this.addBos = config.add_bos_token === true && this.bosTokenId !== undefined;
    this.addEos = config.add_eos_token === true && this.eosTokenId !== undefined;
    this.eosTokenIds = [...new Set([...(this.eosTokenId === undefined ? [] : [this.eosTokenId]), ...(extra.eosTokenIds ?? [])])];

    this.chatTemplate = config.chat_template ?? extra.chatTemplate ?? null;
    pickTemplate(this.chatTemplate, false, source); // validate the shape now, not at the first request
  }

  /**
   * Loads DIR/tokenizer.json and DIR/tokenizer_config.json (optional), a DIR/chat_template.jinja
   * when the config has no template, and the extra EOS ids of DIR/generation_config.json.
   * Returns null when DIR has no tokenizer.json (a model served by token ids only).
   */
  static load(dir: string): TextTokenizer | null {
    const tokFile = join(dir, 'tokenizer.json');
    if (!existsSync(tokFile)) return null;
    const cfgFile = join(dir, 'tokenizer_config.json');
    const config = existsSync(cfgFile) ? readJsonFile(cfgFile) : {};
    if (!isObject(config)) throw new TokenizerError(`${cfgFile}: expected a JSON object`);
    const jinjaFile = join(dir, 'chat_template.jinja');
    const chatTemplate = existsSync(jinjaFile) && statSync(jinjaFile).isFile() ? readTextFile(jinjaFile) : undefined;
    const json = readJsonFile(tokFile);
    return new TextTokenizer(json, config, { source: tokFile, eosTokenIds: generationEosIds(dir), chatTemplate });
  }

  /** Token ids of `text`; with special tokens (the default), BOS/EOS as the config asks. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const add = opts.addSpecialTokens ?? true;
    const ids = this.tok.encode(text, { add_special_tokens: add }).ids;
    if (add && this.addBos && ids[0] !== this.bosTokenId) ids.unshift(this.bosTokenId!);
    if (add && this.addEos && ids[ids.length - 1] !== this.eosTokenId) ids.push(this.eosTokenId!);
    return ids;
  }

  /** The text of `ids`; ids without a token (a model's padded vocabulary) contribute nothing. */
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const known: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0) throw new RangeError(`token id ${id} at index ${i} is not a non-negative integer`);
      if (opts.skipSpecialTokens && this.specialIds.has(id)) continue;
      if (this.tok.id_to_token(id) !== undefined) known.push(id);
    }
    if (known.length === 0) return '';
    return this.tok.decode(known, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** The token string of an id (byte-level form, e.g. 'Ġworld'), or undefined. */
  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** Whether the id is a special token (BOS, EOS, padding, …) that `skipSpecialTokens` drops. */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate !== null;
  }

  /** The chat rendered as prompt text by the model's template (BOS included, as the template writes it). */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    const source = opts.template ?? pickTemplate(this.chatTemplate, (opts.tools?.length ?? 0) > 0, 'tokenizer_config.json');
    if (source === null) throw new TokenizerError('this model has no chat template (tokenizer_config.json has no chat_template)');
    let template = this.templates.get(source);
    if (!template) {
      try {
        template = new Template(source);
      } catch (e) {
        throw new TokenizerError(`chat template does not parse: ${(e as Error).message}`);
      }
      this.templates.set(source, template);
    }
    const context: Record<string, unknown> = {
      ...opts.kwargs,
      messages: messages.map(normalizeMessage),
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
    };
    if (opts.tools !== undefined) context.tools = opts.tools;
    try {
      return template.render(context);
    } catch (e) {
      if (e instanceof TokenizerError) throw e;
      throw new TokenizerError(`chat template failed to render: ${(e as Error).message}`);
    }
  }

  /** The chat as prompt token ids (rendered, then encoded without adding special tokens again). */
  encodeChat(messages: ChatMessage[], opts: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, opts), { addSpecialTokens: false });
  }
}

/** OpenAI content parts → one string (text parts only); other messages pass through unchanged. */
function normalizeMessage(m: ChatMessage, index: number): ChatMessage {
  if (!isObject(m) || typeof m.role !== 'string') throw new TokenizerError(`messages[${index}]: needs a string "role"`);
  if (!Array.isArray(m.content)) return m;
  const texts = m.content.map((part, j) => {
    if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') {
      throw new TokenizerError(`messages[${index}].content[${j}]: only text parts are supported (got type ${JSON.stringify(isObject(part) ? part.type : part)})`);
    }
    return part.text;
  });
  return { ...m, content: texts.join('') };
}

/** generation_config.json's eos_token_id (a number or a list), as the extra stop ids vLLM uses. */
function generationEosIds(dir: string): number[] {
  const file = join(dir, 'generation_config.json');
  if (!existsSync(file)) return [];
  const raw = readJsonFile(file);
  const eos = isObject(raw) ? raw.eos_token_id : undefined;
  if (eos === undefined || eos === null) return [];
  const list = Array.isArray(eos) ? eos : [eos];
  if (!list.every((v) => Number.isInteger(v) && (v as number) >= 0)) throw new TokenizerError(`${file}: eos_token_id must be a token id or a list of them`);
  return list as number[];
}
