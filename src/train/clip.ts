/** Global-norm gradient clipping: when ‖g‖₂ over all gradients exceeds maxNorm, every gradient is scaled by maxNorm / ‖g‖₂. */
export function clipGradNorm(grads: Iterable<Float32Array>, maxNorm: number): number {
  const list = [...grads];
  let ss = 0;
  for (const g of list) for (let i = 0; i < g.length; i++) ss += g[i]! * g[i]!;
  const norm = Math.sqrt(ss);
  if (maxNorm > 0 && norm > maxNorm) {
    const c = maxNorm / (norm + 1e-6);
    for (const g of list) for (let i = 0; i < g.length; i++) g[i] *= c;
  }
  return norm;
}
