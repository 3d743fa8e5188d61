/**
 * The CPU backend's tensor memory: one shared WebAssembly.Memory, so the WASM kernels on the main
 * thread and on every worker of the pool see the same bytes. A first-fit allocator with coalescing
 * hands out 64-byte-aligned blocks; memory grows in 64 KiB pages up to 4 GiB (wasm32).
 */

export const ALIGN = 64;
const PAGE = 65536;

export class HeapFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HeapFullError';
  }
}

export class Heap {
  readonly memory: WebAssembly.Memory;
  /** Free blocks [begin, size], sorted by begin. */
  private readonly freeList: Array<[number, number]> = [];
  private readonly sizes = new Map<number, number>();
  /** End of the highest block ever handed out. */
  private top: number;
  private used = 0;

  /**
   * @param base bytes at the start reserved for the kernels module (static data)
   * @param maxBytes upper bound of the memory (≤ 4 GiB)
   */
  constructor(
    readonly base: number,
    readonly maxBytes = 4 * 2 ** 30,
  ) {
    const maximum = Math.floor(Math.min(maxBytes, 4 * 2 ** 30) / PAGE);
    this.memory = new WebAssembly.Memory({ initial: Math.ceil((base + PAGE) / PAGE), maximum, shared: true });
    this.top = Math.ceil(base / ALIGN) * ALIGN;
  }

  get usedBytes(): number {
    return this.used;
  }

  get capacityBytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** A 64-byte-aligned block of at least `bytes` bytes; throws HeapFullError beyond maxBytes. */
  alloc(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.freeList.length; i++) {
      const [begin, free] = this.freeList[i]!;
      if (free < size) continue;
      if (free === size) this.freeList.splice(i, 1);
      else this.freeList[i] = [begin + size, free - size];
      return this.hand(begin, size);
    }
    const begin = this.top;
    const end = begin + size;
    if (end > this.maxBytes) {
      throw new HeapFullError(`CPU backend memory exhausted: ${size} more bytes needed, ${this.used} in use of ${this.maxBytes}`);
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    return this.hand(begin, size);
  }

  private hand(begin: number, size: number): number {
    this.sizes.set(begin, size);
    this.used += size;
    return begin;
  }

  /** Returns a block to the free list, merging it with free neighbours. */
  release(ptr: number): void {
    const size = this.sizes.get(ptr);
    if (size === undefined) throw new Error(`heap: release of unknown block ${ptr}`);
    this.sizes.delete(ptr);
    this.used -= size;
    let lo = 0;
    let hi = this.freeList.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.freeList[mid]![0] < ptr) lo = mid + 1;
      else hi = mid;
    }
    let begin = ptr;
    let len = size;
    const next = this.freeList[lo];
    if (next && next[0] === begin + len) {
      len += next[1];
      this.freeList.splice(lo, 1);
    }
    const prev = this.freeList[lo - 1];
    if (prev && prev[0] + prev[1] === begin) {
      prev[1] += len;
      begin = prev[0];
      len = prev[1];
    } else {
      this.freeList.splice(lo, 0, [begin, len]);
    }
    // Give the tail back to the bump pointer.
    const last = this.freeList[this.freeList.length - 1];
    if (last && last[0] + last[1] === this.top) {
      this.top = last[0];
      this.freeList.pop();
    }
  }
}
