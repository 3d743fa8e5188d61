/**
 * Backend ops vs naive references: mixture of experts: routing (moeRoute: sigmoid/softmax scores,
 * bias, groups, forced experts) and the expert FFNs (moeExperts over bf16 and FP8 weights). The case
 * structure, tolerances and the backends run are in ./harness.ts.
 */
import assert from 'node:assert/strict';
import type { Backend, HostWeight, RouteOptions, ScaleFormat } from '../../../src/backend/backend.js';
import {
  type ErrorCase,
  type OpCase,
  type Tol,
  TOL,
  assertClose,
  compareAll,
  flipAllowance,
  fp8Weight,
  meta,
  randomBf16,
  readAll,
  refLinear,
  Rng,
  runCases,
  silu,
  verbose,
} from './harness.js';

const cases: OpCase[] = [];
const errorCases: ErrorCase[] = [];

// ---- mixture of experts ---------------------------------------------------------------------

interface RefRoute {
  experts: number[][];
  weights: number[][];
  chosen: number[][];
  /** Smallest gap at a selection boundary (kept vs dropped group, chosen vs next expert). */
  minGap: number;
}

/** DSA.md "Mixture of experts", as text: scores, bias for choosing, groups, top-k, weights. */
function refRoute(logits: Float32Array, T: number, E: number, bias: Float32Array | null, o: RouteOptions, forced: Int32Array | null): RefRoute {
  const res: RefRoute = { experts: [], weights: [], chosen: [], minGap: Infinity };
  for (let t = 0; t < T; t++) {
    const l = Array.from(logits.subarray(t * E, (t + 1) * E));
    let scores: number[];
    if (o.scoring === 'sigmoid') scores = l.map((v) => 1 / (1 + Math.exp(-v)));
    else {
      const mx = Math.max(...l);
      const z = l.reduce((a, v) => a + Math.exp(v - mx), 0);
      scores = l.map((v) => Math.exp(v - mx) / z);
    }
    const choice = scores.map((s, e) => (bias ? s + bias[e]! : s));
    if (o.nGroup > 1) {
      const per = E / o.nGroup;
      const groupScore = Array.from({ length: o.nGroup }, (_, g) => {
        const members = choice.slice(g * per, (g + 1) * per).sort((a, b) => b - a);
        return bias ? members[0]! + members[1]! : members[0]!;
      });
      const ranked = Array.from({ length: o.nGroup }, (_, g) => g).sort((a, b) => groupScore[b]! - groupScore[a]!);
      const keep = ranked.slice(0, o.topkGroup);
      res.minGap = Math.min(res.minGap, groupScore[ranked[o.topkGroup - 1]!]! - groupScore[ranked[o.topkGroup]!]!);
      for (let e = 0; e < E; e++) if (!keep.includes(Math.floor(e / per))) choice[e] = -Infinity;
    }
    const rankedExperts = Array.from({ length: E }, (_, e) => e).sort((a, b) => choice[b]! - choice[a]! || a - b);
    const own = rankedExperts.slice(0, o.topk);
    res.minGap = Math.min(res.minGap, choice[own[o.topk - 1]!]! - choice[rankedExperts[o.topk]!]!);
    const use = forced ? Array.from(forced.subarray(t * o.topk, (t + 1) * o.topk)) : own;
    let w = use.map((e) => scores[e]!);
    if (o.normalize) {
      const z = w.reduce((a, b) => a + b, 0);
      w = w.map((v) => v / z);
    }
    w = w.map((v) => v * o.scale);
    const pairs = use.map((e, j) => [e, w[j]!] as const).sort((a, b) => a[0] - b[0]);
    res.experts.push(pairs.map((p) => p[0]));
    res.weights.push(pairs.map((p) => p[1]));
    res.chosen.push([...own].sort((a, b) => a - b));
  }
  return res;
}

