/**
 * The scheduler's two decisions per engine step (continuous batching):
 * - admission: waiting requests enter, first come first served, while the batch has room and the
 *   cache has the pages they may need (prompt + max tokens, less the pages a shared prefix already
 *   holds). Reserving the worst case up front means a running request never runs out of pages,
 *   so nothing is ever preempted or recomputed; a request that does not fit yet waits.
 * - the step: one decode token for every running request past its prompt, then prompt chunks of
 *   the others (oldest first) up to the step's token budget.
 */
import { PAGE_SIZE, type KVCache } from '../model/cache.js';
import { PrefixCache } from './prefix-cache.js';
import type { EngineRequest } from './request.js';

export interface SchedulerLimits {
  /** Requests running at once. */
  maxBatch: number;
  /** Tokens per engine step (decode tokens count one each; prompt chunks fill the rest). */
  maxStepTokens: number;
}

/** One request's part of a step. */
export interface StepItem {
  req: EngineRequest;
  tokens: Int32Array;
  mode: 'prefill' | 'decode';
  /** Whether the step's last row of this request yields its next token. */
  sample: boolean;
}

/** Pages a request needs for its prompt plus every token it may generate. */
export function pagesFor(promptLength: number, maxTokens: number): number {
  return Math.ceil((promptLength + maxTokens) / PAGE_SIZE);
}

export class Scheduler {
  constructor(
    readonly cache: KVCache,
    readonly prefix: PrefixCache | null,
    readonly limits: SchedulerLimits,
  ) {}

  /** Pages that can still be promised: free or only cached, less what running requests may claim. */
  availablePages(running: readonly EngineRequest[]): number {
    let outstanding = 0;
    for (const r of running) outstanding += r.outstandingPages;
    return this.cache.freePages + (this.prefix?.reclaimable() ?? 0) - outstanding;
  }

  /** Moves requests from `waiting` to `running` while they fit; returns those admitted. */
  admit(waiting: EngineRequest[], running: EngineRequest[]): EngineRequest[] {
    const admitted: EngineRequest[] = [];
    while (waiting.length > 0 && running.length < this.limits.maxBatch) {
      const req = waiting[0]!;
      const seq = this.cache.newSequence();
      // Only full pages before the prompt's last token are shared: that token is always computed
      // (its logits give the first new token), and its page is the request's own.
      const sharable = Math.floor((req.promptLength - 1) / PAGE_SIZE);
      const hashes = this.prefix && sharable > 0 ? PrefixCache.pageHashes(req.tokens, sharable) : [];
      const shared = this.prefix ? this.prefix.match(hashes) : [];
      seq.adopt(shared);
      const need = pagesFor(req.promptLength, req.params.maxTokens) - shared.length;
      if (need > this.availablePages(running)) {
        seq.release();
        break;
      }
      req.seq = seq;
      req.sharedPages = shared.length;
      req.cachedTokens = shared.length * PAGE_SIZE;
      req.reservedPages = need;
      req.pageHashes = hashes.slice(0, shared.length);
      req.state = 'running';
      running.push(waiting.shift()!);
      admitted.push(req);
    }
    return admitted;
  }

  /** The next step's work: decode tokens first, then prompt chunks within the token budget. */
  plan(running: readonly EngineRequest[]): StepItem[] {
    const items: StepItem[] = [];
    let budget = this.limits.maxStepTokens;
    for (const req of running) {
      if (req.prefilling || req.generated.length === 0) continue;
      items.push({ req, tokens: Int32Array.of(req.generated[req.generated.length - 1]!), mode: 'decode', sample: true });
      budget--;
    }
    for (const req of running) {
      if (!req.prefilling || budget <= 0) continue;
      const start = req.seq!.length;
      const n = Math.min(req.promptLength - start, budget);
      items.push({ req, tokens: req.params.prompt.subarray(start, start + n), mode: 'prefill', sample: start + n === req.promptLength });
      budget -= n;
    }
    return items;
  }
}
