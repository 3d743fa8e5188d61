/**
 * Text files to a token file (`dsa tokenize`): each document's ids followed by EOS (see
 * documentIds), written piece by piece so the corpus never sits in memory whole. A `.jsonl` file
 * is streamed line by line, one document a line; any other file is one document.
 */
import { createReadStream, existsSync } from 'node:fs';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { readTextFile } from '../../io/text-file.js';
import { jsonlText } from './source.js';
import { TokenFileWriter } from './token-file.js';
import { documentIds, type TextTokenizer } from './tokenizer.js';

export interface TokenizeResult {
  documents: number;
  tokens: number;
  /** UTF-8 bytes of the documents' text. */
  textBytes: number;
  vocabSize: number;
}

/** The documents of a file. */
async function* documents(path: string): AsyncGenerator<{ text: string }> {
  if (extname(path).toLowerCase() !== '.jsonl') {
    yield { text: readTextFile(path) };
    return;
  }
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() !== '') yield { text: jsonlText(line, `${path}:${n}`) };
  }
}

export async function tokenizeFiles(
  inputs: readonly string[],
  out: string,
  tok: TextTokenizer,
  onFile: (file: string, documents: number, tokens: number) => void = () => {},
): Promise<TokenizeResult> {
  for (const f of inputs) if (!existsSync(f)) throw new Error(`${f}: file not found`); // before writing anything
  const w = new TokenFileWriter(out, tok.vocabSize);
  let docs = 0;
  let textBytes = 0;
  try {
    for (const f of inputs) {
      for await (const d of documents(f)) {
        w.write(documentIds(tok, d.text));
        textBytes += Buffer.byteLength(d.text);
        docs++;
      }
      onFile(f, docs, w.length);
    }
    const tokens = w.length;
    w.close();
    return { documents: docs, tokens, textBytes, vocabSize: tok.vocabSize };
  } catch (e) {
    w.abort();
    throw e;
  }
}
