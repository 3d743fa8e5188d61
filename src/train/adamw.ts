/**
 * AdamW (Loshchilov & Hutter): Adam moments with bias correction and weight decay decoupled from
 * the gradient (p ← p − lr·wd·p, applied only to matrices). State: first and second moments per
 * parameter (float32) and the step count, all saved with a checkpoint.
 */
export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

export class AdamW {
  readonly m = new Map<string, Float32Array>();
  readonly v = new Map<string, Float32Array>();
  /** Updates applied so far (bias correction uses it). */
  t = 0;

  constructor(readonly opts: AdamWOptions = ADAMW_DEFAULTS) {}

  /** One update of every parameter in `grads` (name → gradient) at learning rate lr; `decay(name)` says whether it is decayed. */
  step(params: Map<string, Float32Array>, grads: Map<string, Float32Array>, lr: number, decay: (name: string) => boolean): void {
    this.t++;
    const { beta1: b1, beta2: b2, eps, weightDecay } = this.opts;
    const c1 = 1 - Math.pow(b1, this.t);
    const c2 = 1 - Math.pow(b2, this.t);
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (!p || p.length !== g.length) throw new RangeError(`AdamW: no parameter '${name}' of ${g.length} values`);
      let m = this.m.get(name);
      let v = this.v.get(name);
      if (!m || !v) {
        m = new Float32Array(p.length);
        v = new Float32Array(p.length);
        this.m.set(name, m);
        this.v.set(name, v);
      }
      const wd = decay(name) ? lr * weightDecay : 0;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]!;
        m[i] = b1 * m[i]! + (1 - b1) * gi;
        v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
        p[i] = p[i]! - wd * p[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
      }
    }
  }
}
