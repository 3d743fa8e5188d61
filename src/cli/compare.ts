/** `dsa compare RUN REF`: how far one run (from `dsa logits`) is from a reference in the same layout. */
import { compareFiles, type Comparison, type LogitDiff, type SetAgreement } from '../model/compare.js';

function logitLine(name: string, d: LogitDiff | null): string {
  if (!d) return `${name.padEnd(16)} (not in both files)`;
  return `${name.padEnd(16)} max abs ${d.maxAbs.toExponential(3)}  rel ${d.rel.toExponential(3)}  median row ${d.medianRow.toExponential(3)}  argmax differs in ${d.argmaxDiffers}/${d.rows} rows`;
}

function setLine(name: string, s: SetAgreement | null): string {
  if (!s) return `${name.padEnd(16)} (not in both files)`;
  return `${name.padEnd(16)} ${s.same}/${s.rows} rows identical as sets (${(100 * s.fraction).toFixed(2)}%), worst symmetric difference ${s.worstSymmetricDifference}`;
}

export function formatComparison(c: Comparison): string {
  const tokens = c.decodeTokensEqual === null ? '(not in both files)' : c.decodeTokensEqual ? 'identical' : 'DIFFERENT';
  return [
    logitLine('prefill_logits', c.prefill),
    logitLine('decode_logits', c.decode),
    setLine('prefill_topk_all', c.prefillTopk),
    setLine('decode_topk', c.decodeTopk),
    setLine('moe_experts', c.experts),
    `${'decode tokens'.padEnd(16)} ${tokens}`,
    '',
  ].join('\n');
}

export function runCompare(run: string, ref: string, json: boolean): string {
  const c = compareFiles(run, ref);
  return json ? `${JSON.stringify(c, null, 2)}\n` : formatComparison(c);
}
