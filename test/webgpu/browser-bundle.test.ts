/**
 * The WebGPU backend runs in a browser unchanged: bundled for the browser platform (the `webgpu`
 * package, Dawn for Node, left out: the backend loads it only where navigator.gpu is missing), it
 * pulls in no Node built-in and no other package.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { build } from 'esbuild';

test('the WebGPU backend bundles for the browser with no Node built-ins and no packages', async () => {
  const r = await build({
    entryPoints: ['src/backend/webgpu.ts'], bundle: true, platform: 'browser', format: 'esm', write: false, external: ['webgpu'], logLevel: 'silent', metafile: true,
  });
  assert.equal(r.errors.length, 0);
  const inputs = Object.keys(r.metafile.inputs);
  assert.ok(inputs.some((f) => f.endsWith('src/backend/webgpu/kernels/indexer-fused2.ts')), 'the kernels are in the bundle');
  assert.deepEqual(inputs.filter((f) => f.includes('node_modules') || f.startsWith('node:')), []);
  const code = r.outputFiles[0]!.text;
  assert.doesNotMatch(code, /from ["']node:|require\(["']node:/);
  assert.match(code, /import\(["']webgpu["']\)/, 'Dawn is only imported dynamically');
});
