/**
 * Locates the golden fixtures: $DSA_FIXTURES, else ../shared/fixtures beside the repository (where
 * CI and every developer machine have them). A missing fixture is an error, never a skipped test.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Comparison } from '../../src/model/compare.js';

export function fixturesRoot(): string {
  const root = process.env.DSA_FIXTURES ?? fileURLToPath(new URL('../../../shared/fixtures/', import.meta.url));
  if (!existsSync(root)) {
    throw new Error(`golden fixtures not found at ${root}: put the shared/ folder beside the repository or set DSA_FIXTURES`);
  }
  return root;
}

export function fixture(name: string): string {
  const dir = join(fixturesRoot(), name);
  if (!existsSync(dir)) throw new Error(`fixture ${name} not found in ${fixturesRoot()}`);
  return dir;
}

export interface FixtureMeta {
  forced: { rel_tol: number; min_same_selection: number };
  free: { rel_tol: number; min_same_selection: number; tokens_must_match: boolean };
  decode_steps: number;
  prompt_len: number;
}

export function fixtureMeta(name: string): FixtureMeta {
  return JSON.parse(readFileSync(join(fixture(name), 'meta.json'), 'utf8')) as FixtureMeta;
}

export function fixturePrompt(name: string): Int32Array {
  return Int32Array.from(JSON.parse(readFileSync(join(fixture(name), 'prompt_ids.json'), 'utf8')) as number[]);
}

/** Share of (layer, row) selections identical as sets, over prefill and decode rows together. */
export function selectionAgreement(c: Comparison): number {
  const rows = (c.prefillTopk?.rows ?? 0) + (c.decodeTopk?.rows ?? 0);
  const same = (c.prefillTopk?.same ?? 0) + (c.decodeTopk?.same ?? 0);
  return same / rows;
}
