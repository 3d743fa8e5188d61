/** `dsa serve`: the OpenAI-compatible server (src/serve/) on a model directory, until SIGINT/SIGTERM. */
import { Command } from 'commander';
import type { LatentFormat } from '../backend/backend.js';
import type { IndexerFormat } from '../model/cache.js';
import { CACHE_HELP, INDEXER_CACHE_HELP, indexerCacheArg, intArg, latentCacheArg } from './args.js';
import { BACKENDS } from '../backend/registry.js';
import { startServer } from '../serve/server.js';
import { io } from './io.js';

interface ServeCliOptions {
  model: string;
  host: string;
  port: number;
  apiKey?: string;
  servedModelName?: string;
  backend: string;
  maxBatch: number;
  maxContext?: number;
  maxWaiting: number;
  cacheTokens?: number;
  maxStepTokens: number;
  cache: LatentFormat;
  indexerCache: IndexerFormat;
  prefixCaching: boolean;
  batchInvariant: boolean;
}

export function addServe(program: Command): void {
  program
    .command('serve')
    .description('serve a model over the OpenAI API (chat and completions, SSE streaming, continuous batching)')
    .requiredOption('--model <dir>', 'model directory (config.json + safetensors; tokenizer.json for text)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free port)', intArg('--port', 0), 8000)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" (default: $DSA_API_KEY, else open)')
    .option('--served-model-name <name>', "the model's name in requests (default: the directory's name)")
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, 'cpu')
    .option('--max-batch <n>', 'requests running at once', intArg('--max-batch', 1), 16)
    .option('--max-context <n>', "longest prompt + generation (default: the model's max_position_embeddings)", intArg('--max-context', 2))
    .option('--max-waiting <n>', 'requests queued before new ones get 429', intArg('--max-waiting', 1), 256)
    .option('--cache-tokens <n>', 'KV cache size in tokens, which bounds its memory (default: max batch × max context, at most 131072 unless max context is larger)', intArg('--cache-tokens', 64))
    .option('--max-step-tokens <n>', 'tokens per engine step (prompt chunks fill what decoding leaves)', intArg('--max-step-tokens', 1), 256)
    .option('--cache <format>', CACHE_HELP, latentCacheArg, 'bf16')
    .option('--indexer-cache <format>', INDEXER_CACHE_HELP, indexerCacheArg, 'fp8')
    .option('--no-prefix-caching', 'do not share cache pages between prompts with a common prefix')
    .option('--no-batch-invariant', 'faster single-sequence CPU kernels whose last bits depend on batching')
    .action(async (o: ServeCliOptions) => {
      const log = (line: string) => io().err(`${line}\n`);
      const server = await startServer({
        model: o.model,
        host: o.host,
        port: o.port,
        apiKey: o.apiKey ?? process.env.DSA_API_KEY,
        servedModelName: o.servedModelName,
        backend: o.backend,
        batchInvariant: o.batchInvariant,
        maxBatch: o.maxBatch,
        maxContext: o.maxContext,
        maxWaiting: o.maxWaiting,
        cacheTokens: o.cacheTokens,
        maxStepTokens: o.maxStepTokens,
        latentFormat: o.cache,
        indexerFormat: o.indexerCache,
        prefixCaching: o.prefixCaching,
        log,
      });
      log(`listening on ${server.url} (loading ${o.model})`);
      try {
        const ctx = await server.ready;
        log(`ready: model '${ctx.modelName}' at ${server.url}/v1`);
      } catch (e) {
        await server.close();
        throw e;
      }
      await new Promise<void>((resolve) => {
        const stop = () => {
          log('shutting down');
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await server.close();
    });
}
