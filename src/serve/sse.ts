/**
 * Server-sent events for a streaming completion: one `data: {chunk}` event per delta of any of the
 * request's choices (interleaved as they come), then each choice's final chunk, an optional usage
 * chunk, and `data: [DONE]`. While nothing has been sent for a while (a long prefill), a
 * `: keep-alive` comment goes out instead. A client that goes away cancels every choice.
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { ApiError, serverError } from './errors.js';
import type { Delta, Generation } from './generation.js';

export interface StreamShape {
  /** Sent for each choice before its deltas (chat: the assistant role). */
  first?(index: number): Record<string, unknown>;
  /** The chunk for a delta of choice `index` (finish null), or its final chunk; null skips the delta. */
  chunk(index: number, delta: Delta | null, finish: 'stop' | 'length' | null): Record<string, unknown> | null;
  /** The usage chunk, when stream_options.include_usage asked for it. */
  usage: (() => Record<string, unknown>) | null;
}

/** The deltas of several generations as they come: {index, delta}, and {index, delta: null} when one ends. */
async function* merged(gens: readonly Generation[]): AsyncGenerator<{ index: number; delta: Delta | null }> {
  const its = gens.map((g) => g.deltas());
  const pending = new Map<number, Promise<{ index: number; r: IteratorResult<Delta> }>>();
  const pull = (index: number) => pending.set(index, its[index]!.next().then((r) => ({ index, r })));
  gens.forEach((_, i) => pull(i));
  while (pending.size > 0) {
    const { index, r } = await Promise.race(pending.values());
    if (r.done) {
      pending.delete(index);
      yield { index, delta: null };
    } else {
      pull(index);
      yield { index, delta: r.value };
    }
  }
}

export function streamChoices(c: Context, keepAliveMs: number, gens: readonly Generation[], shape: StreamShape): Response {
  const cancelAll = () => gens.forEach((g) => g.cancel());
  return streamSSE(c, async (stream) => {
    stream.onAbort(cancelAll);
    let last = Date.now();
    const send = async (obj: unknown) => {
      last = Date.now();
      await stream.writeSSE({ data: typeof obj === 'string' ? obj : JSON.stringify(obj) });
    };
    const timer = setInterval(() => {
      if (Date.now() - last < keepAliveMs || stream.aborted || stream.closed) return;
      last = Date.now();
      void stream.write(': keep-alive\n\n');
    }, Math.max(10, keepAliveMs / 2));
    // With include_usage, every chunk but the last carries "usage": null (OpenAI's shape).
    const withUsage = (o: Record<string, unknown>) => (shape.usage ? { ...o, usage: null } : o);
    try {
      if (shape.first) for (let i = 0; i < gens.length; i++) await send(withUsage(shape.first(i)));
      for await (const { index, delta } of merged(gens)) {
        const gen = gens[index]!;
        if (delta === null && gen.finishReason === 'abort') return; // the client went away
        const chunk = shape.chunk(index, delta, delta === null ? gen.apiFinishReason() : null);
        if (chunk) await send(withUsage(chunk));
      }
      if (shape.usage) await send(shape.usage());
      await send('[DONE]');
    } catch (e) {
      cancelAll();
      const err = e instanceof ApiError ? e : serverError((e as Error).message);
      if (!stream.aborted) await send(err.body());
    } finally {
      clearInterval(timer);
    }
  });
}
