/**
 * A timing wrapper around any Backend: `new TimingBackend(inner).backend` behaves exactly like
 * `inner` and accumulates the wall time of every operation by op name, so a benchmark can say
 * where a step's time goes without changing the model code. It wraps whatever methods the backend
 * has (a Proxy), so ops added to the interface later are timed too.
 *
 * The CPU backend runs each op synchronously inside the call, so performance.now() around the call
 * is the op's exact cost. A GPU backend only queues work in the call: wrapped this way it would show
 * dispatch time, and must report its own timestamp-query times per op instead.
 *
 * `scope` and `dispose` are passed through untimed (the ops inside a scope are timed one by one);
 * an op returning a promise (`read`) is timed until the promise settles.
 */
import type { Backend } from '../backend/backend.js';

/** Per op name: total milliseconds and number of calls since the last reset. */
export type OpTimes = Map<string, { ms: number; calls: number }>;

/** The breakdown categories of an attention step. */
export type Category = 'indexer' | 'topk' | 'attention' | 'projections';

export const CATEGORIES: readonly Category[] = ['indexer', 'topk', 'attention', 'projections'];

/**
 * Op → category: the indexer's key scan, the top-k, the MLA attention kernel; every other op
 * (linears, norms, RoPE, Hadamard, FP8 quantization, head matmuls, cache writes, …) is projections.
 */
export function categoryOf(op: string): Category {
  if (op === 'indexerScores' || op === 'indexerScoresInt8') return 'indexer';
  if (op === 'topk') return 'topk';
  if (op === 'mlaAttention') return 'attention';
  return 'projections';
}

/** Sums op times into categories (every category present, 0 when unused). */
export function byCategory(times: OpTimes): Record<Category, number> {
  const out: Record<Category, number> = { indexer: 0, topk: 0, attention: 0, projections: 0 };
  for (const [op, t] of times) out[categoryOf(op)] += t.ms;
  return out;
}

const UNTIMED = new Set<PropertyKey>(['scope', 'dispose']);

export class TimingBackend {
  /** The wrapped backend: pass it to model code in place of the inner one. */
  readonly backend: Backend;
  private times: OpTimes = new Map();

  /**
   * @param onOp called with the op's name before each timed call: a GPU backend labels the op's
   *   dispatches with it, so its timestamp queries give the GPU's own time per op.
   */
  constructor(
    readonly inner: Backend,
    private readonly onOp?: (op: string) => void,
  ) {
    const wrapped = new Map<PropertyKey, unknown>();
    this.backend = new Proxy(inner, {
      get: (target, prop) => {
        if (prop === 'name') return `${target.name}+timing`;
        const value = Reflect.get(target, prop, target) as unknown;
        if (typeof value !== 'function') return value;
        if (UNTIMED.has(prop) || typeof prop !== 'string') return value.bind(target);
        let fn = wrapped.get(prop);
        if (!fn) {
          fn = this.timed(prop, value.bind(target) as (...args: unknown[]) => unknown);
          wrapped.set(prop, fn);
        }
        return fn;
      },
    });
  }

  /** The times accumulated since the last reset (a copy). */
  snapshot(): OpTimes {
    return new Map([...this.times].map(([k, v]) => [k, { ...v }]));
  }

  reset(): void {
    this.times = new Map();
  }

  /** Milliseconds of all ops since the last reset. */
  totalMs(): number {
    let s = 0;
    for (const t of this.times.values()) s += t.ms;
    return s;
  }

  private record(op: string, ms: number): void {
    const e = this.times.get(op);
    if (e) {
      e.ms += ms;
      e.calls++;
    } else {
      this.times.set(op, { ms, calls: 1 });
    }
  }

  private timed(op: string, fn: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
    return (...args: unknown[]) => {
      this.onOp?.(op);
      const t0 = performance.now();
      let result: unknown;
      try {
        result = fn(...args);
      } catch (e) {
        this.record(op, performance.now() - t0);
        throw e;
      }
      if (result instanceof Promise) {
        return result.finally(() => this.record(op, performance.now() - t0));
      }
      this.record(op, performance.now() - t0);
      return result;
    };
  }
}
