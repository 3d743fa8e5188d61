/** Token ids of a seeded pseudo-random prompt (a fixed LCG: tests were written against its values). */
export function seededTokens(n: number, seed: number, vocab: number): Int32Array {
  const out = new Int32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = (x >>> 9) % vocab;
  }
  return out;
}
