/**
 * The committed WebAssembly module (src/backend/cpu/wasm/kernels-wasm.ts) must be what
 * `npm run build:wasm` makes from asm/kernels.ts today: rebuild into a temporary directory and
 * compare. If this fails, run `npm run build:wasm` and commit the result.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KERNELS_WASM_BASE64 } from '../../src/backend/cpu/wasm/kernels-wasm.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('the committed kernels module matches a fresh build of asm/kernels.ts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsa-wasm-test-'));
  try {
    execFileSync(process.execPath, [join(root, 'scripts/build-wasm.mjs'), '--out', dir], { stdio: 'pipe' });
    const fresh = readFileSync(join(dir, 'kernels.wasm')).toString('base64');
    assert.ok(fresh === KERNELS_WASM_BASE64, 'src/backend/cpu/wasm/kernels-wasm.ts is stale: run `npm run build:wasm`');
    // the generated file itself is what the script writes
    const committed = readFileSync(join(root, 'src/backend/cpu/wasm/kernels-wasm.ts'), 'utf8');
    assert.equal(readFileSync(join(dir, 'kernels-wasm.ts'), 'utf8'), committed);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
