import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ByteTokenizer, HfTokenizer, openTokenSource, MAX_IN_MEMORY_BYTES } from '../../src/train/data/index.js';
import { tokenizeFiles } from '../../src/train/data/tokenize.js';
import { tempDir, tinyTokenizerJson } from './helpers.js';

const dir = tempDir('dsa-tokenize-');

test('a large text file is encoded in pieces cut at blank lines, to the same ids as whole', async () => {
  const paragraphs = Array.from({ length: 300 }, (_, i) => `hello ${i}, hello world.\nsecond line ${'x'.repeat(i % 17)}`);
  const text = paragraphs.join('\n\n');
  const file = path.join(dir, 'big.txt');
  fs.writeFileSync(file, text);
  for (const tok of [new ByteTokenizer(), new HfTokenizer('tiny', tinyTokenizerJson())]) {
    const whole = [...tok.encode(text), tok.eosId!];
    for (const pieceBytes of [1000, 64]) {
      const out = path.join(dir, `pieces-${pieceBytes}.bin`);
      const r = await tokenizeFiles([file], out, tok, () => {}, pieceBytes);
      assert.equal(r.documents, 1);
      assert.equal(r.textBytes, Buffer.byteLength(text));
      const src = openTokenSource(out);
      assert.deepEqual(Array.from(src.read(0, src.length)), whole, `${tok.name}, pieces of ${pieceBytes}`);
      src.close();
    }
  }
});

test('text too large to tokenize in memory points to dsa tokenize', () => {
  const file = path.join(dir, 'huge.txt');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, MAX_IN_MEMORY_BYTES + 1); // sparse: takes no disk
  assert.throws(() => openTokenSource(file), /huge\.txt: 256 MiB is too large to tokenize in memory \(limit 256 MiB\); write a token file first with `dsa tokenize`/);
});
