/**
 * The DSA cache: per layer, the MLA latent of every token (c_kv and the roped k_rope: r + d_r
 * values, never per-head keys and values) in one of three formats ('f32', 'bf16', or FlashMLA's
 * 'fp8' layout: see LatentFormat), and the lightning indexer's FP8 keys with one float32 scale
 * each. Storage is a pool of fixed-size pages (64 tokens) shared by sequences; a sequence grows
 * page by page as tokens arrive, through its block table.
 */
import { latentDType, latentRowBytes, latentRowWidth, type Backend, type LatentFormat, type ScaleFormat, type SeqPages, type Tensor } from '../backend/backend.js';
import type { ModelConfig } from './config.js';

export const PAGE_SIZE = 64;

export class CacheFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CacheFullError';
  }
}

export interface LayerCache {
  /** The format of `latent` and `latentPrefill`. */
  format: LatentFormat;
  /**
   * c_kv (normalized) then k_rope (rotated), one row per slot in `format`: f32 or bf16
   * [slots, r + d_r], or u8 [slots, r + 4·r/128 + 2·d_r] for 'fp8'.
   */
  latent: Tensor;
  /**
   * Same format, only for FP8 kv_b_proj: c_kv as the reference's prefill sees it (act-quantized to
   * e4m3 and back, since its MHA path runs c_kv through the FP8 kv_b_proj), then k_rope.
   */
  latentPrefill: Tensor | null;
  /** How the indexer keys are stored: the reference's FP8, or re-quantized to int8 ('int8'). */
  indexFormat: IndexerFormat;
  /** u8 [slots, d_I]: e4m3 codes of the indexer key ('int8': its int8 bytes). */
  indexKeys: Tensor;
  /** f32 [slots, 1]: the indexer key's scale ('int8': × max|v| / 127 of its re-quantization). */
  indexScales: Tensor;
}

/**
 * The indexer key cache's formats: 'fp8', the reference (e4m3 codes and one scale per key); 'int8',
 * each FP8 key re-quantized to int8 when written, and the queries at each step, so the scan runs on
 * int8 tensor cores (Backend.requantInt8, indexerScoresInt8). Same 132 bytes per token at full
 * size; its top-2048 holds 98.4–99.6% of the FP8 one's (`dsa bench indexer-int8`, docs/webgpu.md).
 */
export type IndexerFormat = 'fp8' | 'int8';
export const INDEXER_FORMATS: readonly IndexerFormat[] = ['fp8', 'int8'];

export interface CacheOptions {
  /** Total tokens the pool holds (rounded up to whole pages). */
  capacity: number;
  /** Keep the prefill copy of the latent (needed when kv_b_proj is FP8). */
  prefillLatent: boolean;
  /** How the latent is stored (default 'f32', the reference numerics). 'fp8' needs r % 128 = 0. */
  latentFormat?: LatentFormat;
  /** How the indexer keys are stored (default 'fp8', the reference). 'int8' needs H_I % 16 = 0 and d_I % 32 = 0. */
  indexerFormat?: IndexerFormat;
}

/**
 * Whether a cache keeps a prefill copy of the latent. Only FP8 kv_b_proj makes the reference's prompt
 * path differ from its decode path (it act-quantizes c_kv in 128-blocks before kv_b_proj), and only
 * the 'f32' cache — the reference-numerics mode `dsa logits` uses — pays for reproducing that
 * exactly. The bf16 and fp8 caches hold one latent for both paths, so they cost what their layout
 * says (1152 or 656 bytes per token and layer at full size): bf16 rounding is itself a change of
 * that size, and an fp8 latent with ue8m0 scales already is the act-quantized c_kv.
 */
export function needsPrefillLatent(fp8KvB: boolean, format: LatentFormat): boolean {
  return fp8KvB && format === 'f32';
}

/** A pool of cache pages for every layer. */
export class KVCache {
  readonly pageSize = PAGE_SIZE;
  readonly numPages: number;
  readonly layers: LayerCache[];
  readonly latentFormat: LatentFormat;
  readonly indexerFormat: IndexerFormat;
  private readonly free: number[];
  private readonly refs: Int32Array;
  /** Called when no page is free; returns whether it freed one (see PrefixCache). */
  reclaim: (() => boolean) | null = null;

  constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
    opts: CacheOptions,
  ) {
    if (!(opts.capacity > 0)) throw new RangeError(`cache capacity must be positive, got ${opts.capacity}`);
    this.numPages = Math.ceil(opts.capacity / PAGE_SIZE);
    const slots = this.numPages * PAGE_SIZE;
    const format = (this.latentFormat = opts.latentFormat ?? 'f32');
    const row = latentRowWidth(format, config.kvLoraRank, config.qkRopeHeadDim);
    const dtype = latentDType(format);
    const indexFormat = (this.indexerFormat = opts.indexerFormat ?? 'fp8');
    if (!INDEXER_FORMATS.includes(indexFormat)) throw new RangeError(`indexer cache format must be one of ${INDEXER_FORMATS.join(', ')}, got ${String(indexFormat)}`);
    if (indexFormat === 'int8' && (config.indexNHeads % 16 || config.indexHeadDim % 32)) {
      throw new RangeError(`the int8 indexer cache needs index_n_heads a multiple of 16 and index_head_dim of 32 (this model: ${config.indexNHeads} heads of ${config.indexHeadDim})`);
    }
    this.layers = [];
    for (let l = 0; l < config.numLayers; l++) {
      this.layers.push({
        format,
        indexFormat,
        latent: backend.zeros([slots, row], dtype),
        latentPrefill: opts.prefillLatent ? backend.zeros([slots, row], dtype) : null,
        indexKeys: backend.zeros([slots, config.indexHeadDim], 'u8'),
        indexScales: backend.zeros([slots, 1], 'f32'),
      });
    }
    this.refs = new Int32Array(this.numPages);
    this.free = [];
    for (let p = this.numPages - 1; p >= 0; p--) this.free.push(p);
  }

  get freePages(): number {
    return this.free.length;
  }

  /** Pages held by at least one sequence (or by a prefix cache). */
  get usedPages(): number {
    return this.numPages - this.free.length;
  }

  /** Bytes per token and layer of what this cache stores (latent rows, their prefill copy if any, indexer key and scale). */
  bytesPerTokenLayer(): number {
    const c = this.config;
    const latent = latentRowBytes(this.latentFormat, c.kvLoraRank, c.qkRopeHeadDim);
    return latent * (this.layers[0]?.latentPrefill ? 2 : 1) + c.indexHeadDim + 4;
  }

  /** A free page, held once. When none is free, `reclaim` (a prefix cache's eviction) may free one. */
  allocatePage(): number {
    let p = this.free.pop();
    if (p === undefined && this.reclaim?.()) p = this.free.pop();
    if (p === undefined) {
      throw new CacheFullError(`the KV cache is full (${this.numPages} pages of ${PAGE_SIZE} tokens)`);
    }
    this.refs[p] = 1;
    return p;
  }

  /** One more holder of a page in use (pages are shared by sequences with a common prefix). */
  retain(page: number): void {
    if (!(this.refs[page]! > 0)) throw new RangeError(`page ${page} is not in use`);
    this.refs[page]!++;
  }

  /** How many hold the page (0 = free). */
  refCount(page: number): number {
    return this.refs[page]!;
  }

  /** Drops one hold of each page; a page nobody holds goes back to the pool. */
  releasePages(pages: readonly number[]): void {
    for (const p of pages) {
      if (!(this.refs[p]! > 0)) throw new RangeError(`page ${p} released more often than held`);
      if (--this.refs[p]! === 0) this.free.push(p);
    }
  }

  newSequence(): Sequence {
    return new Sequence(this);
  }
}

/** One sequence's view of the cache: its length and its pages. */
export class Sequence {
  /** Tokens whose cache entries have been written. */
  length = 0;
  private readonly pageList: number[] = [];
  private uploaded: SeqPages | null = null;

  constructor(readonly cache: KVCache) {}

  /**
   * Starts this (empty) sequence on pages that hold the cache entries of a shared prefix: full
   * pages another sequence wrote for the same tokens at the same positions. They are held, never
   * written: the sequence's own entries go to pages after them.
   */
  adopt(pages: readonly number[]): void {
    if (this.length !== 0 || this.pageList.length !== 0) throw new RangeError('adopt: the sequence is not empty');
    for (const p of pages) this.cache.retain(p);
    this.pageList.push(...pages);
    this.length = pages.length * PAGE_SIZE;
    this.uploaded = null;
  }

  /** The page ids of the block table. */
  get pageIds(): readonly number[] {
    return this.pageList;
  }

  /** Makes room for positions up to (excluding) `end`. */
  reserve(end: number): void {
    while (this.pageList.length * PAGE_SIZE < end) {
      this.pageList.push(this.cache.allocatePage());
      this.uploaded = null;
    }
  }

  /** The block table on the backend (re-uploaded when pages were added). */
  pages(): SeqPages {
    if (!this.uploaded) {
      const table = this.cache.backend.upload(Int32Array.from(this.pageList), [this.pageList.length]);
      this.uploaded = { blockTable: table, pageSize: PAGE_SIZE };
    }
    return this.uploaded;
  }

  /** Returns this sequence's pages to the pool. */
  release(): void {
    this.cache.releasePages(this.pageList.splice(0));
    this.length = 0;
    this.uploaded = null;
  }
}
