import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cli } from '../helpers/cli.js';
import { openTokenSource, readTokenFileHeader } from '../../src/train/data/index.js';
import { tempDir, tinyTokenizerJson } from './helpers.js';

const dir = tempDir('dsa-traincli-');
const at = (f: string): string => path.join(dir, f);

test('dsa tokenize: text and JSON lines to a token file, byte-level or through a tokenizer.json', async () => {
  fs.writeFileSync(at('a.txt'), 'hello hello');
  fs.writeFileSync(at('b.jsonl'), '{"text": "hello"}\n"hi"\n');
  let r = await cli(['tokenize', at('a.txt'), at('b.jsonl'), '--out', at('bytes.bin')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^3 document\(s\), 21 tokens from 18 bytes of text \(0\.86 bytes\/token; tokenizer bytes, vocabulary 259, uint16 ids\)/);
  const src = openTokenSource(at('bytes.bin'));
  assert.equal(new TextDecoder().decode(Uint8Array.from(src.read(0, 11))), 'hello hello');
  assert.deepEqual(Array.from(src.read(11, 10)), [257, 104, 101, 108, 108, 111, 257, 104, 105, 257]);

  fs.writeFileSync(at('tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
  r = await cli(['tokenize', at('b.jsonl'), '--out', at('bpe.bin'), '--tokenizer', at('tokenizer.json')]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readTokenFileHeader(at('bpe.bin')), { version: 1, dtype: 'U16', tokens: 5, vocabSize: 261 });
  assert.deepEqual(Array.from(openTokenSource(at('bpe.bin')).read(0, 5)), [260, 0, 105, 106, 0]);

  r = await cli(['tokenize', at('a.txt'), at('missing.txt'), '--out', at('x.bin')]);
  assert.deepEqual([r.code, r.stderr], [1, `dsa: ${at('missing.txt')}: file not found\n`]);
  fs.writeFileSync(at('bad.jsonl'), '{"text": "ok"}\n{"text": 5}\n');
  r = await cli(['tokenize', at('bad.jsonl'), '--out', at('x.bin')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad\.jsonl:2: expected \{"text": "\.\.\."\} or a JSON string/);
  assert.ok(!fs.existsSync(at('x.bin')) && !fs.existsSync(at('x.bin.tmp')), 'no partial output');
});

test('dsa plot: several runs to SVG and PNG, with a summary per line', async () => {
  fs.mkdirSync(at('dense'));
  fs.mkdirSync(at('sparse'));
  const line = (o: object): string => `${JSON.stringify(o)}\n`;
  fs.writeFileSync(at('dense/metrics.jsonl'), Array.from({ length: 30 }, (_, i) => line({ step: i, stage: 'dense', loss: 5 - i / 10 })).join(''));
  // A killed run: the last line is cut.
  fs.writeFileSync(
    at('sparse/metrics.jsonl'),
    Array.from({ length: 20 }, (_, i) => line({ step: i, stage: i < 10 ? 'warmup' : 'sparse', loss: 5.2 - i / 10, kl: 2 / (i + 1) })).join('') + '{"step":20,"lo',
  );
  const svg = at('loss.svg');
  let r = await cli(['plot', '--metrics', at('dense/metrics.jsonl'), '--metrics', at('sparse/metrics.jsonl'), '--y', 'loss', '--smooth', '0.5', '--out', svg]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /sparse\/metrics\.jsonl: skipped a partial last line/);
  assert.match(r.stdout, /^dense loss: 5 → 2\.1 over step 0\.\.29 \(30 points, min 2\.1 at 29\)\nsparse · warmup loss: 5\.2 → 4\.3 over step 0\.\.9 /);
  assert.match(r.stdout, /sparse · sparse loss: 4\.2 → 3\.3 over step 10\.\.19 \(10 points/);
  assert.match(r.stdout, /wrote .*loss\.svg\n$/);
  const text = fs.readFileSync(svg, 'utf8');
  for (const s of ['dense', 'sparse · warmup', 'sparse · sparse']) assert.ok(text.includes(`>${s}<`), `legend entry ${s}`);

  const png = at('curves.png');
  r = await cli(['plot', '--metrics', at('sparse/metrics.jsonl'), '--label', 'dsa', '--y', 'loss,kl', '--out', png]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual([...fs.readFileSync(png).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.match(r.stdout, /^warmup kl: 2 → 0\.2 over step 0\.\.9/m);

  // Without --out: FIELDS.svg beside the first metrics file.
  r = await cli(['plot', '--metrics', at('sparse/metrics.jsonl'), '--y', 'loss,kl']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*sparse\/loss-kl\.svg\n$/);
  assert.ok(fs.readFileSync(at('sparse/loss-kl.svg'), 'utf8').startsWith('<svg'));

  r = await cli(['plot', '--metrics', at('dense/metrics.jsonl'), '--y', 'kl', '--out', svg]);
  assert.deepEqual([r.code, r.stderr], [1, "dsa: no record has a numeric 'kl' to plot (fields: step, loss)\n"]);
  r = await cli(['plot', '--metrics', at('dense/metrics.jsonl'), '--label', 'a', '--label', 'b', '--out', svg]);
  assert.match(r.stderr, /--label: 2 labels for 1 metrics files/);
  r = await cli(['plot', '--metrics', at('dense/metrics.jsonl'), '--out', at('loss.pdf')]);
  assert.match(r.stderr, /must end in \.svg or \.png/);
  r = await cli(['plot', '--metrics', at('dense/metrics.jsonl'), '--smooth', '1', '--out', svg]);
  assert.match(r.stderr, /--smooth must be a number in \[0, 1\)/);
  r = await cli(['plot', '--metrics', at('nope.jsonl'), '--out', svg]);
  assert.match(r.stderr, /nope\.jsonl: file not found/);
});

test('dsa task: samples one a line, or as JSON lines', async () => {
  let r = await cli(['task', 'passkey', '--vocab', '259', '--context', '40', '--samples', '2', '--seed', '3']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2);
  for (const l of lines) assert.match(l, /^B (…×\d+ )?N k(\d+) k(\d+) : v(\d+) v(\d+) v(\d+) v(\d+) (…×\d+ )?\? k\2 k\3 : \[v\4\] \[v\5\] \[v\6\] \[v\7\]$/);
  r = await cli(['task', 'recall', '--vocab', '64', '--context', '60', '--pairs', '4', '--queries', '2', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { tokens: number[]; mask: number[]; answers: { start: number; length: number }[] };
  assert.deepEqual([s.tokens.length, s.mask.length, s.answers.length], [61, 60, 2]);
  assert.equal(s.mask.reduce((a, v) => a + v, 0), 2);
  r = await cli(['task', 'recall', '--vocab', '64', '--context', '20']);
  assert.deepEqual([r.code, r.stderr], [1, 'dsa: recall: context length must be an integer ≥ 48, got 20\n']);
  r = await cli(['task', 'passkey', '--vocab', '0', '--context', '20']);
  assert.match(r.stderr, /--vocab must be an integer ≥ 1/);
});
