#!/usr/bin/env node
// Entry point for `npx dsa`: runs the compiled CLI (built by `npm ci` through the prepare script,
// or by `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'cli', 'main.js');
if (!existsSync(entry)) {
  process.stderr.write(`dsa: ${entry} is missing; run \`npm run build\` first\n`);
  process.exit(1);
}
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));
