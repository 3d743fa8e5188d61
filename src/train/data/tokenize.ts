/**
 * Text files to a token file (`dsa tokenize`): each document's ids followed by EOS (see
 * documentIds), written piece by piece so the corpus never sits in memory whole. A `.jsonl` file
 * is streamed line by line, one document a line; any other file is one document, read in pieces
 * cut at blank lines when it is large.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
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

/** Plain text files larger than this are encoded in pieces (see textPieces). */
export const PIECE_BYTES = 16 * 2 ** 20;

/** A piece of a document's text; `first`/`last` say whether it starts or ends the document. */
interface Piece {
  text: string;
  first: boolean;
  last: boolean;
}

/**
 * A large text file in pieces of about PIECE_BYTES, each cut after a blank line (where
 * tokenizers' pre-tokenizers split anyway), so memory stays bounded; a piece with no blank line
 * in it grows until one comes.
 */
async function* textPieces(path: string, pieceBytes: number): AsyncGenerator<Piece> {
  let pending = '';
  let first = true;
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: Math.min(2 ** 20, pieceBytes) })) {
    pending += chunk as string;
    if (pending.length < pieceBytes) continue;
    const cut = pending.lastIndexOf('\n\n');
    if (cut < 0) continue;
    yield { text: pending.slice(0, cut + 2), first, last: false };
    first = false;
    pending = pending.slice(cut + 2);
  }
  yield { text: pending, first, last: true };
}

/** The documents of a file, in pieces. */
async function* documents(path: string, pieceBytes: number): AsyncGenerator<Piece> {
  if (extname(path).toLowerCase() !== '.jsonl') {
    if (statSync(path).size <= pieceBytes) yield { text: readTextFile(path), first: true, last: true };
    else yield* textPieces(path, pieceBytes);
    return;
  }
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() !== '') yield { text: jsonlText(line, `${path}:${n}`), first: true, last: true };
  }
}

export async function tokenizeFiles(
  inputs: readonly string[],
  out: string,
  tok: TextTokenizer,
  onFile: (file: string, documents: number, tokens: number) => void = () => {},
  pieceBytes = PIECE_BYTES,
): Promise<TokenizeResult> {
  for (const f of inputs) if (!existsSync(f)) throw new Error(`${f}: file not found`); // before writing anything
  const w = new TokenFileWriter(out, tok.vocabSize);
  let docs = 0;
  let textBytes = 0;
  try {
    for (const f of inputs) {
      for await (const d of documents(f, pieceBytes)) {
        w.write(documentIds(tok, d.text, d));
        textBytes += Buffer.byteLength(d.text);
        if (d.last) docs++;
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