{
  const r = new Rng(1111);
  const T = 8;
  const routeCase = (label: string, E: number, o: RouteOptions, withBias: boolean, forcedRows: number[][] | null, sanity?: (ref: RefRoute, logits: Float32Array, bias: Float32Array | null) => void): OpCase => {
    const logits = r.normals(T * E, 1.5);
    const bias = withBias ? r.uniforms(E, -0.4, 0.4) : null;
    const forced = forcedRows ? Int32Array.from(forcedRows.flat()) : null;
    return {
      name: `moeRoute: ${label}`,
      async run(b) {
        const res = b.moeRoute(b.upload(logits, [T, E]), bias ? b.upload(bias, [E]) : null, o, forced ? b.upload(forced, [T, o.topk]) : null);
        const [e, w, c] = await readAll(b, res.experts, res.weights, res.chosen);
        return [e!, w!, c!, [...meta(res.experts), ...meta(res.weights), ...meta(res.chosen)]];
      },
      reference() {
        const ref = refRoute(logits, T, E, bias, o, forced);
        // No choice may hinge on float32 rounding: every selection boundary is clear by 1e-4.
        assert.ok(ref.minGap > 1e-4, `reference data: a routing choice is within ${ref.minGap} of a tie; change the seed`);
        sanity?.(ref, logits, bias);
        const m = [1, T * o.topk, T, o.topk];
        return [ref.experts.flat(), ref.weights.flat(), ref.chosen.flat(), [...m, 0, ...m.slice(1), ...m]];
      },
      tol: [TOL.exact, TOL.route, TOL.exact, TOL.exact],
      check(got, want, tols) {
        // The order of a row's experts is not part of the contract: compare (expert, weight) pairs by expert.
        const k = o.topk;
        const e = Array.from(got[0]!);
        const w = Array.from(got[1]!);
        const c = Array.from(got[2]!);
        const es: number[] = [];
        const ws: number[] = [];
        const cs: number[] = [];
        for (let t = 0; t < T; t++) {
          const idx = Array.from({ length: k }, (_, j) => t * k + j).sort((a, b) => e[a]! - e[b]!);
          for (const i of idx) {
            es.push(e[i]!);
            ws.push(w[i]!);
          }
          cs.push(...c.slice(t * k, (t + 1) * k).sort((a, b) => a - b));
        }
        compareAll(this.name, [es, ws, cs, got[3]!], want, tols);
      },
    };
  };
  const base: RouteOptions = { topk: 2, nGroup: 4, topkGroup: 2, scoring: 'sigmoid', normalize: true, scale: 2.5 };
  cases.push(
    routeCase('sigmoid + bias + groups (8 experts, 4 groups, keep 2, top 2), normalized, scale 2.5', 8, base, true, null, (ref, logits, bias) => {
      // The case must discriminate: without the bias, or without the groups, some row chooses differently.
      const noBias = refRoute(logits, T, 8, null, { ...base }, null);
      const noGroups = refRoute(logits, T, 8, bias, { ...base, nGroup: 1, topkGroup: 1 }, null);
      assert.notDeepEqual(noBias.chosen, ref.chosen, 'bias changes some choice');
      assert.notDeepEqual(noGroups.chosen, ref.chosen, 'group masking changes some choice');
    }),
  );
  cases.push(routeCase('sigmoid + bias + groups (16 experts, 4 groups of 4: top-2 group sums, keep 2, top 4)', 16, { ...base, topk: 4 }, true, null));
  cases.push(
    routeCase('softmax scores without bias, groups by max score, not normalized, scale 1', 8, { topk: 2, nGroup: 4, topkGroup: 2, scoring: 'softmax', normalize: false, scale: 1 }, false, null),
  );
  cases.push(routeCase('softmax, no groups, normalized, scale 1.5', 8, { topk: 3, nGroup: 1, topkGroup: 1, scoring: 'softmax', normalize: true, scale: 1.5 }, false, null));
  cases.push(routeCase('sigmoid + bias, no groups, top 3, not normalized', 8, { topk: 3, nGroup: 1, topkGroup: 1, scoring: 'sigmoid', normalize: false, scale: 1 }, true, null));
  const forcedRows = [[5, 1], [0, 7], [3, 2], [6, 4], [1, 0], [7, 3], [2, 6], [4, 5]];
  cases.push(
    routeCase('forced experts (weights from the model’s own scores, normalized), chosen = own choice', 8, base, true, forcedRows, (ref) => {
      assert.ok(
        ref.chosen.some((own, t) => forcedRows[t]!.some((e) => !own.includes(e))),
        'some forced expert is not the model’s own choice',
      );
    }),
  );

  const logits = r.normals(2 * 8, 1.5);
  const flat: RouteOptions = { topk: 2, nGroup: 1, topkGroup: 1, scoring: 'sigmoid', normalize: true, scale: 1 };
  const route = async (b: Backend, o: { bias?: Float32Array; forced?: Int32Array }) => {
    const res = b.moeRoute(b.upload(logits, [2, 8]), o.bias ? b.upload(o.bias, [o.bias.length]) : null, flat, o.forced ? b.upload(o.forced, [2, 2]) : null);
    return readAll(b, res.experts, res.weights);
  };
  errorCases.push({
    name: 'moeRoute: a bias of another length than the experts throws',
    run: (b) => route(b, { bias: new Float32Array(7) }),
    error: /moeRoute: bias has shape \[7\], expected \[8\]/,
  });
  const forcedBad = Int32Array.of(9, 1, 0, 7);
  errorCases.push({
    name: 'moeRoute: a forced expert outside 0..E-1 throws',
    run: (b) => route(b, { forced: forcedBad }),
    error: /moeRoute: forced expert 9 is outside 0\.\.7/,
    // The forced experts are on the device: the kernel writes them as given (in the given order),
    // an invalid one with weight 0, the others normalized among themselves.
    gpu: {
      does: 'zeros',
      expect() {
        const sig = (v: number) => 1 / (1 + Math.exp(-v));
        const [s1, s8, s15] = [sig(logits[1]!), sig(logits[8]!), sig(logits[15]!)];
        return [forcedBad, [0, 1, s8 / (s8 + s15), s15 / (s8 + s15)]];
      },
      tol: [TOL.exact, TOL.route],
    },
  });
}

