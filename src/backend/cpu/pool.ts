/**
 * A persistent pool of worker threads running the WASM kernels on the CPU backend's shared memory.
 * The calling thread is thread 0 and works too; the others wait on a SharedArrayBuffer with
 * Atomics. A call is synchronous: it returns when every thread has finished its part (a round trip
 * costs tens of microseconds, far below any kernel worth splitting).
 */
import { Worker } from 'node:worker_threads';

/** Float64 slots per thread for one call: function index, argument count, arguments. */
const SLOT = 64;
const IDLE = 0;
const RUN = 1;
const STOP = 2;
const FAILED = 3;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { memory, module, ctrl, jobs, index, names, slot } = workerData;
const abort = () => { throw new Error('wasm abort'); };
const ex = new WebAssembly.Instance(module, { env: { memory, abort } }).exports;
const flags = new Int32Array(ctrl);
const job = new Float64Array(jobs, index * slot * 8, slot);
function loop() {
  for (;;) {
    Atomics.wait(flags, index, ${IDLE});
    const state = Atomics.load(flags, index);
    if (state === ${STOP}) return;
    if (state !== ${RUN}) continue;
    let done = ${IDLE};
    try {
      const n = job[1];
      const args = new Array(n);
      for (let i = 0; i < n; i++) args[i] = job[2 + i];
      ex[names[job[0]]](...args);
    } catch (e) {
      done = ${FAILED};
    }
    Atomics.store(flags, index, done);
    Atomics.notify(flags, index);
  }
}
loop();
`;

export class KernelPool {
  readonly threads: number;
  private readonly workers: Worker[] = [];
  private readonly flags: Int32Array;
  private readonly jobs: Float64Array;
  private readonly index = new Map<string, number>();
  private closed = false;

  /**
   * @param main the calling thread's own instance of the kernels
   * @param threads total threads including the calling one
   */
  constructor(
    readonly memory: WebAssembly.Memory,
    module: WebAssembly.Module,
    private readonly main: Record<string, unknown>,
    threads: number,
  ) {
    this.threads = Math.max(1, Math.floor(threads));
    const names = Object.keys(main).filter((k) => typeof main[k] === 'function');
    names.forEach((n, i) => this.index.set(n, i));
    const ctrl = new SharedArrayBuffer(4 * this.threads);
    const jobs = new SharedArrayBuffer(8 * SLOT * this.threads);
    this.flags = new Int32Array(ctrl);
    this.jobs = new Float64Array(jobs);
    for (let i = 1; i < this.threads; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: { memory, module, ctrl, jobs, index: i, names, slot: SLOT } });
      w.unref();
      this.workers.push(w);
    }
  }

  /**
   * Runs kernel `fn` on every thread i with the arguments argsOf(i) (null: thread i sits this one
   * out), the calling thread included, and waits for all.
   */
  runAll(fn: string, argsOf: (i: number) => readonly number[] | null): void {
    if (this.closed) throw new Error('kernel pool is closed');
    const id = this.index.get(fn);
    const f = this.main[fn] as ((...a: number[]) => unknown) | undefined;
    if (id === undefined || !f) throw new Error(`unknown kernel ${fn}`);
    const started: number[] = [];
    for (let i = 1; i < this.threads; i++) {
      const args = argsOf(i);
      if (!args) continue;
      if (args.length > SLOT - 2) throw new Error(`kernel ${fn}: too many arguments`);
      const job = this.jobs.subarray(i * SLOT, (i + 1) * SLOT);
      job[0] = id;
      job[1] = args.length;
      job.set(args, 2);
      Atomics.store(this.flags, i, RUN);
      Atomics.notify(this.flags, i);
      started.push(i);
    }
    const own = argsOf(0);
    let error: unknown = null;
    try {
      if (own) f(...own);
    } catch (e) {
      error = e;
    }
    let failed = -1;
    for (const i of started) {
      while (Atomics.load(this.flags, i) === RUN) Atomics.wait(this.flags, i, RUN);
      if (Atomics.load(this.flags, i) === FAILED) {
        failed = i;
        Atomics.store(this.flags, i, IDLE);
      }
    }
    if (error) throw error;
    if (failed >= 0) throw new Error(`kernel ${fn} failed on worker thread ${failed}`);
  }

  /**
   * Splits [begin, end) into one contiguous part per thread (part boundaries multiples of `grain`
   * from begin) and runs fn(...args, partBegin, partEnd) on each.
   */
  split(fn: string, args: readonly number[], begin: number, end: number, grain = 1): void {
    const parts = this.parts(begin, end, grain);
    this.runAll(fn, (i) => (parts[i] ? [...args, parts[i]![0], parts[i]![1]] : null));
  }

  /** The contiguous ranges `split` would use. */
  parts(begin: number, end: number, grain = 1): Array<[number, number]> {
    const n = end - begin;
    const units = Math.ceil(n / grain);
    const use = Math.min(this.threads, units);
    const out: Array<[number, number]> = [];
    let at = begin;
    for (let i = 0; i < use; i++) {
      const take = Math.floor(units / use) + (i < units % use ? 1 : 0);
      const stop = Math.min(end, at + take * grain);
      out.push([at, stop]);
      at = stop;
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (let i = 1; i < this.threads; i++) {
      Atomics.store(this.flags, i, STOP);
      Atomics.notify(this.flags, i);
    }
    for (const w of this.workers) void w.terminate();
  }
}
