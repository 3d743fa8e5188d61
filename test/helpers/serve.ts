/**
 * A `dsa serve` started in-process on an ephemeral port over a small random model, an OpenAI client
 * for it, and a /metrics reader: what the server tests share.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { writeTinyModel } from '../../src/cli/make-tiny.js';
import { writeRandomModel } from '../../src/model/random-model.js';
import { parseMetrics } from '../../src/serve/metrics.js';
import { startServer, type RunningServer, type ServeOptions } from '../../src/serve/server.js';
import { seededTokens } from './tokens.js';

export const API_KEY = 'sk-test-key';

export interface TestServer {
  server: RunningServer;
  client: OpenAI;
  dir: string;
  modelName: string;
  metrics(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

const SMALL = { num_hidden_layers: 2, index_topk: 16, max_position_embeddings: 1024 };

/** A random model (2 layers, small, no tokenizer) in a temporary directory. */
export function randomModelDir(name = 'tiny-serve'): { dir: string; cleanup: () => void } {
  const work = mkdtempSync(join(tmpdir(), 'dsa-serve-'));
  const dir = join(work, name);
  writeRandomModel(dir, { seed: 11, config: SMALL });
  return { dir, cleanup: () => rmSync(work, { recursive: true, force: true }) };
}

/** The same with a tokenizer and chat template (`dsa make-tiny`). */
export function tinyTextModelDir(name = 'tiny-chat'): { dir: string; cleanup: () => void } {
  const work = mkdtempSync(join(tmpdir(), 'dsa-serve-'));
  const dir = join(work, name);
  writeTinyModel(dir, { seed: 11, config: SMALL });
  return { dir, cleanup: () => rmSync(work, { recursive: true, force: true }) };
}

export async function startTestServer(dir: string, opts: Partial<ServeOptions> = {}): Promise<TestServer> {
  const server = await startServer({ model: dir, port: 0, apiKey: API_KEY, maxContext: 512, ...opts });
  const ctx = await server.ready;
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: API_KEY, maxRetries: 0 });
  return {
    server,
    client,
    dir,
    modelName: ctx.modelName,
    metrics: async () => parseMetrics(await (await fetch(`${server.url}/metrics`)).text()),
    close: () => server.close(),
  };
}

/** Polls /metrics until `ok` holds (or fails after `ms`). */
export async function waitForMetrics(t: TestServer, ok: (m: Map<string, number>) => boolean, ms = 5000): Promise<Map<string, number>> {
  const end = Date.now() + ms;
  for (;;) {
    const m = await t.metrics();
    if (ok(m)) return m;
    if (Date.now() > end) throw new Error(`metrics never settled: ${JSON.stringify(Object.fromEntries([...m].filter(([k]) => !k.includes('bucket'))))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Token ids of a seeded pseudo-random prompt. */
export function promptIds(n: number, seed: number, vocab = 512): number[] {
  return Array.from(seededTokens(n, seed, vocab));
}