{
  const r = new Rng(1212);
  const T = 5;
  const k = 2;
  const experts = Int32Array.of(0, 2, 3, 2, 1, 2, 3, 0, 2, 1); // expert 2 serves 4 tokens; orders vary
  const weights = r.uniforms(T * k, 0.2, 1.5);

  const expertsCase = (label: string, d: number, inter: number, make: (o: number, i: number) => HostWeight, aq: ScaleFormat | null, tol: Tol): OpCase => {
    const E = 4;
    const gate = Array.from({ length: E }, () => make(inter, d));
    const upW = Array.from({ length: E }, () => make(inter, d));
    const down = Array.from({ length: E }, () => make(d, inter));
    const x = r.normals(T * d);
    return {
      name: `moeExperts: ${label}`,
      async run(b) {
        const up = (ws: HostWeight[]) => ws.map((w) => b.uploadWeight(w));
        const out = b.moeExperts(b.upload(x, [T, d]), b.upload(experts, [T, k]), b.upload(weights, [T, k]), up(gate), up(upW), up(down), aq);
        const [ro] = await readAll(b, out);
        return [ro!, out.shape];
      },
      reference() {
        // Loop over tokens and their experts by hand. Each linear's output is a float32 tensor in the
        // contract (the model chains ops), so the reference rounds gate, up and their swiglu to float32.
        const out = new Float64Array(T * d);
        const allowance = new Float64Array(T * d);
        for (let t = 0; t < T; t++) {
          const xt = x.subarray(t * d, (t + 1) * d);
          for (let j = 0; j < k; j++) {
            const e = experts[t * k + j]!;
            const g = Float32Array.from(refLinear(xt, 1, gate[e]!, aq));
            const u = Float32Array.from(refLinear(xt, 1, upW[e]!, aq));
            const h = Float32Array.from(g, (gv, i) => silu(gv) * u[i]!);
            const y = refLinear(h, 1, down[e]!, aq);
            for (let c = 0; c < d; c++) out[t * d + c]! += weights[t * k + j]! * y[c]!;
            if (aq !== null && down[e]!.format === 'fp8') {
              const flips = flipAllowance(h, aq, down[e]!);
              for (let c = 0; c < d; c++) allowance[t * d + c]! += Math.abs(weights[t * k + j]!) * flips[c]!;
            }
          }
        }
        return [out, [T, d], allowance];
      },
      tol: [tol, TOL.exact, TOL.exact],
      check(got, want) {
        assert.equal(got.length, 2, `${this.name}: 2 outputs`);
        const allowance = want[2]!;
        const o = got[0]!;
        const w = want[0]!;
        assert.equal(o.length, w.length);
        let flagged = 0;
        for (let i = 0; i < w.length; i++) {
          if (allowance[i]! > 0) flagged++;
          const lim = tol.abs + tol.rel * Math.abs(w[i]!) + allowance[i]!;
          assert.ok(Math.abs(o[i]! - w[i]!) <= lim, `${this.name}[${i}]: got ${o[i]}, want ${w[i]} (allowed ${lim})`);
        }
        assertClose(got[1]!, want[1]!, TOL.exact, `${this.name}: shape`);
        if (verbose) console.log(`[moeExperts] ${this.name}: ${flagged} outputs with a code-flip allowance (max ${Math.max(...Array.from(allowance))})`);
      },
    };
  };
  cases.push(
    expertsCase('bf16 weights (d 48, inter 32)', 48, 32, (o, i) => ({ format: 'bf16', outDim: o, inDim: i, data: randomBf16(r, o * i, -8, -2) }), null, TOL.expertsBf16),
  );
  cases.push(expertsCase("fp8 weights, act-quant 'ue8m0' (d 160, inter 136: partial blocks)", 160, 136, (o, i) => fp8Weight(r, o, i, 0.08, 'ue8m0'), 'ue8m0', TOL.expertsFp8));
  cases.push(expertsCase("fp8 weights, act-quant 'none'", 160, 136, (o, i) => fp8Weight(r, o, i, 0.08, 'none'), 'none', TOL.expertsFp8));
  cases.push(expertsCase('fp8 weights without act-quant (dequantized)', 160, 136, (o, i) => fp8Weight(r, o, i, 0.08, 'none'), null, TOL.expertsBf16));
  errorCases.push({
    name: 'moeExperts: routes for another number of rows than the tokens throw',
    async run(b) {
      const w = b.uploadWeight({ format: 'f32', outDim: 8, inDim: 8, data: new Float32Array(64) });
      return b.read(b.moeExperts(b.zeros([T, 8], 'f32'), b.upload(experts.subarray(0, 8), [4, k]), b.upload(weights.subarray(0, 8), [4, k]), [w], [w], [w], null));
    },
    error: /moeExperts: 4 routed rows for 5 tokens/,
  });
}

runCases('mixture of experts', cases, errorCases);
