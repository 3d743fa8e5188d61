/**
 * Option parsers the commands share: integers and numbers with a lower bound, and the cache format
 * options of every command that builds a KV cache — --cache (the MLA latent) and --indexer-cache
 * (the lightning indexer's keys). Each throws commander's InvalidArgumentError naming the option.
 */
import { InvalidArgumentError } from 'commander';
import { LATENT_FORMATS, type LatentFormat } from '../backend/backend.js';
import { INDEXER_FORMATS, type IndexerFormat } from '../model/cache.js';

export function intArg(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    return n;
  };
}

export function numArg(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number ≥ ${min}`);
    return n;
  };
}

export const CACHE_HELP = 'MLA latent cache format: f32 (reference numerics), bf16, or fp8 (FlashMLA layout: e4m3 c_kv, power-of-two scales, bf16 k_rope)';

export const INDEXER_CACHE_HELP =
  'indexer key cache format: fp8 (the reference) or int8 (keys and queries re-quantized to int8 for int8 tensor cores; top-k agrees with fp8 on ~99% of keys)';

export function latentCacheArg(value: string): LatentFormat {
  if (!(LATENT_FORMATS as readonly string[]).includes(value)) throw new InvalidArgumentError(`--cache must be one of ${LATENT_FORMATS.join(', ')}`);
  return value as LatentFormat;
}

export function indexerCacheArg(value: string): IndexerFormat {
  if (!(INDEXER_FORMATS as readonly string[]).includes(value)) throw new InvalidArgumentError(`--indexer-cache must be one of ${INDEXER_FORMATS.join(', ')}`);
  return value as IndexerFormat;
}
