/**
 * Token files: the llm.c format, also what `dsa tokenize` writes.
 *
 *   header: 256 little-endian int32 (1024 bytes)
 *     [0] magic 20240520
 *     [1] version: 1 = token ids are uint16, 2 = uint32
 *     [2] number of tokens
 *     [3] vocabulary size, 0 when not recorded (a dsa addition: llm.c leaves it 0 and never reads it)
 *     the rest 0
 *   then the token ids, little-endian, uint16 or uint32.
 *
 * Headerless files (nanoGPT's train.bin: raw uint16) are read when their dtype is given.
 * Ids are read on demand from their byte range, so a file larger than memory is fine.
 */
import * as fs from 'node:fs';
import { readFully } from '../../io/safetensors.js';

export const TOKEN_FILE_MAGIC = 20240520;
export const TOKEN_FILE_HEADER_BYTES = 1024;

/** Integer dtypes token ids can be stored in (safetensors names). */
export type TokenDType = 'U8' | 'U16' | 'I16' | 'U32' | 'I32' | 'I64' | 'U64';
export const TOKEN_DTYPE_BYTES: Record<TokenDType, number> = { U8: 1, U16: 2, I16: 2, U32: 4, I32: 4, I64: 8, U64: 8 };

export interface TokenFileHeader {
  version: 1 | 2;
  dtype: 'U16' | 'U32';
  tokens: number;
  /** 0 when the file does not record it. */
  vocabSize: number;
}

/** The header of an llm.c token file, or null when the file does not start with the magic number. */
export function readTokenFileHeader(path: string): TokenFileHeader | null {
  const fd = openRead(path);
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 4) return null;
    const head = new Uint8Array(Math.min(size, TOKEN_FILE_HEADER_BYTES));
    readFully(fd, head, 0, path);
    const dv = new DataView(head.buffer);
    if (dv.getInt32(0, true) !== TOKEN_FILE_MAGIC) return null;
    if (size < TOKEN_FILE_HEADER_BYTES) throw new Error(`${path}: token file header is truncated (${size} bytes, need ${TOKEN_FILE_HEADER_BYTES})`);
    const version = dv.getInt32(4, true);
    if (version !== 1 && version !== 2) throw new Error(`${path}: unknown token file version ${version} (1 = uint16 ids, 2 = uint32 ids)`);
    const tokens = dv.getInt32(8, true);
    const vocabSize = dv.getInt32(12, true);
    if (tokens < 0) throw new Error(`${path}: negative token count ${tokens} in the header`);
    if (vocabSize < 0) throw new Error(`${path}: negative vocabulary size ${vocabSize} in the header`);
    const bytes = version === 1 ? 2 : 4;
    const need = TOKEN_FILE_HEADER_BYTES + tokens * bytes;
    if (size < need) throw new Error(`${path}: the header says ${tokens} tokens (${need} bytes) but the file has ${size} bytes; file truncated?`);
    if (size > need) throw new Error(`${path}: ${size - need} bytes after the ${tokens} tokens the header counts; not a token file?`);
    return { version, dtype: version === 1 ? 'U16' : 'U32', tokens, vocabSize };
  } finally {
    fs.closeSync(fd);
  }
}

