/**
 * GET /metrics: Prometheus text with a `dsa:` prefix (vLLM's names, its `vllm:` prefix replaced):
 * requests running and waiting, cache pages used/cached/total, prompt and generated tokens,
 * finished requests by reason, and histograms of time to first token, inter-token latency and
 * end-to-end latency. Gauges are read from the engine when scraped.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Engine } from '../engine/engine.js';

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];

export class ServeMetrics {
  readonly registry = new Registry();
  readonly promptTokens: Counter;
  readonly generationTokens: Counter;
  readonly requests: Counter<'finished_reason'>;
  readonly ttft: Histogram;
  readonly itl: Histogram;
  readonly e2e: Histogram;

  constructor(engine: () => Engine | null) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: (e: Engine) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const e = engine();
          this.set(e ? read(e) : 0);
        },
      });
    gauge('dsa:num_requests_running', 'Requests in the running batch.', (e) => e.stats().running);
    gauge('dsa:num_requests_waiting', 'Requests waiting for admission.', (e) => e.stats().waiting);
    gauge('dsa:cache_pages_used', 'KV cache pages (64 tokens each) held by requests.', (e) => e.stats().pagesUsed);
    gauge('dsa:cache_pages_cached', 'KV cache pages held only by the prefix cache (reclaimable).', (e) => e.stats().pagesCached);
    gauge('dsa:cache_pages_total', 'KV cache pages in all.', (e) => e.stats().pagesTotal);
    gauge('dsa:cache_usage_perc', 'Share of the KV cache held by requests (0..1).', (e) => {
      const s = e.stats();
      return s.pagesTotal > 0 ? s.pagesUsed / s.pagesTotal : 0;
    });
    new Counter({
      name: 'dsa:prefix_cache_hit_tokens_total',
      help: 'Prompt tokens served from the prefix cache.',
      registers,
      collect() {
        // The engine keeps the count; a scrape copies it.
        this.reset();
        this.inc(engine()?.stats().cachedPromptTokens ?? 0);
      },
    });
    this.promptTokens = new Counter({ name: 'dsa:prompt_tokens_total', help: 'Prompt tokens of admitted requests.', registers });
    this.generationTokens = new Counter({ name: 'dsa:generation_tokens_total', help: 'Generated tokens.', registers });
    this.requests = new Counter({ name: 'dsa:request_success_total', help: 'Finished requests by finish reason.', labelNames: ['finished_reason'], registers });
    this.ttft = new Histogram({ name: 'dsa:time_to_first_token_seconds', help: 'Time from arrival to the first generated token.', buckets: LATENCY_BUCKETS, registers });
    this.itl = new Histogram({ name: 'dsa:inter_token_latency_seconds', help: 'Time between consecutive generated tokens of a request.', buckets: LATENCY_BUCKETS, registers });
    this.e2e = new Histogram({ name: 'dsa:e2e_request_latency_seconds', help: 'Time from arrival to the last token.', buckets: [...LATENCY_BUCKETS, 160, 320], registers });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Parses Prometheus text into name{labels} → value (tests and the benchmark read /metrics with it). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
