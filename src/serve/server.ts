/**
 * `dsa serve` as a function: listen at once (health answers 503 while loading), load the model,
 * its tokenizer (if the directory has one) and the engine, then serve. Used by the CLI, the tests
 * (in-process on an ephemeral port) and the benchmark.
 */
import { basename, resolve } from 'node:path';
import type { Server } from 'node:http';
import { serve as listen } from '@hono/node-server';
import type { Backend, LatentFormat } from '../backend/backend.js';
import type { IndexerFormat } from '../model/cache.js';
import { CpuBackend } from '../backend/cpu.js';
import { createBackend } from '../backend/registry.js';
import { Engine } from '../engine/engine.js';
import { Model } from '../model/model.js';
import { TextTokenizer } from '../text/tokenizer.js';
import { createApp } from './app.js';
import { ServeMetrics } from './metrics.js';
import type { ServeContext } from './openai.js';

export interface ServeOptions {
  model: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  apiKey?: string;
  /** Name clients use in `model` (default: the directory's name). */
  servedModelName?: string;
  /** 'cpu' (default), 'webgpu', 'auto', or a backend (or one still being created). */
  backend?: string | Backend | Promise<Backend>;
  /** CPU kernels whose numbers do not depend on batching (default true): see CpuOptions. */
  batchInvariant?: boolean;
  maxBatch?: number;
  maxContext?: number;
  maxWaiting?: number;
  cacheTokens?: number;
  maxStepTokens?: number;
  latentFormat?: LatentFormat;
  /** The indexer key cache format (default 'fp8', the reference). */
  indexerFormat?: IndexerFormat;
  prefixCaching?: boolean;
  /** Idle stream time before a keep-alive comment (default 5000 ms). */
  keepAliveMs?: number;
  maxBodyBytes?: number;
  /** Progress and notes (stderr in the CLI). */
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  /** Resolves when the model is loaded (rejects when loading failed; the server then answers 503). */
  ready: Promise<ServeContext>;
  close(): Promise<void>;
}

async function openBackend(o: ServeOptions): Promise<Backend> {
  if (typeof o.backend === 'object') return await o.backend;
  const name = o.backend ?? 'cpu';
  if (name === 'cpu') return new CpuBackend({ batchInvariant: o.batchInvariant ?? true });
  return createBackend(name);
}

/** Loads the model, tokenizer and engine. */
async function load(o: ServeOptions, metrics: ServeMetrics): Promise<ServeContext> {
  const dir = resolve(o.model);
  const started = performance.now();
  const backend = await openBackend(o);
  const model = await Model.loadAsync(dir, backend);
  const tokenizer = TextTokenizer.load(dir);
  const engine = new Engine(model, {
    maxBatch: o.maxBatch,
    maxContext: o.maxContext ?? model.config.maxPositionEmbeddings,
    maxWaiting: o.maxWaiting,
    cacheTokens: o.cacheTokens,
    maxStepTokens: o.maxStepTokens,
    latentFormat: o.latentFormat,
    indexerFormat: o.indexerFormat,
    prefixCaching: o.prefixCaching,
  });
  const log = o.log ?? (() => {});
  log(`loaded ${dir} on ${backend.name} in ${((performance.now() - started) / 1000).toFixed(2)} s; ${tokenizer ? 'tokenizer.json found' : 'no tokenizer.json: token-id completions only'}`);
  log(
    `engine: max batch ${engine.maxBatch}, max context ${engine.maxContext}, cache ${engine.cache.numPages} pages × 64 tokens (${(engine.cacheBytes / 2 ** 20).toFixed(1)} MiB, ${engine.cache.latentFormat} latent, ${engine.cache.indexerFormat} indexer keys)`,
  );
  const eos = model.config.eosTokenId;
  return {
    engine,
    tokenizer,
    metrics,
    modelName: o.servedModelName ?? basename(dir),
    modelDir: dir,
    eosTokenIds: eos === null ? [] : [eos],
    keepAliveMs: o.keepAliveMs ?? 5000,
  };
}

export async function startServer(o: ServeOptions): Promise<RunningServer> {
  let context: ServeContext | null = null;
  let loadError: Error | null = null;
  const metrics = new ServeMetrics(() => context?.engine ?? null);
  const app = createApp({ apiKey: o.apiKey, maxBodyBytes: o.maxBodyBytes, metrics, context: () => context, loadError: () => loadError });
  const host = o.host ?? '127.0.0.1';
  const server = await new Promise<Server>((ok, fail) => {
    const s = listen({ fetch: app.fetch, port: o.port ?? 8000, hostname: host }, () => ok(s as Server)) as Server;
    s.once('error', fail);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (o.port ?? 8000);
  const ready = new Promise<void>((r) => setImmediate(r)).then(() => load(o, metrics));
  ready.then(
    (ctx) => (context = ctx),
    (e: Error) => {
      loadError = e;
      o.log?.(`loading failed: ${e.message}`);
    },
  );
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    ready,
    async close() {
      await ready.catch(() => {});
      const ctx = context;
      context = null;
      loadError = new Error('the server is shutting down');
      if (ctx) {
        await ctx.engine.close();
        const b = ctx.engine.model.backend;
        if (b instanceof CpuBackend && typeof o.backend !== 'object') b.close();
      }
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    },
  };
}