export function openRead(path: string): number {
  try {
    const fd = fs.openSync(path, 'r');
    if (fs.fstatSync(fd).isDirectory()) {
      fs.closeSync(fd);
      throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    }
    return fd;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${path}: file not found`);
    if (code === 'EISDIR') throw new Error(`${path}: is a directory, not a file`);
    throw new Error(`${path}: cannot open (${(e as Error).message})`);
  }
}

/** Decodes `count` ids of `dtype` from little-endian bytes into `out`; ids beyond int32 are an error. */
export function decodeIds(bytes: Uint8Array, dtype: TokenDType, out: Int32Array, where: () => string): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = out.length;
  const bad = (i: number, v: number | bigint): never => {
    throw new Error(`${where()}: token id ${v} at index ${i} is not a valid id (must be in 0..2147483647)`);
  };
  switch (dtype) {
    case 'U8':
      for (let i = 0; i < n; i++) out[i] = bytes[i]!;
      break;
    case 'U16':
      for (let i = 0; i < n; i++) out[i] = dv.getUint16(2 * i, true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) {
        const v = dv.getInt16(2 * i, true);
        if (v < 0) bad(i, v);
        out[i] = v;
      }
      break;
    case 'U32':
    case 'I32':
      for (let i = 0; i < n; i++) {
        const v = dv.getInt32(4 * i, true);
        if (v < 0) bad(i, dtype === 'U32' ? v >>> 0 : v);
        out[i] = v;
      }
      break;
    case 'I64':
    case 'U64':
      for (let i = 0; i < n; i++) {
        const v = dtype === 'I64' ? dv.getBigInt64(8 * i, true) : dv.getBigUint64(8 * i, true);
        if (v < 0n || v > 2147483647n) bad(i, v);
        out[i] = Number(v);
      }
      break;
  }
}

/**
 * Writes an llm.c token file piece by piece (ids need not fit in memory at once): to `path.tmp`,
 * the header patched with the count on close(), then renamed to `path`.
 */
export class TokenFileWriter {
  private fd: number | null;
  private readonly tmp: string;
  private readonly maxId: number;
  private count = 0;
  readonly version: 1 | 2;

  constructor(
    readonly path: string,
    readonly vocabSize: number,
  ) {
    if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > 2 ** 31 - 1) throw new RangeError(`vocabulary size must be an integer in 1..2147483647, got ${vocabSize}`);
    this.version = vocabSize <= 65536 ? 1 : 2;
    this.maxId = vocabSize - 1;
    this.tmp = `${path}.tmp`;
    try {
      this.fd = fs.openSync(this.tmp, 'w');
    } catch (e) {
      throw new Error(`${path}: cannot write (${(e as Error).message})`);
    }
    fs.writeSync(this.fd, new Uint8Array(TOKEN_FILE_HEADER_BYTES), 0, TOKEN_FILE_HEADER_BYTES, 0);
  }

  /** Number of ids written so far. */
  get length(): number {
    return this.count;
  }

  write(ids: ArrayLike<number>): void {
    if (this.fd === null) throw new Error(`${this.path}: writer is closed`);
    const n = ids.length;
    if (this.count + n > 2 ** 31 - 1) throw new Error(`${this.path}: more than 2147483647 tokens do not fit in a token file`);
    const bytes = this.version === 1 ? 2 : 4;
    const buf = new Uint8Array(n * bytes);
    const dv = new DataView(buf.buffer);
    for (let i = 0; i < n; i++) {
      const v = ids[i]!;
      if (!Number.isInteger(v) || v < 0 || v > this.maxId) throw new Error(`${this.path}: token id ${v} is outside the vocabulary (0..${this.maxId})`);
      if (bytes === 2) dv.setUint16(2 * i, v, true);
      else dv.setUint32(4 * i, v, true);
    }
    let done = 0;
    const at = TOKEN_FILE_HEADER_BYTES + this.count * bytes;
    while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done, at + done);
    this.count += n;
  }

  close(): void {
    if (this.fd === null) return;
    const bytes = new Uint8Array(TOKEN_FILE_HEADER_BYTES);
    const dv = new DataView(bytes.buffer);
    dv.setInt32(0, TOKEN_FILE_MAGIC, true);
    dv.setInt32(4, this.version, true);
    dv.setInt32(8, this.count, true);
    dv.setInt32(12, this.vocabSize, true);
    fs.writeSync(this.fd, bytes, 0, bytes.length, 0);
    fs.closeSync(this.fd);
    this.fd = null;
    fs.renameSync(this.tmp, this.path);
  }

  /** Drops the partial file. */
  abort(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
    fs.rmSync(this.tmp, { force: true });
  }
}

/** Writes `ids` as a token file in one call. */
export function writeTokenFile(path: string, ids: ArrayLike<number>, vocabSize: number): void {
  const w = new TokenFileWriter(path, vocabSize);
  try {
    w.write(ids);
    w.close();
  } catch (e) {
    w.abort();
    throw e;
  }
}
