/**
 * Prefix reuse across requests (vLLM's automatic prefix caching): every full cache page is named by
 * a hash of all tokens up to its end (the previous page's hash and its own 64 tokens), so two
 * requests whose prompts start with the same tokens find the same pages. The cache holds one
 * reference to each page it names; a page nobody else holds stays cached until the pool needs it
 * back, then the least recently used one is evicted. Only full pages are shared, and they are never
 * written again, so sharing needs no copy-on-write: a request recomputes its partial last page.
 */
import { createHash } from 'node:crypto';
import { PAGE_SIZE, type KVCache } from '../model/cache.js';

export class PrefixCache {
  /** hash → page, in least-recently-used order (a hit moves the entry to the end). */
  private readonly pages = new Map<string, number>();
  private readonly named = new Set<number>();

  constructor(readonly cache: KVCache) {
    cache.reclaim = () => this.evictOne();
  }

  /** The chained hashes of the first `fullPages` pages of `tokens` (the first `previous.length` already known). */
  static pageHashes(tokens: ArrayLike<number>, fullPages: number, previous: readonly string[] = []): string[] {
    const out = previous.slice(0, fullPages);
    for (let i = out.length; i < fullPages; i++) {
      const block = Int32Array.from({ length: PAGE_SIZE }, (_, j) => tokens[i * PAGE_SIZE + j]!);
      const h = createHash('sha256');
      h.update(i === 0 ? '' : out[i - 1]!);
      h.update(new Uint8Array(block.buffer));
      out.push(h.digest('base64'));
    }
    return out;
  }

  /** The pages of the longest cached run of `hashes` from the first (each counts as a recent use). */
  match(hashes: readonly string[]): number[] {
    const out: number[] = [];
    for (const h of hashes) {
      const p = this.pages.get(h);
      if (p === undefined) break;
      this.pages.delete(h);
      this.pages.set(h, p);
      out.push(p);
    }
    return out;
  }

  /** Names a full page just written (no-op when the hash or the page is already named). */
  insert(hash: string, page: number): void {
    if (this.pages.has(hash) || this.named.has(page)) return;
    this.cache.retain(page);
    this.pages.set(hash, page);
    this.named.add(page);
  }

  /** Pages only this cache holds: free for the asking. */
  reclaimable(): number {
    let n = 0;
    for (const p of this.named) if (this.cache.refCount(p) === 1) n++;
    return n;
  }

  /** Named pages (whether or not a request holds them too). */
  get size(): number {
    return this.pages.size;
  }

  /** Evicts the least recently used page nobody else holds; false when there is none. */
  evictOne(): boolean {
    for (const [h, p] of this.pages) {
      if (this.cache.refCount(p) !== 1) continue;
      this.pages.delete(h);
      this.named.delete(p);
      this.cache.releasePages([p]);
      return true;
    }
    return false;
  }

  /** Drops every entry (pages held by requests stay theirs). */
  clear(): void {
    const held = [...this.named];
    this.pages.clear();
    this.named.clear();
    this.cache.releasePages(held);
  }
}
